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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
    # limit name -> (entries or bytes not analyzed, the first such entry name, what the limit is)
    over_limit: dict[str, LimitHit] = field(default_factory=dict)


@dataclass
class Limits:
    """The safety limits (README "Limits"). What exceeds one is archive.limit-exceeded,
    naming the limit and what was left unanalyzed (forensics.verify.limits)."""

    max_uncompressed: int = 256 << 30  # per layer; beyond this we stop (decompression bomb)
    # Past 1 GiB of output, a ratio above this is a bomb. gzip cannot pass ~1030:1, so a
    # gzip layer is only bounded by max_uncompressed (a zero-filled disk image is legal);
    # zstd reaches 30,000:1 on zeros and is stopped here.
    max_ratio: int = 2000
    max_json: int = 16 << 20  # JSON documents held in memory
    max_capture: int = 64 << 20  # per captured file (package databases)
    record_digests: bool = True  # md5/sha1 for package records in the pass (off: --verify-packages changed)
    # Entries kept for analysis (outer entries, and layer entries, each). Each costs about 2.5 KB
    # through analysis and JSON output, plus about 8 bytes per character of its name, so an
    # input's allowance grows with its size: a real image has one file per ~20 KB of
    # compressed input, a forged one can pack one per 4 bytes (70,000 files with 246-character
    # names in 398 KB of zstd: 310 MB with 64,000 kept). Any input may hold `entries_floor`
    # entries, then one per `input_bytes_per_entry` bytes read so far (a 10 MB input: 50,000),
    # never more than `max_entries`. The floors keep any input under 10 MB below 300 MB.
    entries_floor: int = 48_000
    input_bytes_per_entry: int = 200
    max_entries: int = 2_000_000
    max_layer_entries: int = 1_000_000  # entries of one layer
    max_path_length: int = 4096  # characters of one entry name (Linux PATH_MAX)
    max_path_depth: int = 256  # components of one entry name
    # Characters of all entry names and link targets (outer, and layer, each): 12 MiB for
    # any input, then one per `input_bytes_per_name_char` bytes read, at most max_name_bytes.
    names_floor: int = 12 << 20
    input_bytes_per_name_char: int = 8
    max_name_bytes: int = 256 << 20
    max_history: int = 5_000  # history entries analyzed per image (Docker allows 127 layers)


@dataclass
class LimitHit:
    limit: str  # the Limits field
    value: int  # its value
    count: int = 0  # entries left unanalyzed (or bytes, for the decompression limits)
    example: str | None = None  # the first entry name left out


class EntryBudget(Protocol):
    """What the walk asks of a budget: the serial Budget, or a worker's share of a pool
    (forensics.archive.parallel)."""

    def refuse(self, name: str, linkname: str, layer_entries: int | None = None) -> str | None: ...


class Budget:
    """What one scan has used of its Limits, so an entry past one is counted, not kept.

    `bytes_read` says how many input bytes have been read so far (the entry allowance
    grows with it). Outer entries and layer entries have separate allowances, so that a
    layer of a million files cannot starve the archive's own index.json. One scan, one
    Budget: layers are walked one after the other."""

    def __init__(self, limits: Limits, bytes_read: Callable[[], int]) -> None:
        self.limits = limits
        self.bytes_read = bytes_read
        self.entries = [0, 0]  # outer, layer
        self.name_chars = [0, 0]

    def refuse(self, name: str, linkname: str, layer_entries: int | None = None) -> str | None:
        """The limit this entry would exceed (None: keep it, and it is counted).
        `layer_entries`: the entries its layer holds so far (None for an outer entry)."""
        lim = self.limits
        if len(name) > lim.max_path_length:
            return "max_path_length"
        if name.count("/") > lim.max_path_depth:
            return "max_path_depth"
        kind = 0 if layer_entries is None else 1
        if layer_entries is not None and layer_entries >= lim.max_layer_entries:
            return "max_layer_entries"
        n = self.entries[kind]
        if n >= lim.max_entries:
            return "max_entries"
        if n >= lim.entries_floor and n >= self.bytes_read() // lim.input_bytes_per_entry:
            return "input_bytes_per_entry"
        chars = self.name_chars[kind] + len(name) + len(linkname)
        if chars > lim.max_name_bytes:
            return "max_name_bytes"
        if chars > lim.names_floor and chars > self.bytes_read() // lim.input_bytes_per_name_char:
            return "input_bytes_per_name_char"
        self.entries[kind] = n + 1
        self.name_chars[kind] = chars
        return None


