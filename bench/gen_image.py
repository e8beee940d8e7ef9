#!/usr/bin/env python3
"""Fallback synthetic image generator for run_bench.py (stdlib + zstandard).

Used only when ../shared/bench/make_image.py is not available. Writes an OCI
image layout tarball (oci-layout, blobs/sha256/..., index.json) whose layers
hold about --size bytes of uncompressed tar in total: many small text-like
files, some medium ones, a few large ones, part compressible and part random,
spread over a few layers. Deterministic for a given --seed.

    python bench/gen_image.py --size 200M --compression zstd --oci out.oci.tar
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import tempfile
import time

MiB = 1 << 20
WORDS = (
    b"the of and to in is for on that with as by this from are be at or an it not which "
    b"config lib usr share doc bin etc var log python module import return def class self "
    b"error warning info debug value key path file data index layer image blob digest "
    b"sha256 manifest version release build package install remove update"
).split()


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text and text[-1] in mult:
        return int(float(text[:-1]) * mult[text[-1]])
    return int(text)


class _HashWriter:
    """Counts and hashes what passes to an underlying writer (the uncompressed tar)."""

    def __init__(self, out) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.count += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def _text_pool(rng: random.Random, size: int) -> bytes:
    """A compressible, text-like pool that file contents are sliced from."""
    lines = []
    total = 0
    while total < size:
        line = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + b"\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


def _file_sizes(rng: random.Random, budget: int) -> list[int]:
    """Distro-like distribution: mostly small files, a tail of large ones (~25 files per MiB)."""
    sizes: list[int] = []
    total = 0
    while total < budget:
        r = rng.random()
        if r < 0.85:
            s = rng.randint(0, 8 << 10)
        elif r < 0.999:
            s = int((8 << 10) * 32 ** rng.random())  # 8 KiB .. 256 KiB, log-uniform
        else:
            s = rng.randint(10 * MiB, 40 * MiB)
        s = min(s, budget - total)
        sizes.append(s)
        total += s + 1024  # header + padding, roughly
    return sizes


def _write_layer(
    path: str, index: int, budget: int, compression: str, rng: random.Random, pool: bytes, level: int | None
) -> tuple[str, int, str]:
    """Write one layer blob; return (blob sha256 hex, blob size, diff_id hex)."""
    with open(path, "wb") as raw:
        if compression == "gzip":
            comp = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level or 6, mtime=0)
        elif compression == "zstd":
            import zstandard

            comp = zstandard.ZstdCompressor(level=level or 3).stream_writer(raw, closefd=False)
        else:
            comp = raw
        hw = _HashWriter(comp)
        with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            dirs = [f"layer{index}/d{i:03d}" for i in range(64)]
            for d in dirs:
                ti = tarfile.TarInfo(d)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                tar.addfile(ti)
            for n, size in enumerate(_file_sizes(rng, budget)):
                name = f"{rng.choice(dirs)}/f{n:06d}.{rng.choice(['txt', 'so', 'py', 'conf', 'bin'])}"
                if rng.random() < 0.3:  # incompressible
                    data = rng.randbytes(size)
                else:
                    off = rng.randrange(0, max(1, len(pool) - size)) if size < len(pool) else 0
                    data = (pool * (size // len(pool) + 1))[:size] if size >= len(pool) else pool[off : off + size]
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
                tar.addfile(ti, io.BytesIO(data))
                if n % 97 == 0:
                    link = tarfile.TarInfo(name + ".lnk")
                    link.type, link.linkname = tarfile.SYMTYPE, os.path.basename(name)
                    tar.addfile(link)
        if comp is not raw:
            comp.close()
        diff_id = hw.hash.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest(), os.path.getsize(path), diff_id


def generate(
    size: int,
    compression: str,
    out: str,
    *,
    layers: int = 4,
    seed: int = 1,
    level: int | None = None,
    quiet: bool = False,
) -> dict:
    rng = random.Random(seed)
    pool = _text_pool(rng, 4 * MiB)
    # Uneven layer sizes, like a base + runtime + app layers.
    weights = [rng.uniform(0.5, 2.0) for _ in range(layers)]
    budgets = [int(size * w / sum(weights)) for w in weights]
    tmpdir = tempfile.mkdtemp(prefix=".genimg-", dir=os.path.dirname(os.path.abspath(out)))
    t0 = time.time()
    media = {
        "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
        "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
        "none": "application/vnd.oci.image.layer.v1.tar",
    }[compression]
    layer_info = []
    try:
        for i, budget in enumerate(budgets):
            p = os.path.join(tmpdir, f"layer{i}")
            digest, nbytes, diff_id = _write_layer(p, i, budget, compression, rng, pool, level)
            layer_info.append({"path": p, "digest": digest, "size": nbytes, "diff_id": diff_id})
            if not quiet:
                print(
                    f"layer {i}: {budget / MiB:.1f} MiB tar -> {nbytes / MiB:.1f} MiB [{time.time() - t0:.1f}s]",
                    file=sys.stderr,
                    flush=True,
                )
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + li["diff_id"] for li in layer_info]},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": f"/bin/sh -c #(nop) ADD layer{i}"}
                for i in range(layers)
            ],
        }
        cfg = json.dumps(config, separators=(",", ":")).encode()
        cfg_d = hashlib.sha256(cfg).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + cfg_d,
                "size": len(cfg),
            },
            "layers": [
                {"mediaType": media, "digest": "sha256:" + li["digest"], "size": li["size"]} for li in layer_info
            ],
        }
        man = json.dumps(manifest, separators=(",", ":")).encode()
        man_d = hashlib.sha256(man).hexdigest()
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + man_d,
                        "size": len(man),
                        "annotations": {"org.opencontainers.image.ref.name": "bench"},
                    }
                ],
            },
            separators=(",", ":"),
        ).encode()

        def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(ti, io.BytesIO(data))

        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            for li in layer_info:
                ti = tarfile.TarInfo("blobs/sha256/" + li["digest"])
                ti.size, ti.mode, ti.mtime = li["size"], 0o644, 1_700_000_000
                with open(li["path"], "rb") as f:
                    tar.addfile(ti, f)
            add_bytes(tar, "blobs/sha256/" + cfg_d, cfg)
            add_bytes(tar, "blobs/sha256/" + man_d, man)
            add_bytes(tar, "index.json", index)
    finally:
        for li in layer_info:
            try:
                os.unlink(li["path"])
            except OSError:
                pass
        for name in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, name))
        os.rmdir(tmpdir)
    return {
        "config": "sha256:" + cfg_d,
        "diff_ids": config["rootfs"]["diff_ids"],
        "layers": [
            {"diff_id": "sha256:" + li["diff_id"], "digest": "sha256:" + li["digest"], "size": li["size"]}
            for li in layer_info
        ],
        "oci": {"path": out, "manifest": "sha256:" + man_d, "bytes": os.path.getsize(out)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="100M", help="total uncompressed layer size (K/M/G suffixes, powers of 1024)")
    ap.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--level", type=int, default=None, help="compression level (gzip 6, zstd 3 by default)")
    ap.add_argument("--oci", required=True, help="output OCI layout tarball")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    summary = generate(
        parse_size(a.size), a.compression, a.oci, layers=a.layers, seed=a.seed, level=a.level, quiet=a.quiet
    )
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
