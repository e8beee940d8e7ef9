"""The one pass, for a seekable input, with its blobs analyzed in worker processes.

A plain tar file or a layout directory can be read at any offset, so the parent walks
the outer headers (seeking over content), keeps the small documents itself, and hands
every layer blob (and every large blob) to a process pool: largest first, the
whole-input sha256 as one more task. A worker runs the same `_consume` the serial pass
runs, so each OuterEntry and LayerScan is the one the serial pass would build; its
entries come back as plain columns (layerfs.pack).

The limits hold across workers: the layer entries and name characters all workers may
keep are drawn from one shared pool, sized by the whole input (the most the serial
Budget could ever grant), and the parent replays the serial Budget over the results in
archive order, each entry at the input offset the worker had read to when it met it.
Anything the serial pass would handle differently (a refusal, a read error, damage in
the outer tar, a worker that died) makes `scan_*` return None and the caller runs the
serial pass: the parallel result is only used when it is the serial one.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from forensics.archive.decompress import sniff
from forensics.archive.layerfs import pack, unpack
from forensics.archive.layerscan import CHUNK, Budget, Limits, sniff_head
from forensics.archive.scan import (
    Inventory,
    OuterEntry,
    ProgressFn,
    Watch,
    _consume,
    _MemberReader,
    is_layer_kind,
    norm_outer,
    walk_layout,
)
from forensics.archive.tarstream import FileSource, TarError, TarReader

WORKERS_ENV = "FORENSICS_WORKERS"  # 1: the serial pass; N: N workers, whatever the input size
AUTO_MIN_INPUT = 64 << 20  # below this, starting processes costs more than it saves
INLINE_MAX = 1 << 20  # a blob that is not a layer and is smaller is hashed by the parent
WALK_CHUNK = 64 << 10  # the parent reads headers and small documents, not content
HASH_WEIGHT = 8  # the input sha256 costs about an eighth of analyzing as many layer bytes
ENTRY_BATCH = 1024  # entries a worker draws from the shared pool at a time
CHAR_BATCH = 256 << 10


def workers_for(size: int | None) -> int:
    """How many worker processes to use for an input of `size` bytes (1: the serial pass)."""
    forced = os.environ.get(WORKERS_ENV, "").strip()
    if forced:
        try:
            return max(1, int(forced))
        except ValueError:
            return 1
    if size is None or size < AUTO_MIN_INPUT:
        return 1
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class _Job:
    index: int  # position of the entry in the inventory
    path: str
    offset: int
    size: int | None  # bytes of the member; None: the whole file (a layout directory)
    entry: OuterEntry


@dataclass
class _Done:
    index: int
    entry: OuterEntry
    rows: tuple[list, ...] | None  # the layer's entries, packed (layerfs.pack)
    at: array  # for each kept layer entry, the member bytes read when it was met
    chars: array  # and the name characters it counts
    refused: bool  # a worker refused an entry: the serial pass decides


class _Range:
    """`size` bytes of an open file from its current position (all of it if None)."""

    def __init__(self, fh, size: int | None) -> None:
        self._fh = fh
        self._left = size
        self.count = 0

    def read(self, n: int) -> bytes:
        if self._left is None:
            data = self._fh.read(n)
        else:
            if self._left <= 0:
                return b""
            data = self._fh.read(min(n, self._left))
            if not data:
                raise OSError("the file ended inside a member")
            self._left -= len(data)
        self.count += len(data)
        return data


class _PoolBudget:
    """A worker's Budget: the per-entry limits as the serial Budget applies them; the
    entries and name characters from the pool all workers share."""

    def __init__(self, limits: Limits, entries, chars, reader: _Range) -> None:
        self.limits = limits
        self._entries, self._chars = entries, chars
        self._e = self._c = 0  # drawn and not used yet
        self._reader = reader
        self.at = array("q")
        self.chars = array("q")
        self.refused = False

    @staticmethod
    def _draw(pool, want: int) -> int:
        with pool.get_lock():
            got = min(want, pool.value)
            pool.value -= got
        return got

    def refuse(self, name: str, linkname: str, layer_entries: int | None = None) -> str | None:
        lim = self.limits
        why = None
        chars = len(name) + len(linkname)
        if len(name) > lim.max_path_length:
            why = "max_path_length"
        elif name.count("/") > lim.max_path_depth:
            why = "max_path_depth"
        elif layer_entries is not None and layer_entries >= lim.max_layer_entries:
            why = "max_layer_entries"
        else:
            if self._e == 0:
                self._e = self._draw(self._entries, ENTRY_BATCH)
            if self._c < chars:
                self._c += self._draw(self._chars, max(CHAR_BATCH, chars - self._c))
            if self._e == 0:
                why = "max_entries"
            elif self._c < chars:
                why = "max_name_bytes"
        if why is not None:
            self.refused = True
            return why
        self._e -= 1
        self._c -= chars
        self.at.append(self._reader.count)
        self.chars.append(chars)
        return None


_STATE: tuple = ()


def _init(capture, limits: Limits, entries, chars) -> None:
    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops the pool
    _STATE = (capture, limits, entries, chars)


def _run(job: _Job) -> _Done:
    capture, limits, entries, chars = _STATE
    entry = job.entry
    budget: _PoolBudget | None = None
    try:
        with open(job.path, "rb") as fh:
            if job.offset:
                fh.seek(job.offset)
            rng = _Range(fh, job.size)
            budget = _PoolBudget(limits, entries, chars, rng)
            _consume(entry, _MemberReader(rng.read), capture, limits, budget)
    except OSError as exc:
        entry.error = f"cannot read: {exc.strerror}"
    rows = None
    if entry.layer is not None:
        rows, entry.layer.files = pack(entry.layer.files), []
    return _Done(
        job.index,
        entry,
        rows,
        budget.at if budget else array("q"),
        budget.chars if budget else array("q"),
        budget.refused if budget else False,
    )


def _hash_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    count = 0
    with open(path, "rb", buffering=0) as fh:
        while part := fh.read(CHUNK):
            h.update(part)
            count += len(part)
    return h.hexdigest(), count


class _SeekSource(FileSource):
    """A FileSource whose skips past the current chunk seek: the header walk reads
    headers, not content. A skip past the end of the file is a truncation."""

    def __init__(self, fh, size: int) -> None:
        super().__init__(fh, WALK_CHUNK)
        self._size = size

    def skip(self, n: int) -> bool:
        end = self._pos + n
        if end <= len(self._raw):
            self._pos = end
            return True
        target = self._base + end
        if target > self._size:
            return False
        self._f.seek(target)
        self._base, self._raw, self._buf, self._pos = target, b"", memoryview(b""), 0
        return True


class _Fallback(Exception):
    """The serial pass must decide (see the module docstring)."""


def _pools(limits: Limits, input_size: int):
    import multiprocessing  # only where a pool is started

    ctx = multiprocessing.get_context("fork")
    entries = min(limits.max_entries, max(limits.entries_floor, input_size // limits.input_bytes_per_entry))
    chars = min(limits.max_name_bytes, max(limits.names_floor, input_size // limits.input_bytes_per_name_char))
    return ctx, ctx.Value("q", entries), ctx.Value("q", chars)


class _Replay:
    """The serial Budget's allowance for layer entries, replayed in archive order."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.n = 0
        self.chars = 0

    def take(self, at: array, chars: array, base: int, grows: bool) -> None:
        lim = self.limits
        k, c = len(at), sum(chars)
        if self.n + k <= min(lim.entries_floor, lim.max_entries) and self.chars + c <= min(
            lim.names_floor, lim.max_name_bytes
        ):
            self.n, self.chars = self.n + k, self.chars + c
            return
        n, total = self.n, self.chars
        for i in range(k):
            read = base + at[i] if grows else base
            if n >= lim.max_entries or (n >= lim.entries_floor and n >= read // lim.input_bytes_per_entry):
                raise _Fallback
            total += chars[i]
            if total > lim.max_name_bytes or (
                total > lim.names_floor and total > read // lim.input_bytes_per_name_char
            ):
                raise _Fallback
            n += 1
        self.n, self.chars = n, total


def _run_pool(
    jobs: list[_Job],
    hash_path: str | None,
    input_size: int,
    workers: int,
    capture,
    limits: Limits,
    progress: ProgressFn | None,
    total: int | None,
    watch: Watch | None = None,
    preview: Inventory | None = None,
) -> tuple[dict[int, _Done], tuple[str, int] | None]:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx, entries, chars = _pools(limits, input_size)
    tasks: list[tuple[int, Callable[..., _Done | tuple[str, int]], tuple]] = [
        ((j.size or j.entry.size), _run, (j,)) for j in jobs
    ]
    if hash_path is not None:
        tasks.append((input_size // HASH_WEIGHT, _hash_file, (hash_path,)))
    tasks.sort(key=lambda t: -t[0])  # largest first: the last task to start is a small one
    if watch is not None and preview is not None and tasks:
        # The largest task still first (started last, it would be the pool's tail), then the
        # watcher's order (the history replays layers bottom up: a small layer read last
        # would hold back the replay of every layer above it), then the rest, largest first.
        want = watch.planned(preview, {j.entry.seq for j in jobs})
        rank = {seq: n for n, seq in enumerate(want)}
        far = len(rank)
        top = tasks[0]
        rest = sorted(tasks[1:], key=lambda t: rank.get(t[2][0].entry.seq, far) if t[1] is _run else far)
        tasks = [top, *rest]
    done: dict[int, _Done] = {}
    digest = None
    finished = 0
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(tasks))),
        mp_context=ctx,
        initializer=_init,
        initargs=(capture, limits, entries, chars),
    )
    try:
        pending = {pool.submit(fn, *args) for _, fn, args in tasks}
        while pending:
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in ready:
                result = fut.result()  # a worker that raised or died: the caller falls back
                if isinstance(result, _Done):
                    if result.refused:
                        raise _Fallback
                    if result.entry.layer is not None:  # rows to models now: never both held for all layers
                        result.entry.layer.files, result.rows = unpack(result.rows or ()), None
                    done[result.index] = result
                    if watch is not None:
                        watch.scanned(result.entry)
                    finished += result.entry.nbytes
                else:
                    digest = result
                if progress:
                    progress(min(finished, total or finished), total)
    except BaseException:
        # The result is not used: stop the workers now rather than let them finish.
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done, digest


