"""The one pass over the input: every outer entry hashed as it streams by.

Input may be a tar (plain, gzip or zstd), stdin, or a directory (an OCI layout
on disk). Blobs come in any order relative to index.json/manifest.json, so
nothing here interprets the archive: it records what every entry is, its
digest, the JSON documents, and the walk of every layer. `resolve` turns this
inventory into images after the pass.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from forensics.archive.decompress import DecompressError, open_stream, sniff
from forensics.archive.layerscan import (
    CHUNK,
    HEAD,
    Budget,
    EntryBudget,
    LayerScan,
    LimitHit,
    Limits,
    note_limit,
    scan_stream,
    sniff_head,
)
from forensics.archive.tarstream import FileSource, TarError, TarReader
from forensics.paths import norm_outer

ProgressFn = Callable[[int, int | None], None]

# Files whose content we keep regardless of what they sniff as: the metadata of both layouts.
TRAILING_LIMIT = 64 << 20
METADATA_NAMES = {"manifest.json", "index.json", "oci-layout", "repositories", "VERSION", "json"}


class InputError(Exception):
    """The input cannot be analyzed at all (not found, not an archive)."""


@dataclass
class OuterEntry:
    seq: int  # position in the archive
    name: str  # as stored
    path: str  # normalized, relative, no leading "./" or "/"
    type: str  # file, dir, symlink, hardlink, other
    size: int  # as the header says
    mode: int = 0
    mtime: float = 0
    linkname: str = ""
    sha256: str | None = None
    nbytes: int = 0  # bytes actually read
    sniffed: str | None = None  # gzip, zstd, tar, json, data, ...
    data: bytes | None = None  # kept content (JSON documents and small metadata)
    layer: LayerScan | None = None
    error: str | None = None  # the entry could not be read to its end
    json_limit: int | None = None  # a document not kept: larger than this limit (Limits.max_json)


@dataclass
class Inventory:
    source: str
    is_dir: bool
    input_size: int = 0
    input_sha256: str | None = None
    input_compression: str | None = None
    entries: list[OuterEntry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # damage to the outer container itself
    truncated: bool = False
    over_limit: dict[str, LimitHit] = field(default_factory=dict)  # outer entries left unanalyzed, by limit
    _by_path: dict[str, list[OuterEntry]] = field(default_factory=dict, repr=False)

    def add(self, entry: OuterEntry) -> None:
        self.entries.append(entry)
        self._by_path.setdefault(entry.path, []).append(entry)

    def get_all(self, path: str) -> list[OuterEntry]:
        return self._by_path.get(norm_outer(path)[0], [])

    def get(self, path: str) -> OuterEntry | None:
        """The copy of a path that extraction would leave: the last one."""
        found = self.get_all(path)
        return found[-1] if found else None


class Watch(Protocol):
    """Told how the pass over a seekable input goes (forensics.archive.parallel), so later
    stages can start before it ends: first every outer entry the walk found (layer blobs
    not read yet, `pending` by seq), then each of those as its worker is done. `planned`
    returns the seqs in the order the watcher wants them (the rest follow, largest first).
    Runs on the parent's main thread while workers read; must not raise."""

    def planned(self, inv: Inventory, pending: set[int]) -> list[int]: ...

    def scanned(self, entry: OuterEntry) -> None: ...


class Sink(Protocol):
    """Where a copy of the raw input goes as it is read (--keep-input); must not raise."""

    def write(self, data: bytes) -> None: ...


