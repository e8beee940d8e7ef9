"""Builders of hostile inputs for tests/test_robustness.py.

Everything here produces real bytes with tarfile/gzip/zstandard/json, never
with the package under test, so a bug in the reader cannot vouch for itself.
The OCI builder computes every digest, size and diff_id correctly: whatever
attack a test plants is then the only thing wrong with the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zstandard

BLOCK = 512
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
MTIME = 1_700_000_000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hexof(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jbytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------
# tar members


@dataclass
class M:
    """One tar member to write. type: file, dir, symlink, hardlink, fifo, char."""

    name: str
    data: bytes = b""
    type: str = "file"
    link: str = ""
    mode: int | None = None
    pax: dict[str, str] | None = None
    mtime: int = MTIME
    uid: int = 0
    gid: int = 0


_TARTYPE = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "char": tarfile.CHRTYPE,
}


def _tarinfo(m: M) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(m.name)
    ti.type = _TARTYPE[m.type]
    ti.mtime = m.mtime
    ti.uid, ti.gid = m.uid, m.gid
    ti.uname = ti.gname = ""
    ti.mode = m.mode if m.mode is not None else (0o755 if m.type == "dir" else 0o644)
    ti.linkname = m.link
    ti.size = len(m.data) if m.type == "file" else 0
    if m.pax:
        ti.pax_headers = dict(m.pax)
    return ti


def tar_bytes(members: list[M | bytes], fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    """A tar of `members`; a bytes item is spliced in raw (pre-built hostile headers).

    No record padding: the archive is exactly the members plus two zero blocks.
    """
    out = bytearray()
    for m in members:
        if isinstance(m, (bytes, bytearray)):
            out += m
            continue
        ti = _tarinfo(m)
        out += ti.tobuf(fmt, "utf-8", "surrogateescape")
        if m.type == "file" and m.data:
            out += m.data + b"\0" * ((-len(m.data)) % BLOCK)
    if end:
        out += b"\0" * (2 * BLOCK)
    return bytes(out)


def header(
    name: bytes | str,
    *,
    size: int = 0,
    typeflag: bytes = b"0",
    linkname: bytes = b"",
    size_field: bytes | None = None,
    mode: bytes = b"0000644\0",
    checksum: bytes | None = None,
    magic: bytes = b"ustar\x0000",
    mtime_field: bytes | None = None,
    uid_field: bytes | None = None,
) -> bytes:
    """One raw 512-byte ustar header; fields may be overridden with hostile bytes."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    b = bytearray(BLOCK)
    b[0:100] = name[:100].ljust(100, b"\0")
    b[100:108] = mode
    b[108:116] = uid_field if uid_field is not None else b"0000000\0"
    b[116:124] = b"0000000\0"
    b[124:136] = size_field if size_field is not None else (b"%011o\0" % size)
    b[136:148] = mtime_field if mtime_field is not None else (b"%011o\0" % MTIME)
    b[148:156] = b" " * 8
    b[156:157] = typeflag
    b[157:257] = linkname[:100].ljust(100, b"\0")
    b[257:265] = magic
    if checksum is None:
        b[148:156] = b"%06o\0 " % sum(b)
    else:
        b[148:156] = checksum
    return bytes(b)


def raw_member(name: bytes | str, data: bytes = b"", **kw) -> bytes:
    """A raw header plus its (padded) content."""
    return header(name, size=len(data), **kw) + data + b"\0" * ((-len(data)) % BLOCK)


def base256(value: int, width: int = 12) -> bytes:
    """GNU base-256 numeric field (negative values as two's complement)."""
    raw = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:] if value >= 0 else bytes([raw[0] | 0xC0]) + raw[1:]


def pax_record(key: str, value: str | bytes) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body)
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def strip_end(tar: bytes) -> bytes:
    """A tar without its trailing zero blocks (to append more members)."""
    end = len(tar)
    while end >= BLOCK and tar[end - BLOCK : end].count(0) == BLOCK:
        end -= BLOCK
    return tar[:end]


def append_members(tar: bytes, extra: list[M | bytes], at_start: bool = False) -> bytes:
    """Add members (or raw header bytes) at the start or end of an existing tar."""
    more = tar_bytes(extra, end=False)
    if at_start:
        return more + tar
    return strip_end(tar) + more + b"\0" * (2 * BLOCK)


def tar_entries(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(ti, tf.extractfile(ti).read() if ti.isfile() else b"") for ti in tf.getmembers()]


# --------------------------------------------------------------------------
# compression