def _merge(
    inv: Inventory,
    entries: list[OuterEntry],
    done: dict[int, _Done],
    bases: dict[int, tuple[int, bool]],
    limits: Limits,
) -> None:
    """The entries into the inventory in archive order; the layer allowance replayed."""
    replay = _Replay(limits)
    for i, entry in enumerate(entries):
        d = done.get(i)
        if d is not None:
            entry = d.entry
            if entry.layer is not None:
                base, grows = bases[i]
                replay.take(d.at, d.chars, base, grows)
        inv.add(entry)


def scan_tar(
    source: str, path: str, total: int, capture, limits: Limits, progress, workers: int, watch: Watch | None = None
) -> Inventory | None:
    """The pass over a plain tar file, or None: the serial pass must run (see above)."""
    try:
        return _scan_tar(source, path, total, capture, limits, progress, workers, watch)
    except (_Fallback, TarError, OSError):
        return None
    except Exception:  # noqa: BLE001 - a broken pool or a worker's exception: the serial pass decides
        return None


def _preview(source: str, is_dir: bool, entries: list[OuterEntry], size: int) -> Inventory:
    """The walk's entries as an inventory, layer blobs not read yet (for a Watch)."""
    inv = Inventory(source=source, is_dir=is_dir, input_compression=None if is_dir else "none")
    for entry in entries:
        inv.add(entry)
    inv.input_size = size
    return inv