class _BackgroundHash:
    """sha256 on its own thread: hashlib releases the GIL, so hashing the whole input
    (chain of custody) overlaps with decompression instead of adding to it. The kept
    copy of a stream is written on the same thread, from the same chunks: what is kept
    is exactly what was hashed."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._h = hashlib.sha256()
        self._sink = sink
        self._q: queue.Queue = queue.Queue(maxsize=16)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (chunk := self._q.get()) is not None:
            self._h.update(chunk)
            if self._sink is not None:
                self._sink.write(chunk)

    def update(self, chunk: bytes) -> None:
        self._q.put(chunk)

    def hexdigest(self) -> str:
        self._q.put(None)
        self._t.join()
        return self._h.hexdigest()


class _CountingReader:
    """The raw input: counts and hashes what is read (chain of custody), reports progress."""

    def __init__(self, f, progress: ProgressFn | None, total: int | None, sink: Sink | None = None) -> None:
        self._f = f
        self.hash = _BackgroundHash(sink)
        self.count = 0
        self._progress = progress
        self._total = total
        self._next_report = 0

    def read(self, n: int) -> bytes:
        data = self._f.read(n)
        if data:
            self.hash.update(data)
            self.count += len(data)
            if self._progress and self.count >= self._next_report:
                self._progress(self.count, self._total)
                self._next_report = self.count + (8 << 20)
        return data


class _Prefixed:
    def __init__(self, head: bytes, f) -> None:
        self._head = head
        self._f = f

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._f.read(n)


class _MemberReader:
    """Content of the current outer member; truncation becomes a recorded error."""

    def __init__(self, read: Callable[[int], memoryview | bytes]) -> None:
        self._read = read
        self.error: str | None = None

    def __call__(self, n: int):
        if self.error:
            return b""
        try:
            return self._read(n)
        except (TarError, DecompressError) as exc:
            self.error = str(exc)
            return b""
        except OSError as exc:
            self.error = f"read error: {exc}"
            return b""


def _default_capture(name: str, size: int) -> bool:
    return False


def is_layer_kind(sniffed: str | None) -> bool:
    return sniffed in ("gzip", "zstd", "tar")


def _consume(
    entry: OuterEntry,
    read: _MemberReader,
    capture,
    limits: Limits,
    budget: EntryBudget | None = None,
    head: bytes | None = None,
) -> None:
    """Hash one regular entry; walk it if it is a layer; keep it if it is a document.
    `head`: its first bytes, when the caller has already read them (sniff_head)."""
    if head is None:
        head = sniff_head(read)
    entry.sniffed = sniff(head)
    if is_layer_kind(entry.sniffed):
        from forensics.archive import layercache  # scan-many --cache: the results of a layer seen before

        store = layercache.active()
        if store is not None:
            layercache.consume_layer(entry, head, read, capture, limits, budget, store)
        else:
            digest, count, scan = scan_stream(head, read, entry.sniffed, capture, limits, budget)
            entry.sha256, entry.nbytes, entry.layer = digest, count, scan
    else:
        h = hashlib.sha256(head)
        count = len(head)
        base = entry.path.rsplit("/", 1)[-1]
        keep = entry.sniffed == "json" or base in METADATA_NAMES or base.endswith(".json")
        parts = [head] if keep else None
        while True:
            part = read(CHUNK)
            if not part:
                break
            h.update(part)
            count += len(part)
            if parts is not None:
                if count > limits.max_json:
                    parts = None  # too large to be a document we need; hash only
                    entry.json_limit = limits.max_json
                else:
                    parts.append(bytes(part))
        entry.sha256, entry.nbytes = h.hexdigest(), count
        if parts is not None:
            entry.data = b"".join(parts)
    entry.error = read.error


def scan_input(
    source: str,
    *,
    capture: Callable[[str, int], bool] | None = None,
    limits: Limits | None = None,
    progress: ProgressFn | None = None,
    keep: Sink | None = None,
    watch: Watch | None = None,
) -> Inventory:
    """Read the input once. `keep` (stdin only) receives every raw byte read, in order;
    `watch` hears of the pass as it goes when it runs in worker processes (a stream, read
    in order by one process, has nothing to tell before it ends)."""
    capture = capture or _default_capture
    limits = limits or Limits()
    if keep is not None and source != "-":
        raise ValueError("only a stream read from stdin is kept")
    if source != "-" and os.path.isdir(source):
        if not any(os.path.lexists(os.path.join(source, name)) for name in LAYOUT_DOCUMENTS):
            # not a layout: list what is there (the one-line answer names it) without reading
            # a byte of it; a folder of large files or a FIFO must not be read to learn that
            return _scan_dir(source, capture, limits, progress, contents=False)
        return _parallel_dir(source, capture, limits, progress, watch) or _scan_dir(source, capture, limits, progress)
    if source == "-":
        f, total = sys.stdin.buffer, None
    else:
        try:
            f = open(source, "rb")
        except FileNotFoundError:
            raise InputError(f"{source}: no such file or directory") from None
        except OSError as exc:
            raise InputError(f"{source}: cannot open: {exc.strerror or exc}") from None
        st = os.fstat(f.fileno())
        total = st.st_size if stat.S_ISREG(st.st_mode) else None
    try:
        if keep is None and total is not None:
            inv = _parallel_tar(source, f, total, capture, limits, progress, watch)
            if inv is not None:
                return inv
        return _scan_tar(source, f, total, capture, limits, progress, keep)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _parallel_tar(source, f, total, capture, limits, progress, watch=None) -> Inventory | None:
    """A plain tar file, its blobs analyzed by worker processes (forensics.archive.parallel);
    None when the input does not qualify or the serial pass must decide. `f` is left at 0."""
    from forensics.archive import parallel  # the process pool only where it is used

    workers = parallel.workers_for(total)
    if workers < 2:
        return None
    head = f.read(HEAD)
    f.seek(0)
    if sniff(head) != "tar":
        return None  # a compressed archive is one stream: read it once, in order
    return parallel.scan_tar(source, source, total, capture, limits, progress, workers, watch)


def _parallel_dir(root, capture, limits, progress, watch=None) -> Inventory | None:
    from forensics.archive import parallel

    size = 0
    for _, _, st in walk_layout(root):
        if not isinstance(st, OSError) and stat.S_ISREG(st.st_mode):
            size += st.st_size
            if size >= parallel.AUTO_MIN_INPUT:
                break
    workers = parallel.workers_for(size)
    return parallel.scan_dir(root, capture, limits, progress, workers, watch) if workers >= 2 else None


def _scan_tar(source, f, total, capture, limits, progress, keep=None) -> Inventory:
    raw = _CountingReader(f, progress, total, keep)
    inv = Inventory(source=source, is_dir=False)
    budget = Budget(limits, lambda: raw.count)
    head = raw.read(HEAD)
    kind = sniff(head)
    if not head:
        raise InputError(f"{source}: empty input, not an image archive")
    if kind in ("gzip", "zstd"):
        inv.input_compression = kind
        stream = open_stream(kind, _Prefixed(head, raw))
    elif kind == "tar":
        inv.input_compression = "none"
        stream = _Prefixed(head, raw)
    else:
        raise InputError(
            f"{source}: not a tar archive (starts with {head[:8]!r}); "
            "expected a docker save or OCI image layout tarball"
        )
    tar = TarReader(FileSource(stream, CHUNK))
    seq = 0
    while True:
        try:
            m = tar.next()
        except (TarError, DecompressError) as exc:
            inv.errors.append(f"outer archive: {exc} (after {seq} entries)")
            inv.truncated = "truncated" in str(exc) or "end of data" in str(exc)
            break
        if m is None:
            break
        seq += 1
        refused = budget.refuse(m.name, m.linkname)
        if refused is not None:  # the input digest still covers it; TarReader skips its content
            note_limit(inv.over_limit, refused, getattr(limits, refused), m.name)
            continue
        path, _ = norm_outer(m.name)
        entry = OuterEntry(
            seq=seq - 1,
            name=m.name,
            path=path,
            type=m.type,
            size=m.size,
            mode=m.mode,
            mtime=m.mtime,
            linkname=m.linkname,
        )
        if m.type in ("file", "other"):
            reader = _MemberReader(tar.read)
            _consume(entry, reader, capture, limits, budget)
            if entry.error:
                inv.truncated = True
                inv.add(entry)
                inv.errors.append(f"outer archive: entry {m.name!r}: {entry.error}")
                break
        inv.add(entry)
    # Read whatever follows the end marker so the input digest covers the whole file;
    # a device or pipe that never ends (/dev/zero) is cut off after TRAILING_LIMIT.
    after = 0
    cut = False
    try:
        while part := stream.read(CHUNK):
            after += len(part)
            if total is None and after > TRAILING_LIMIT:
                inv.errors.append(
                    f"outer archive: more than {TRAILING_LIMIT} bytes follow the end of the tar; "
                    "stopped reading (the input digest covers only what was read)"
                )
                cut = True
                break
    except (DecompressError, Exception) as exc:  # noqa: BLE001 - damage after the tar end
        inv.errors.append(f"outer archive: after the end of the tar: {exc}")
    # What the decompressor did not consume (it stopped on damage): read too, so that the
    # input digest, and the kept copy of a stream, cover every byte of the input.
    drained = 0
    while not cut and (part := raw.read(CHUNK)):
        drained += len(part)
        if total is None and drained > TRAILING_LIMIT:
            inv.errors.append(
                f"outer archive: more than {TRAILING_LIMIT} bytes follow the readable data; "
                "stopped reading (the input digest covers only what was read)"
            )
            break
    garbage = getattr(stream, "trailing_garbage", 0)
    if garbage:
        inv.errors.append(
            f"outer archive: {garbage} bytes of non-{inv.input_compression} data follow the compressed stream"
        )
    if progress:
        progress(raw.count, total)
    inv.input_size = raw.count
    inv.input_sha256 = "sha256:" + raw.hash.hexdigest()
    return inv


def walk_layout(root: str) -> Iterator[tuple[str, str, os.stat_result | OSError]]:
    """(relative name, full path, lstat or the error) for every non-directory of a layout
    directory, symlinks to directories included, in a fixed order. The scan and the
    end-of-run check of the evidence (forensics.evidence) walk it the same way."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        names = sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in names:
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            rel = rel.replace(os.sep, "/")
            try:
                yield rel, full, os.lstat(full)
            except OSError as exc:
                yield rel, full, exc