def gz(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def zst(data: bytes, level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(data)


def compress(data: bytes, kind: str) -> bytes:
    return {"gzip": gz, "zstd": zst, "none": lambda d: d}[kind](data)


# sha256 of the uncompressed bomb tar (header of "zero" + N zero bytes + end blocks),
# precomputed: hashing 2 GiB costs ~1.5 s that a test should not pay every run.
ZERO_BOMB_DIFF_IDS = {
    1 << 30: "sha256:ecbbacb95c1c2a19e530aca112652a86526aa7d44d36a3e69d869ed1734dbed4",
    (1 << 30) + (64 << 20): "sha256:5fbfeec693555cd36471302e1c6d226c5cdd97c4389589eb094ae36b6b1b27d3",
    (5 << 30) // 4: "sha256:ffbcfaedfdb74de748ca9f52fd42a7d1290ba7f8425f2de64d961b01d19c85f1",
    2 << 30: "sha256:d8b3798857ef9e2707088e2ed71355cb54ed6f96893bf0aa4a6d5f921ea1c446",
}


def _zero_tar_header(total: int) -> bytes:
    ti = tarfile.TarInfo("zero")
    ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = total, MTIME, 0o644, "", ""
    return ti.tobuf(tarfile.GNU_FORMAT)


def zero_bomb_diff_id(total: int) -> str:
    if total in ZERO_BOMB_DIFF_IDS:
        return ZERO_BOMB_DIFF_IDS[total]
    h = hashlib.sha256(_zero_tar_header(total))
    zeros = b"\0" * (16 << 20)
    left = total
    while left:
        n = min(left, len(zeros))
        h.update(zeros[:n])
        left -= n
    h.update(b"\0" * (2 * BLOCK))
    return "sha256:" + h.hexdigest()


def zero_bomb(total: int, kind: str) -> tuple[bytes, str]:
    """A layer holding one file "zero" of `total` zero bytes; returns (blob, diff_id).

    Built from repeated compressed members/frames of 16 MiB of zeros (multi-member
    gzip and multi-frame zstd are both valid single streams), so building takes
    milliseconds. gzip cannot exceed ~1030:1 (2 GiB -> ~2 MB); zstd reaches ~30000:1.
    """
    chunk = 16 << 20
    assert total % chunk == 0
    if kind == "gzip":
        comp = lambda data: gz(data, level=9)  # noqa: E731
    else:
        cctx = zstandard.ZstdCompressor(level=3)
        comp = cctx.compress
    zero_member = comp(b"\0" * chunk)
    blob = comp(_zero_tar_header(total)) + zero_member * (total // chunk) + comp(b"\0" * (2 * BLOCK))
    return blob, zero_bomb_diff_id(total)


# --------------------------------------------------------------------------
# image layouts


def default_layer() -> bytes:
    return tar_bytes(
        [
            M("etc/", type="dir"),
            M("etc/hostname", b"box\n"),
            M("bin/", type="dir"),
            M("bin/sh", b"\x7fELF" + b"\0" * 60, mode=0o755),
        ]
    )


@dataclass
class Layer:
    """A layer blob and the diff_id its config declares."""

    blob: bytes
    diff_id: str
    compression: str = "gzip"
    media_type: str | None = None

    @classmethod
    def of(cls, tar: bytes, compression: str = "gzip") -> Layer:
        return cls(compress(tar, compression), sha(tar), compression)

    @property
    def mt(self) -> str:
        return self.media_type or MT_LAYER[self.compression]


@dataclass
class Oci:
    """A consistent single-image OCI archive; every document may be replaced or mutated.

    `config_bytes` / `manifest_bytes` / `index_bytes` replace the serialized document
    (digests of the others are then computed over the replacement, so only the
    replacement itself is hostile). `mutate_*` edit the dict before serialization.
    """

    layers: list[Layer] = field(default_factory=lambda: [Layer.of(default_layer())])
    config_bytes: bytes | None = None
    manifest_bytes: bytes | None = None
    index_bytes: bytes | None = None
    mutate_config: Callable[[dict], Any] | None = None
    mutate_manifest: Callable[[dict], Any] | None = None
    mutate_index: Callable[[dict], Any] | None = None
    extra_blobs: list[bytes] = field(default_factory=list)
    extra_members: list[M | bytes] = field(default_factory=list)  # after index.json
    leading_members: list[M | bytes] = field(default_factory=list)  # before oci-layout
    ref: str = "example.test/hostile:1"

    def config_doc(self) -> dict:
        return {
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": [
                {"created": "2023-11-14T22:13:20Z", "created_by": f"ADD layer{i} /"} for i in range(len(self.layers))
            ],
        }

    def documents(self) -> tuple[bytes, bytes, bytes]:
        cfg = self.config_doc()
        if self.mutate_config:
            cfg = self.mutate_config(cfg) or cfg
        config = self.config_bytes if self.config_bytes is not None else jbytes(cfg)
        man = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [
                {"mediaType": layer.mt, "digest": sha(layer.blob), "size": len(layer.blob)} for layer in self.layers
            ],
        }
        if self.mutate_manifest:
            man = self.mutate_manifest(man) or man
        manifest = self.manifest_bytes if self.manifest_bytes is not None else jbytes(man)
        idx = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [
                {
                    "mediaType": MT_MANIFEST,
                    "digest": sha(manifest),
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": self.ref},
                }
            ],
        }
        if self.mutate_index:
            idx = self.mutate_index(idx) or idx
        index = self.index_bytes if self.index_bytes is not None else jbytes(idx)
        return config, manifest, index

    def members(self) -> list[M | bytes]:
        config, manifest, index = self.documents()
        blobs: dict[str, bytes] = {}
        for b in [config, manifest, *(layer.blob for layer in self.layers), *self.extra_blobs]:
            blobs.setdefault(hexof(b), b)
        out: list[M | bytes] = list(self.leading_members)
        out += [
            M("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            M("blobs/", type="dir"),
            M("blobs/sha256/", type="dir"),
        ]
        out += [M(f"blobs/sha256/{h}", b) for h, b in sorted(blobs.items())]
        out.append(M("index.json", index))
        out += self.extra_members
        return out

    def tar(self) -> bytes:
        return tar_bytes(self.members())

    def write_dir(self, root) -> None:
        """The same layout as a directory on disk (regular files only)."""
        for m in self.members():
            assert isinstance(m, M)
            p = root / m.name
            if m.type == "dir":
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(m.data)


def docker_archive(
    layers: list[bytes] | None = None,
    manifest_json: bytes | None = None,
    mutate_manifest: Callable[[list], Any] | None = None,
    extra_members: list[M | bytes] | None = None,
) -> bytes:
    """A docker save (Docker 25+ style names: <hex>.json config, <diffid>.tar layers)."""
    layers = layers if layers is not None else [default_layer()]
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layers]},
        "history": [{"created_by": f"ADD layer{i} /"} for i in range(len(layers))],
    }
    config = jbytes(cfg)
    man = [
        {
            "Config": f"{hexof(config)}.json",
            "RepoTags": ["example.test/hostile:1"],
            "Layers": [f"{hexof(t)}.tar" for t in layers],
        }
    ]
    if mutate_manifest:
        man = mutate_manifest(man) or man
    manifest = manifest_json if manifest_json is not None else jbytes(man)
    members: list[M | bytes] = [M(f"{hexof(config)}.json", config)]
    members += [M(f"{hexof(t)}.tar", t) for t in layers]
    members.append(M("manifest.json", manifest))
    members += extra_members or []
    return tar_bytes(members)


