"""A generated fleet of image archives sharing a base, for scan-many tests and the bench.

Built with the samples' generator (samples/make_samples.py): its base layer, its relay
Dockerfile steps and its forged adduser layer. `make_fleet(folder)` writes:

- `builds` builds of the relay Dockerfile (`fleet/relay:build-N`): the same layers, each
  build's history dated on its own day (so every build is its own image digest, as a
  rebuild from a warm cache is), gzip layers;
- one forged build: the same history, over the poisoned adduser layer of the samples
  (every digest consistent), tagged `fleet/relay:latest`, which the last genuine build
  also is: one tag, two digests across the fleet;
- `tools` images of another Dockerfile over the same base (ADD base, COPY a tool);
- a copy of build 1 with an extra, unreferenced blob: the same image digest as build 1,
  other findings;
- build 2 as an OCI layout folder (`layout-build-2/`);
- a broken archive: build 3 cut in the middle of a layer.

`big_mb` adds that many MB of compressible text files (`file_kb` each) to the base layer
(the bench's 20-MB-plus archives): the base is compressed once and shared, as in a registry
(`shared=False`: each build over its own).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "_fleet_make_samples", Path(__file__).resolve().parent.parent / "samples" / "make_samples.py"
)
assert _SPEC is not None and _SPEC.loader is not None
ms = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = ms  # dataclasses look their module up there
_SPEC.loader.exec_module(ms)

FORGED_STEP = ms.TAMPER_HISTORY
FORGED_LAYER = ms.TAMPER_LAYER
LATEST = "fleet/relay:latest"
WORDS = [w.encode() for w in "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()]


def _text(seed: str, n: int) -> bytes:
    """Compressible, not trivial: words chosen by a keyed PRNG (gzip keeps about a quarter)."""
    rnd = ms.prng_bytes(seed, n // 6 + 64)
    out = bytearray()
    for i, b in enumerate(rnd):
        out += WORDS[b % len(WORDS)] + (b"\n" if i % 11 == 10 else b" ")
        if len(out) >= n:
            break
    return bytes(out[:n])


def base_entries(big_mb: int = 0, seed: str = "big", file_kb: int = 256) -> list:
    entries = ms.base_layer()
    if big_mb:
        t = ms.BASE_OS_TIME
        entries += [ms.d("usr/share", t), ms.d("usr/share/doc", t)]
        size = file_kb << 10
        for i in range((big_mb << 10) // file_kb):  # files of a realistic size, 64 to a folder
            if i % 64 == 0:
                entries.append(ms.d(f"usr/share/doc/pkg-{i // 64:04d}", t))
            # three quarters text, a quarter incompressible: gzip keeps about a third, as of real layers
            body = _text(f"{seed}/{i}", size // 4 * 3) + ms.prng_bytes(f"{seed}/{i}/raw", size // 4)
            entries.append(ms.f(f"usr/share/doc/pkg-{i // 64:04d}/part-{i:05d}.txt", body, t))
    return entries


def _times(day: int) -> list[str]:
    return [f"2026-02-{day:02d}T10:00:0{i}Z" for i in range(6)]


def relay_steps(day: int, forged: bool, base: list) -> list:
    steps = ms.relay_steps(forged)
    times = _times(day)
    out = []
    for s, t in zip(steps, times):
        entries = base if s.entries is not None and s is steps[0] else s.entries
        out.append(ms.Step(t, s.created_by, entries))
    return out


def tool_steps(n: int, day: int, base: list) -> list:
    tool = ms.fake_elf(f"tool-{n}", 24 * 1024, f"tool {n}\x00".encode())
    t = _times(day)
    layer = [ms.d("usr", t[1]), ms.d("usr/local", t[1]), ms.d("usr/local/bin", t[1])]
    layer.append(ms.f(f"usr/local/bin/tool{n}", tool, t[1], 0o755))
    return [
        ms.Step(t[0], f"/bin/sh -c #(nop) ADD file:{ms.sha256_hex(ms.build_tar(base))} in / ", base),
        ms.Step(t[1], f"/bin/sh -c #(nop) COPY file:{ms.sha256_hex(tool)} in /usr/local/bin/tool{n} ", layer),
        ms.Step(t[2], f"/bin/sh -c #(nop) ENV {ms.ENV_PATH}", None),
        ms.Step(t[3], f'/bin/sh -c #(nop)  ENTRYPOINT ["/usr/local/bin/tool{n}"]', None),
    ]


def tool_image(n: int, day: int, base: list):
    img = ms.build_image(tool_steps(n, day, base))
    config = json.loads(img.config)
    config["config"] = {"Env": [ms.ENV_PATH], "Entrypoint": [f"/usr/local/bin/tool{n}"]}
    return ms.Image(img.steps, img.layer_tars, ms.image_json(config))


@dataclass
class Blobs:
    """Compressed layers by their tar's digest: the shared base is compressed once."""

    level: int = 6
    done: dict[str, bytes] = field(default_factory=dict)

    def gzip(self, tar: bytes) -> bytes:
        key = ms.sha256_hex(tar)
        if key not in self.done:
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=self.level) as gz:
                gz.write(tar)
            self.done[key] = buf.getvalue()
        return self.done[key]