def _scan_tar(source, path, total, capture, limits, progress, workers, watch=None) -> Inventory:
    inv = Inventory(source=source, is_dir=False, input_compression="none")
    entries: list[OuterEntry] = []
    jobs: list[_Job] = []
    bases: dict[int, tuple[int, bool]] = {}
    with open(path, "rb") as fh:
        src = _SeekSource(fh, total)
        budget = Budget(limits, lambda: src.consumed)  # at most what the serial pass had read
        tar = TarReader(src)
        seq = 0
        while (m := tar.next()) is not None:
            seq += 1
            if budget.refuse(m.name, m.linkname) is not None:
                raise _Fallback
            entry = OuterEntry(
                seq=seq - 1,
                name=m.name,
                path=norm_outer(m.name)[0],
                type=m.type,
                size=m.size,
                mode=m.mode,
                mtime=m.mtime,
                linkname=m.linkname,
            )
            if m.type in ("file", "other"):
                offset = src.consumed
                if m.size > INLINE_MAX:
                    head = None
                else:
                    reader = _MemberReader(tar.read)
                    head = sniff_head(reader)
                    if reader.error:
                        raise _Fallback
                if head is None or is_layer_kind(sniff(head)):
                    jobs.append(_Job(len(entries), path, offset, m.size, entry))
                    bases[len(entries)] = (offset, True)
                else:
                    reader = _MemberReader(tar.read)
                    _consume(entry, reader, capture, limits, None, head=head)
                    if entry.error:
                        raise _Fallback
            entries.append(entry)
    if progress:
        progress(0, total)
    preview = _preview(source, False, entries, total) if watch is not None else None
    done, digest = _run_pool(jobs, path, total, workers, capture, limits, progress, total, watch, preview)
    if digest is None or len(done) != len(jobs) or any(d.entry.error for d in done.values()):
        raise _Fallback
    _merge(inv, entries, done, bases, limits)
    inv.input_sha256 = "sha256:" + digest[0]
    inv.input_size = digest[1]
    if progress:
        progress(inv.input_size, total)
    return inv