def nested_indexes(depth: int, fanout: int, leaf: bytes) -> tuple[list[bytes], bytes]:
    """A DAG of image indexes: each level lists the level below `fanout` times.

    Returns (all index blobs, the top one). Every digest is genuine: no cycle,
    no mismatch, only an amplification of (fanout ** depth) paths to the leaf.
    """
    blobs = []
    child, child_mt = leaf, MT_MANIFEST
    for _ in range(depth):
        doc = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{"mediaType": child_mt, "digest": sha(child), "size": len(child)}] * fanout,
        }
        child, child_mt = jbytes(doc), MT_INDEX
        blobs.append(child)
    return blobs, child


def cyclic_index(n: int = 2) -> tuple[list[bytes], bytes]:
    """n index blobs stored under made-up names that point at each other in a ring.

    Names cannot be the true sha256 of a blob that contains its own name, so the
    names are arbitrary: blob i lives at blobs/sha256/<name_i> and lists name_{i+1}.
    Returns (tar members, index.json bytes).
    """
    names = [hashlib.sha256(f"cycle-{i}".encode()).hexdigest() for i in range(n)]
    members = []
    for i, name in enumerate(names):
        nxt = names[(i + 1) % n]
        doc = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{"mediaType": MT_INDEX, "digest": "sha256:" + nxt, "size": 1}],
        }
        members.append(M(f"blobs/sha256/{name}", jbytes(doc)))
    top = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_INDEX, "digest": "sha256:" + names[0], "size": 1}],
    }
    return members, jbytes(top)


def truncations(size: int, n: int = 20) -> list[int]:
    """Offsets to cut an archive at: n evenly spaced, inside the first header, near the end."""
    offsets = {1, 100, 257, 511, 512, 513, 1000, size - 1, size - 511, size - 513, size - 1025, size - 1537}
    offsets |= {size * k // (n + 1) for k in range(1, n + 1)}
    return sorted(o for o in offsets if 0 < o < size)


def deflate_corrupt(blob: bytes, at: int) -> bytes:
    """Flip bytes in the middle of a compressed stream."""
    b = bytearray(blob)
    for i in range(at, min(at + 16, len(b) - 8)):
        b[i] ^= 0xFF
    return bytes(b)


def image_tar(tmp_path, layers: list[list[M]], history: list[dict], name: str = "img.tar"):
    """An OCI archive of these layers (members) whose config carries this history: the
    history tests' image, every digest consistent. Returns its path."""

    def mutate(cfg):
        cfg["history"] = history

    path = tmp_path / name
    path.write_bytes(Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate).tar())
    return path