# Every reader (forensics.read) starts from one of these at the top of a layout directory.
LAYOUT_DOCUMENTS = ("index.json", "manifest.json")


def _scan_dir(root, capture, limits, progress, contents: bool = True) -> Inventory:
    inv = Inventory(source=root, is_dir=True)
    total = 0
    seq = 0
    budget = Budget(limits, lambda: total)
    for rel, full, st in walk_layout(root):
        if isinstance(st, OSError):
            inv.errors.append(f"{rel}: {st.strerror}")
            continue
        entry = OuterEntry(
            seq=seq, name=rel, path=rel, type="other", size=st.st_size, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime
        )
        seq += 1
        refused = budget.refuse(rel, "")
        if refused is not None:
            note_limit(inv.over_limit, refused, getattr(limits, refused), rel)
            continue
        if stat.S_ISLNK(st.st_mode):
            entry.type, entry.size = "symlink", 0
            entry.linkname = os.readlink(full)
        elif stat.S_ISREG(st.st_mode) and not contents:
            entry.type = "file"
        elif stat.S_ISREG(st.st_mode):
            entry.type = "file"
            try:
                with open(full, "rb") as fh:
                    _consume(entry, _MemberReader(fh.read), capture, limits, budget)
            except OSError as exc:
                entry.error = f"cannot read: {exc.strerror}"
            total += entry.nbytes
            if progress:
                progress(total, None)
        inv.add(entry)
    inv.input_size = total
    return inv