def scan_dir(
    root: str, capture, limits: Limits, progress, workers: int, watch: Watch | None = None
) -> Inventory | None:
    """The pass over a layout directory, or None: the serial pass must run."""
    try:
        return _scan_dir(root, capture, limits, progress, workers, watch)
    except (_Fallback, OSError):
        return None
    except Exception:  # noqa: BLE001
        return None


def _scan_dir(root, capture, limits, progress, workers, watch=None) -> Inventory:
    inv = Inventory(source=root, is_dir=True)
    entries: list[OuterEntry] = []
    jobs: list[_Job] = []
    sizes: dict[int, int] = {}  # job index -> the size the walk saw
    errors: list[str] = []
    total = 0
    seq = 0
    budget = Budget(limits, lambda: total)
    for rel, full, st in walk_layout(root):
        if isinstance(st, OSError):
            errors.append(f"{rel}: {st.strerror}")
            continue
        entry = OuterEntry(
            seq=seq, name=rel, path=rel, type="other", size=st.st_size, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime
        )
        seq += 1
        if budget.refuse(rel, "") is not None:
            raise _Fallback
        if stat.S_ISLNK(st.st_mode):
            entry.type, entry.size = "symlink", 0
            entry.linkname = os.readlink(full)
        elif stat.S_ISREG(st.st_mode):
            entry.type = "file"
            inline = False
            if st.st_size <= INLINE_MAX:
                try:
                    with open(full, "rb") as fh:
                        reader = _MemberReader(fh.read)
                        head = sniff_head(reader)
                        if not is_layer_kind(sniff(head)):
                            inline = True
                            _consume(entry, reader, capture, limits, None, head=head)
                except OSError as exc:
                    inline = True
                    entry.error = f"cannot read: {exc.strerror}"
            if inline:
                total += entry.nbytes
            else:
                jobs.append(_Job(len(entries), full, 0, None, entry))
                sizes[len(entries)] = st.st_size
                total += st.st_size  # checked against what the worker read, below
        entries.append(entry)
    preview = _preview(root, True, entries, total) if watch is not None else None
    done, _ = _run_pool(jobs, None, total, workers, capture, limits, progress, None, watch, preview)
    if len(done) != len(jobs) or any(done[i].entry.nbytes != sizes[i] for i in done):
        raise _Fallback  # a file changed size while it was read
    # The serial pass's allowance grows with the bytes of the files before this one.
    bases: dict[int, tuple[int, bool]] = {}
    before = 0
    for i, entry in enumerate(entries):
        d = done.get(i)
        bases[i] = (before, False)
        before += (d.entry if d is not None else entry).nbytes
    inv.errors += errors
    _merge(inv, entries, done, bases, limits)
    inv.input_size = total
    if progress:
        progress(total, None)
    return inv
