"""Hash a blob, and if it is a layer, decompress, hash and walk it: all in one pass.

Two threads share the work so that both cores run hashlib/ISA-L/zstd with the
GIL released: the calling thread reads the outer member, hashes the compressed
bytes and decompresses; a worker hashes the uncompressed stream (the diff_id),
parses the tar headers and hashes each file's content. A bounded queue between
them keeps memory flat whatever the layer size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from forensics.archive.decompress import DecompressError, open_stream, sniff
from forensics.archive.layerfs import member_entry
from forensics.archive.tarstream import Member, Source, TarError, TarReader
from forensics.models import FileEntry

CHUNK = 4 << 20  # fewer GIL hand-offs between the two threads than 1 MiB
QUEUE_DEPTH = 4  # x CHUNK: at most 16 MiB in flight
HEAD = 4096  # enough bytes to sniff a tar header and any compression magic


@dataclass
class LayerScan:
    compression: str  # gzip, zstd, none
    diff_id: str | None = None
    uncompressed_size: int = 0
    files: list[FileEntry] = field(default_factory=list)  # every entry, normalized (layerfs)
    unsafe: list[tuple[str, str]] = field(default_factory=list)  # (raw name, why) escaping the root
    captured: dict[str, bytes] = field(default_factory=dict)  # raw member name -> content
    # raw member name -> "md5:<hex>" / "sha1:<hex>", for the files after a package-system path
    record_digests: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why the tar or the compressed stream could not be read to its end
    trailing_garbage: int = 0
    is_tar: bool = True


@dataclass
class Limits:
    max_uncompressed: int = 256 << 30  # per layer; beyond this we stop (decompression bomb)
    # Past 1 GiB of output, a ratio above this is a bomb. gzip cannot pass ~1030:1, so a
    # gzip layer is only bounded by max_uncompressed (a zero-filled disk image is legal);
    # zstd reaches 30,000:1 on zeros and is stopped here.
    max_ratio: int = 2000
    max_json: int = 16 << 20  # JSON documents held in memory
    max_capture: int = 64 << 20  # per captured file (package databases)
    record_digests: bool = True  # md5/sha1 for package records in the pass (off: --verify-packages changed)


def content_kind(head: bytes, size: int) -> str:
    if size == 0:
        return "empty"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"#!"):
        return "script"
    return "data"


class _HashingReader:
    """The outer member as a file-like object that hashes what passes through."""

    def __init__(self, first: bytes, read: Callable[[int], memoryview]) -> None:
        self._first = first
        self._read = read
        self.hash = hashlib.sha256(first)
        self.count = len(first)

    def read(self, n: int) -> bytes:
        if self._first:
            out, self._first = self._first[:n], self._first[n:]
            return out
        part = self._read(n)
        if not part:
            return b""
        self.hash.update(part)
        self.count += len(part)
        return bytes(part)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _QueueSource(Source):
    def __init__(self, q: queue.Queue, hash_stream: bool) -> None:
        super().__init__()
        self._q = q
        self.hash = hashlib.sha256() if hash_stream else None
        self.total = 0
        self.closed = False

    def _fill(self) -> bytes:
        if self.closed:
            return b""
        item = self._q.get()
        if item is None:
            self.closed = True
            return b""
        if self.hash is not None:
            self.hash.update(item)
        self.total += len(item)
        return item

    def drain(self) -> None:
        self._pos = len(self._buf)
        while self._fill():
            pass


# Paths that show a layer is (part of) a dpkg or apk v2 system, and the digest their
# package records use. Sorted layer tars (debuerreotype, docker, buildah) reach /etc/apt
# and /etc/dpkg before /usr, so the bulk of a base system gets its record digest here,
# in the pass; what came before the marker is read again later (forensics.history.pkgdigests).
_RECORD_MARKERS = (("etc/dpkg/", "md5"), ("etc/apt/", "md5"), ("var/lib/dpkg/", "md5"),
                   ("etc/apk/", "sha1"), ("lib/apk/db/", "sha1"))


_EARLY = ("bin/", "etc/")


class _Both:
    """md5 and sha1 at once, for files met before a layer shows which one its records use."""

    __slots__ = ("md5", "sha1")

    def __init__(self, data) -> None:
        self.md5, self.sha1 = hashlib.md5(data), hashlib.sha1(data)

    def update(self, data) -> None:
        self.md5.update(data)
        self.sha1.update(data)

    def hexdigest(self) -> str:
        return f"{self.md5.hexdigest()}:{self.sha1.hexdigest()}"


def record_digest(value: str | None, algo: str) -> str | None:
    """The `algo` digest out of a `record_digests` value ("md5:<hex>", "md5+sha1:<hex>:<hex>")."""
    if not value:
        return None
    names, _, hexes = value.partition(":")
    for name, hx in zip(names.split("+"), hexes.split(":")):
        if name == algo:
            return hx
    return None


def _record_algo(name: str) -> str | None:
    n = name.lstrip("./")
    for marker, algo in _RECORD_MARKERS:
        if n.startswith(marker) or n.startswith("usr/" + marker):
            return algo
    return None


def _walk(src: _QueueSource, scan: LayerScan, capture: Callable[[str, int], bool], limits: Limits) -> None:
    tar = TarReader(src)
    out = scan.files
    unsafe = scan.unsafe
    sha = hashlib.sha256
    alt = alt_name = None  # the record digest, once a marker path was seen in this layer
    record_digests = scan.record_digests
    early = _EARLY if limits.record_digests else ("\0",)
    try:
        while True:
            m: Member | None = tar.next()
            if m is None:
                break
            digest = kind = None
            if alt is None and early is _EARLY and ("dpkg/" in m.name or "apt/" in m.name or "apk/" in m.name):
                alt_name = _record_algo(m.name)
                alt = getattr(hashlib, alt_name) if alt_name else None
            if m.type == "file":
                first = tar.read(CHUNK)
                h = sha(first)
                if alt is not None:
                    h2, h2_name = alt(first), alt_name
                elif m.name.lstrip("./").startswith(early):
                    # /bin and /etc sort before the markers and are small: hash them anyway,
                    # so that a base layer is not decompressed again for a few files.
                    h2, h2_name = _Both(first), "md5+sha1"
                else:
                    h2 = None
                keep = [bytes(first)] if capture(m.name, m.size) and m.size <= limits.max_capture else None
                if len(first) < m.size:  # most files sit whole in the current chunk: no loop
                    while part := tar.read(CHUNK):
                        h.update(part)
                        if h2 is not None:
                            h2.update(part)
                        if keep is not None:
                            keep.append(bytes(part))
                digest = h.hexdigest()
                if h2 is not None:
                    record_digests[m.name] = f"{h2_name}:{h2.hexdigest()}"
                kind = content_kind(bytes(first[:4]), m.size)
                if keep is not None:
                    scan.captured[m.name] = b"".join(keep)
            out.append(member_entry(m.name, m.type, m.mode, m.uid, m.gid, m.size, m.mtime,
                                    m.linkname, digest, kind, unsafe))
        if tar.members_seen == 0 and not tar.end_seen:
            scan.is_tar = False
    except TarError as exc:
        scan.is_tar = bool(out) or tar.end_seen
        scan.error = f"layer tar: {exc} (after {len(out)} entries)"
    except Exception as exc:  # never leave the producer blocked on a full queue
        scan.error = f"layer tar: {type(exc).__name__}: {exc} (after {len(out)} entries)"
    finally:
        src.drain()  # the diff_id covers every byte, the end-of-archive padding included


def scan_stream(first: bytes, read: Callable[[int], memoryview], kind: str,
                capture: Callable[[str, int], bool], limits: Limits) -> tuple[str, int, LayerScan]:
    """Consume a blob whose first bytes sniff as `kind` (gzip, zstd or tar).

    Returns (sha256 hex of the blob, its byte count, the layer scan).
    """
    raw = _HashingReader(first, read)
    compression = "none" if kind == "tar" else kind
    scan = LayerScan(compression=compression)
    q: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    # Balance the two threads: inflating gzip is the slowest step, so the worker hashes
    # the diff_id; zstd inflates fast, so the producer does. For an uncompressed layer
    # the diff_id is the blob digest: no second hash at all.
    producer_hash = hashlib.sha256() if compression == "zstd" else None
    src = _QueueSource(q, hash_stream=compression == "gzip")
    worker = threading.Thread(target=_walk, args=(src, scan, capture, limits), daemon=True)
    worker.start()
    stream = open_stream(compression, raw)
    produced = 0
    stopped: str | None = None
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            produced += len(chunk)
            if produced > limits.max_uncompressed or (
                produced > (1 << 30) and produced > limits.max_ratio * max(raw.count, 1)
            ):
                stopped = (f"decompression stopped after {produced} bytes from {raw.count} "
                           "compressed bytes (decompression bomb guard)")
                break
            if producer_hash is not None:
                producer_hash.update(chunk)
            q.put(chunk)
    except DecompressError as exc:
        scan.error = f"{compression}: {exc}"
    except Exception as exc:  # the compressed stream is hostile; never let it escape as a traceback
        scan.error = f"{compression}: {type(exc).__name__}: {exc}"
    finally:
        q.put(None)
        worker.join()
    if stopped is not None:
        scan.error = stopped  # the walker saw a cut stream; the cut is ours, not the archive's
    raw.drain()
    scan.trailing_garbage = getattr(stream, "trailing_garbage", 0)
    scan.uncompressed_size = produced
    if stopped is None:
        diff = src.hash or producer_hash or raw.hash
        scan.diff_id = "sha256:" + diff.hexdigest()
    return raw.hash.hexdigest(), raw.count, scan


def sniff_head(read: Callable[[int], memoryview]) -> bytes:
    """Read up to HEAD bytes (joining short reads) to decide what a blob is."""
    parts: list[bytes] = []
    got = 0
    while got < HEAD:
        part = read(HEAD - got)
        if not part:
            break
        parts.append(bytes(part))
        got += len(part)
    return b"".join(parts)


__all__ = ["LayerScan", "Limits", "scan_stream", "sniff", "sniff_head", "content_kind"]