def note_limit(hits: dict[str, LimitHit], limit: str, value: int, example: str | None, count: int = 1) -> None:
    hit = hits.get(limit)
    if hit is None:
        hits[limit] = hit = LimitHit(limit, value, 0, example[:200] if example else None)
    hit.count += count


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
_RECORD_MARKERS = (
    ("etc/dpkg/", "md5"),
    ("etc/apt/", "md5"),
    ("var/lib/dpkg/", "md5"),
    ("etc/apk/", "sha1"),
    ("lib/apk/db/", "sha1"),
)


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


def _walk(
    src: _QueueSource, scan: LayerScan, capture: Callable[[str, int], bool], limits: Limits, budget: EntryBudget | None
) -> None:
    tar = TarReader(src)
    out = scan.files
    unsafe = scan.unsafe
    sha = hashlib.sha256
    alt = alt_name = None  # the record digest, once a marker path was seen in this layer
    record_digests = scan.record_digests
    early = _EARLY if limits.record_digests else ("\0",)
    # One int object per distinct mode and mtime, not one per entry (28 bytes each): a layer
    # has a handful of modes and often a single mtime.
    modes: dict[int, int] = {}  # at most 4096: modes are masked to 0o7777
    mtimes: dict[float, float] = {}
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
                # content_kind, inline (a memoryview compares with bytes by content)
                kind = (
                    "empty"
                    if m.size == 0
                    else "elf"
                    if first[:4] == b"\x7fELF"
                    else "script"
                    if first[:2] == b"#!"
                    else "data"
                )
                if keep is not None:
                    scan.captured[m.name] = b"".join(keep)
            if budget is not None:
                refused = budget.refuse(m.name, m.linkname, len(out))
                if refused is not None:  # read and hashed (the diff_id covers it), not analyzed
                    note_limit(scan.over_limit, refused, getattr(limits, refused), m.name)
                    scan.captured.pop(m.name, None)
                    continue
            mtime = m.mtime
            if type(mtime) is int:  # 1 == 1.0 as keys: only ints share, a pax float stays a float
                # bounded: a forged layer may give every entry its own mtime
                mtime = mtimes.setdefault(mtime, mtime) if len(mtimes) < 4096 else mtimes.get(mtime, mtime)
            out.append(
                member_entry(
                    m.name,
                    m.type,
                    modes.setdefault(m.mode, m.mode),
                    m.uid,
                    m.gid,
                    m.size,
                    mtime,
                    m.linkname,
                    digest,
                    kind,
                    unsafe,
                )
            )
        if tar.members_seen == 0 and not tar.end_seen:
            scan.is_tar = False
    except TarError as exc:
        scan.is_tar = bool(out) or tar.end_seen
        scan.error = f"layer tar: {exc} (after {len(out)} entries)"
    except Exception as exc:  # never leave the producer blocked on a full queue
        scan.error = f"layer tar: {type(exc).__name__}: {exc} (after {len(out)} entries)"
    finally:
        src.drain()  # the diff_id covers every byte, the end-of-archive padding included


def scan_stream(
    first: bytes,
    read: Callable[[int], memoryview],
    kind: str,
    capture: Callable[[str, int], bool],
    limits: Limits,
    budget: EntryBudget | None = None,
) -> tuple[str, int, LayerScan]:
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
    worker = threading.Thread(target=_walk, args=(src, scan, capture, limits, budget), daemon=True)
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
                stopped = "max_uncompressed" if produced > limits.max_uncompressed else "max_ratio"
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
        # The walker saw a cut stream; the cut is ours (a decompression bomb guard), not
        # the archive's: a limit, not damage.
        scan.error = None
        note_limit(
            scan.over_limit,
            stopped,
            getattr(limits, stopped),
            f"decompression stopped after {produced} bytes from {raw.count} compressed bytes "
            "(decompression bomb guard)",
            count=0,
        )
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


__all__ = [
    "Budget",
    "LayerScan",
    "LimitHit",
    "Limits",
    "note_limit",
    "scan_stream",
    "sniff",
    "sniff_head",
    "content_kind",
]