def oci_members(image, ref: str, blobs: Blobs, extra: bytes | None = None) -> list:
    """The members of an OCI layout (`oci-layout`, blobs, index.json), as the samples write it."""
    t = ms.epoch(image.created)
    held: dict[str, bytes] = {}
    descs = []
    for tar in image.layer_tars:
        blob = blobs.gzip(tar)
        held[ms.sha256_hex(blob)] = blob
        descs.append({"mediaType": ms.MT_LAYER["gzip"], "digest": ms.digest(blob), "size": len(blob)})
    held[ms.sha256_hex(image.config)] = image.config
    manifest = ms.image_json(
        {
            "schemaVersion": 2,
            "mediaType": ms.MT_OCI_MANIFEST,
            "config": {"mediaType": ms.MT_OCI_CONFIG, "digest": ms.digest(image.config), "size": len(image.config)},
            "layers": descs,
        }
    )
    held[ms.sha256_hex(manifest)] = manifest
    if extra is not None:
        held[ms.sha256_hex(extra)] = extra
    index = ms.image_json(
        {
            "schemaVersion": 2,
            "mediaType": ms.MT_OCI_INDEX,
            "manifests": [
                {
                    "mediaType": ms.MT_OCI_MANIFEST,
                    "digest": ms.digest(manifest),
                    "size": len(manifest),
                    "annotations": {ms.REF_ANNOTATION: ref},
                }
            ],
        }
    )
    return (
        [
            ms.outer_file("oci-layout", ms.image_json({"imageLayoutVersion": "1.0.0"}), t),
            ms.outer_dir("blobs", t),
            ms.outer_dir("blobs/sha256", t),
        ]
        + [ms.outer_file(f"blobs/sha256/{h}", held[h], t) for h in sorted(held)]
        + [ms.outer_file("index.json", index, t)]
    )


def oci_tar(image, ref: str, blobs: Blobs, extra: bytes | None = None) -> bytes:
    return ms.build_tar(oci_members(image, ref, blobs, extra), sort=False)


def oci_dir(folder: Path, image, ref: str, blobs: Blobs) -> None:
    for m in oci_members(image, ref, blobs):
        p = folder / m.name
        if m.type == tarfile.DIRTYPE:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(m.data)


@dataclass
class Fleet:
    folder: Path
    archives: list[Path]  # every input, the layout folder included
    forged: Path
    copy: Path  # build 1 with an extra blob
    broken: Path
    layout: Path
    layers: int  # layer references of the analyzable archives (cache hits on a warm run)


def make_fleet(
    folder: Path,
    builds: int = 18,
    tools: int = 2,
    big_mb: int = 0,
    extras: bool = True,
    shared: bool = True,
    file_kb: int = 256,
) -> Fleet:
    """`shared=False`: every build over its own big base (no layer in common: a cold cache
    misses every layer; the bench's cold/warm comparison)."""
    folder.mkdir(parents=True, exist_ok=True)
    blobs = Blobs()
    base = base_entries(big_mb, file_kb=file_kb)
    archives: list[Path] = []
    layers = 0

    def write(name: str, data: bytes, n_layers: int) -> Path:
        nonlocal layers
        p = folder / name
        p.write_bytes(data)
        archives.append(p)
        layers += n_layers
        return p

    images = [
        ms.build_image(relay_steps(1 + n % 28, False, base if shared else base_entries(big_mb, f"big-{n}", file_kb)))
        for n in range(builds)
    ]
    for n, img in enumerate(images, 1):
        ref = LATEST if n == builds else f"fleet/relay:build-{n}"
        write(f"relay-build-{n:03d}.oci.tar", oci_tar(img, ref, blobs), len(img.layer_tars))
    forged_img = ms.build_image(relay_steps(28, True, base))
    forged = write("relay-forged.oci.tar", oci_tar(forged_img, LATEST, blobs), len(forged_img.layer_tars))
    for n in range(tools):
        img = tool_image(n, 10 + n, base)
        write(f"tool-{n}.oci.tar", oci_tar(img, f"fleet/tool{n}:1", blobs), len(img.layer_tars))
    copy = broken = layout = folder
    if extras:
        extra = json.dumps({"note": "planted beside the image"}).encode()
        copy = write("relay-build-001-copy.oci.tar", oci_tar(images[0], "fleet/relay:build-1", blobs, extra), 3)
        layout = folder / "layout-build-2"
        oci_dir(layout, images[1], "fleet/relay:build-2", blobs)
        archives.append(layout)
        layers += len(images[1].layer_tars)
        whole = oci_tar(images[2], "fleet/relay:build-3", blobs)
        broken = folder / "relay-build-003-cut.oci.tar"
        broken.write_bytes(whole[: len(whole) // 2])
        archives.append(broken)
    return Fleet(folder, sorted(archives), forged, copy, broken, layout, layers)


if __name__ == "__main__":
    f = make_fleet(Path(sys.argv[1]), big_mb=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(len(f.archives), "inputs;", sum(os.path.getsize(p) for p in f.archives if p.is_file()) >> 20, "MB")
