"""The evidence is never touched: the guarantees around every run, in one place.

- Every output path is resolved and refused, before anything is read, if it is an
  input (same path, same inode, inside an input directory) or another output.
- Outputs are written to a temporary file beside their target, fsynced and renamed
  over it; on an error, Ctrl-C or SIGTERM the temporary file is removed.
- The input is fingerprinted when the run starts (stat; its sha256 comes from the one
  pass) and checked again after the analysis: the same size, mtime and inode, then
  the same sha256 of every byte (for a directory, of every file of the layout).
- A stream read from stdin can be kept (--keep-input): the raw chunks the one pass
  hashes are written as they go, and the copy is read back before it is committed.

Nothing here interprets an image; the CLI calls it around `pipeline.analyze`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from forensics.archive.scan import InputError, walk_layout
from forensics.models import InputInfo, KeptCopy
from forensics.read.model import Archive

# What signal.signal returns and takes back (typeshed's private _HANDLER).
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class EvidenceError(Exception):
    """A guarantee would be broken: the run stops with exit 2 and this one line."""


def shown(path: str) -> str:
    """A path for one line of a terminal: control and bidi characters as escapes."""
    from forensics.render.safe import visible

    return visible(path)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _file_sha256(path: str, expect: tuple[int, int] | None = None) -> str:
    with open(path, "rb") as fh:
        if expect is not None and _ident(os.fstat(fh.fileno())) != expect:
            raise EvidenceError("replaced by another file")
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ---------------------------------------------------------------- the input

NOT_READ = "not read"

# One row per non-directory of a layout: (name, type, sha256 / link target / "").
Row = tuple[str, str, str]


def _listing_sha256(rows: list[Row]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row).encode("ascii") + b"\n")  # ASCII escapes: any name, one line
    return "sha256:" + h.hexdigest()


def input_sha256(path: str) -> str:
    """The digest a scan of `path` reports as its input, computed without scanning it (the
    fleet decides from it whether an input is already done): the file's sha256, or for a
    layout folder the sha256 of its listing, rows as Custody lists them."""
    if not os.path.isdir(path):
        return "sha256:" + _file_sha256(path)
    rows: list[Row] = []
    for rel, full, st in walk_layout(path):
        if isinstance(st, OSError):
            continue
        if stat.S_ISLNK(st.st_mode):
            rows.append((rel, "symlink", os.readlink(full)))
        elif stat.S_ISREG(st.st_mode):
            try:
                rows.append((rel, "file", _file_sha256(full)))
            except OSError:
                rows.append((rel, "file", "unreadable"))
        else:
            rows.append((rel, "other", ""))
    return _listing_sha256(rows)


@dataclass
class Custody:
    """One input: what it was when the run started, and the check after the analysis."""

    given: str
    kind: str  # file, directory, stream
    resolved: str | None = None
    start: os.stat_result | None = None  # before anything was read
    ident: tuple[int, int] | None = None  # (device, inode); for stdin, when it is a redirected file
    keep: StreamCopy | None = None
    _rows: list[Row] = field(default_factory=list, repr=False)
    _stats: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)  # name -> size, mtime

    @classmethod
    def start_of(cls, source: str) -> Custody:
        if source == "-":
            c = cls(given="-", kind="stream")
            try:
                st = os.fstat(sys.stdin.fileno())
            except (OSError, ValueError, AttributeError):  # no real stdin (tests' runners)
                return c
            if stat.S_ISREG(st.st_mode):  # `scan - < file`: outputs must not reach it either
                c.ident = _ident(st)
            return c
        try:
            st = os.stat(source)
        except FileNotFoundError:
            raise InputError(f"{shown(source)}: no such file or directory") from None
        except OSError as exc:
            raise InputError(f"{shown(source)}: cannot open: {exc.strerror or exc}") from None
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "stream"
        return cls(given=source, kind=kind, resolved=os.path.realpath(source), start=st, ident=_ident(st))

    def input_info(self, inv: Archive) -> InputInfo:
        """The report's `input` block, from the one pass and the start fingerprint."""
        info = InputInfo(
            path=self.given,
            size=inv.input_size,
            sha256=inv.input_sha256,
            compression=inv.input_compression,
            kind=self.kind,
            resolved=self.resolved,
        )
        if self.start is not None:
            info.mtime, info.inode = _iso(self.start.st_mtime_ns), self.start.st_ino
        if self.kind == "directory":
            for e in inv.entries:
                if e.type == "file":
                    # NOT_READ: a folder that is no layout is listed, never read (archive.scan)
                    value = e.sha256 if e.sha256 and not e.error else "unreadable" if e.error else NOT_READ
                    self._stats[e.path] = (e.size, e.mtime)
                else:
                    value = e.linkname if e.type == "symlink" else ""
                self._rows.append((e.path, e.type, value))
            info.listing_sha256 = _listing_sha256(self._rows)
        return info

    def finish(self, info: InputInfo) -> None:
        """After the last read of the input: prove it is what was analyzed, or raise
        EvidenceError("the input changed during analysis: ...")."""
        try:
            if self.kind == "file":
                info.sha256_end = self._check_file(info)
            elif self.kind == "directory":
                info.sha256_end = self._check_dir(info)
        except EvidenceError as exc:
            raise EvidenceError(
                f"the input changed during analysis: {shown(self.given)}: {exc}; "
                "no verdict is given on bytes that no longer exist"
            ) from None
        except OSError as exc:
            raise EvidenceError(
                f"the input changed during analysis: {shown(self.given)}: cannot read it again: {exc.strerror or exc}"
            ) from None
        if self.keep is not None:
            info.kept = self.keep.verify(info.sha256)

    def _check_file(self, info: InputInfo) -> str:
        assert self.start is not None
        now = os.stat(self.given)
        if _ident(now) != self.ident:
            raise EvidenceError("replaced by another file")
        if now.st_size != self.start.st_size:
            raise EvidenceError(f"size {self.start.st_size} -> {now.st_size} bytes")
        if now.st_mtime_ns != self.start.st_mtime_ns:
            raise EvidenceError(f"modified at {_iso(now.st_mtime_ns)}")
        if info.size != now.st_size:
            raise EvidenceError(f"{info.size} bytes were read of its {now.st_size}")
        digest = "sha256:" + _file_sha256(self.given, self.ident)
        if digest != info.sha256:
            raise EvidenceError(f"its sha256 is now {digest}")
        return digest

    def _check_dir(self, info: InputInfo) -> str:
        now = os.stat(self.given)
        if _ident(now) != self.ident:
            raise EvidenceError("replaced by another directory")
        entries = [(rel, full, st) for rel, full, st in walk_layout(self.given) if not isinstance(st, OSError)]
        # Cheap first: the same names, types, sizes and mtimes, before hashing anything.
        before = {r[0]: r[1] for r in self._rows}
        values = {r[0]: r[2] for r in self._rows}
        after = {rel for rel, _, _ in entries}
        if added := sorted(after - before.keys()):
            raise EvidenceError(f"{shown(added[0])} was added")
        if removed := sorted(before.keys() - after):
            raise EvidenceError(f"{shown(removed[0])} was removed")
        for rel, _, st in entries:
            if stat.S_ISREG(st.st_mode) and self._stats.get(rel) != (st.st_size, st.st_mtime):
                raise EvidenceError(f"{shown(rel)} was modified")
        rows: list[Row] = []
        for rel, full, st in entries:
            if stat.S_ISLNK(st.st_mode):
                rows.append((rel, "symlink", os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                if before.get(rel) == "file" and values.get(rel) == NOT_READ:
                    rows.append((rel, "file", NOT_READ))  # its size and mtime are checked above
                    continue
                try:
                    value = _file_sha256(full)
                except OSError:
                    value = "unreadable"
                rows.append((rel, "file", value))
            else:
                rows.append((rel, "other", ""))
        for old, new in zip(self._rows, rows):  # same names in the same walk order (checked above)
            if old != new:
                raise EvidenceError(f"{shown(new[0])} was modified")
        return _listing_sha256(rows)


# ---------------------------------------------------------------- outputs refused


def refuse_overlaps(inputs: list[Custody], outputs: list[tuple[str, str | None]]) -> None:
    """Raise EvidenceError naming both paths if an output could reach an input or
    another output. `outputs` are (option, path as given); None is not asked for, '-' is stdout."""
    seen: list[tuple[str, str, str, tuple[int, int] | None]] = []
    stdout: str | None = None
    for opt, path in outputs:
        if path is None:
            continue
        if path == "-":
            if stdout is not None:
                raise EvidenceError(f"refusing to write {stdout} - and {opt} -: both would go to stdout")
            stdout = opt
            continue
        resolved = os.path.realpath(path)
        try:
            st = os.stat(resolved)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise EvidenceError(f"cannot write {opt} {shown(path)}: is a directory")
        parent = os.path.dirname(resolved)
        if not os.path.isdir(parent):
            raise EvidenceError(f"cannot write {opt} {shown(path)}: no such directory {shown(parent)}")
        ident = _ident(st) if st is not None else None
        for c in inputs:
            name = shown(c.given)
            why = None
            if c.resolved is not None and resolved == c.resolved:
                why = f"it is the input {name}"
            elif ident is not None and ident == c.ident:
                why = (
                    f"it is the input {name} under another name (a hard link)"
                    if c.given != "-"
                    else "it is the file stdin ('-') is redirected from"
                )
            elif c.kind == "directory" and _inside(resolved, c):
                why = f"it is inside the input directory {name}"
            if why:
                raise EvidenceError(f"refusing to write {opt} {shown(path)}: {why}; the evidence is never written to")
        for prev_opt, prev_path, prev_resolved, prev_ident in seen:
            if resolved == prev_resolved or (ident is not None and ident == prev_ident):
                raise EvidenceError(
                    f"refusing to write {prev_opt} {shown(prev_path)} and {opt} {shown(path)}: they name the same file"
                )
        _probe(opt, path, parent, st)  # only once it is known not to reach an input
        seen.append((opt, path, resolved, ident))


def _probe(opt: str, path: str, parent: str, st: os.stat_result | None) -> None:
    """Can the output be written at all? Asked before the input is read (a stream read from
    stdin cannot be read again): a temporary file is created and removed where the output's
    own would be (a read-only file system or a directory without write permission says so
    here, whoever runs it); a device or FIFO that exists is opened by AtomicOutput itself."""
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not os.access(path, os.W_OK):
            raise EvidenceError(f"cannot write {opt} {shown(path)}: permission denied")
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".forensics-probe.", suffix=".partial")
    except OSError as exc:
        raise EvidenceError(
            f"cannot write {opt} {shown(path)}: cannot create a file in {shown(parent)}: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def _inside(resolved: str, c: Custody) -> bool:
    """The output would land under the input directory: by its path, or by any of its
    existing ancestors being that directory (a bind mount, another name)."""
    assert c.resolved is not None
    if os.path.commonpath([resolved, c.resolved]) == c.resolved:
        return True
    d = os.path.dirname(resolved)
    while True:
        try:
            if _ident(os.stat(d)) == c.ident:
                return True
        except OSError:
            pass
        parent = os.path.dirname(d)
        if parent == d:
            return False
        d = parent


# ---------------------------------------------------------------- atomic outputs

_LIVE: set[str] = set()  # temporary files not yet renamed over their target
_LOCK = threading.Lock()


def _remove_live() -> None:
    with _LOCK:
        paths = list(_LIVE)
        _LIVE.clear()
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _on_fatal_signal(signum, frame) -> None:
    """SIGTERM/SIGHUP: no partial file under an output name, then die of the signal."""
    _remove_live()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicOutput:
    """A file written beside its target and renamed over it once complete.

    A target that exists and is not a regular file (/dev/null, a FIFO, /dev/stdout) is
    written directly: renaming over it would replace the device node, not feed it."""

    def __init__(self, option: str, path: str) -> None:
        self.option, self.path = option, path
        self.target = os.path.realpath(path)
        self.done = False
        try:
            st = os.stat(path)
        except OSError:
            st = None
        self.direct = st is not None and not stat.S_ISREG(st.st_mode)
        if self.direct:
            self.tmp = path
            self._f = open(path, "wb")
            return
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
        directory, name = os.path.split(self.target)
        fd, self.tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".partial")
        with _LOCK:
            _LIVE.add(self.tmp)
        os.fchmod(fd, mode)
        self._f = os.fdopen(fd, "wb")

    def write(self, data: bytes | str) -> None:
        self._f.write(data.encode("utf-8") if isinstance(data, str) else data)

    def sync(self) -> None:
        if not self._f.closed:
            self._f.flush()
            if not self.direct:
                os.fsync(self._f.fileno())
            self._f.close()

    def commit(self) -> None:
        self.sync()
        if self.direct:
            self.done = True
            return
        if os.path.realpath(self.path) != self.target:  # the path was re-pointed since it was checked
            raise EvidenceError(f"{self.option} {shown(self.path)} now resolves elsewhere; not written")
        os.replace(self.tmp, self.target)
        with _LOCK:
            _LIVE.discard(self.tmp)
        self.done = True
        try:  # the rename itself is durable once the directory is synced
            dfd = os.open(os.path.dirname(self.target), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def abort(self) -> None:
        if self.done:
            return
        try:
            self._f.close()
        except OSError:
            pass
        if self.direct:
            return
        with _LOCK:
            _LIVE.discard(self.tmp)
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class StreamCopy:
    """--keep-input: the scan's sink for the raw stream (forensics.archive.scan.Sink).
    Written on the hashing thread, so a write error is kept for verify(), never raised."""

    def __init__(self, out: AtomicOutput) -> None:
        if out.direct:
            out.abort()
            raise EvidenceError(
                f"--keep-input {shown(out.path)}: not a regular file; the copy is read back before it is kept"
            )
        self.out = out
        self.size = 0
        self.error: str | None = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self.out.write(data)
            self.size += len(data)
        except (OSError, ValueError) as exc:
            self.error = getattr(exc, "strerror", None) or str(exc)

    def verify(self, sha256: str | None) -> KeptCopy:
        """Read the copy back from disk: it must be the bytes that were hashed."""
        where = f"--keep-input {shown(self.out.path)}"
        if self.error is None:
            try:
                self.out.sync()
                digest = "sha256:" + _file_sha256(self.out.tmp)
            except OSError as exc:
                self.error = exc.strerror or str(exc)
        if self.error is not None:
            raise EvidenceError(f"cannot write {where}: {self.error}")
        if digest != sha256:
            raise EvidenceError(f"{where}: the copy on disk ({digest}) is not what was read ({sha256})")
        return KeptCopy(path=self.out.path, resolved=self.out.target, size=self.size, sha256=digest)


class Outputs:
    """Every output of one run: opened after the refusals, committed together at the end,
    removed if the run does not get there (any exception, Ctrl-C, SIGTERM, SIGHUP)."""

    def __init__(self) -> None:
        self._open: list[AtomicOutput] = []
        self._saved: dict[int, _Handler] = {}

    def __enter__(self) -> Outputs:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._saved[sig] = signal.signal(sig, _on_fatal_signal)
        return self

    def __exit__(self, *exc) -> None:
        for out in self._open:
            out.abort()
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def open(self, option: str, path: str) -> AtomicOutput:
        try:
            out = AtomicOutput(option, path)
        except OSError as exc:
            raise EvidenceError(f"cannot write {option} {shown(path)}: {exc.strerror or exc}") from None
        self._open.append(out)
        return out

    def commit(self) -> None:
        """Rename every output over its target (after all were written and synced)."""
        try:
            for out in self._open:
                out.sync()
            for out in self._open:
                out.commit()
        except OSError as exc:
            raise EvidenceError(f"cannot write {out.option} {shown(out.path)}: {exc.strerror or exc}") from None
