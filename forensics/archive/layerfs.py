"""Layer entries as filesystem changes: normalized paths, whiteouts, opaque dirs.

Builders write `./a`, `/a` and `a` for the same file; we normalize and keep the
raw name as evidence. A name that climbs above the root keeps its raw form as
its path (the shared corpus convention), so it can never alias a real path.
"""

from __future__ import annotations

import dataclasses
import posixpath
from operator import attrgetter

from forensics.models import FileEntry
from forensics.paths import norm_layer_path, resolve_link_target  # noqa: F401 - re-exported

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def member_entry(
    name: str,
    mtype: str,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: float,
    linkname: str,
    sha256: str | None,
    kind: str | None,
    unsafe: list[tuple[str, str]],
) -> FileEntry:
    """One layer tar member as a FileEntry; names escaping the root are appended to `unsafe`.

    Runs once per layer entry on the hashing thread: keep it lean."""
    path, escapes = norm_layer_path(name)
    if escapes:
        unsafe.append((name, "entry name climbs above the root with '..'"))
        path = name  # keep the raw name: it must not alias a real path
    ftype = mtype
    link = linkname or None
    base = path.rpartition("/")[2]
    if not escapes and base.startswith(WHITEOUT):
        parent = posixpath.dirname(path)
        if base == OPAQUE:
            ftype, path = "opaque", parent
        elif base[len(WHITEOUT) :] in ("", ".", ".."):
            unsafe.append((name, "whiteout of '.' or '..' would delete a parent directory"))
            ftype, path = "other", name
        else:
            ftype, path = "whiteout", posixpath.join(parent, base[len(WHITEOUT) :])
    if ftype == "hardlink" and link is not None:
        lpath, lesc = norm_layer_path(link)
        if lesc:
            unsafe.append((name, f"hardlink target {link!r} climbs above the root"))
        else:
            link = lpath
    rel = path[1:]
    raw = None if name == rel or name == rel + "/" else name
    ftype = ftype if ftype in _TYPES else "other"
    return FileEntry(path, ftype, mode, uid, gid, size, mtime, link, sha256, kind, raw)  # type: ignore[arg-type]


_TYPES = {"file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"}


FIELDS = tuple(f.name for f in dataclasses.fields(FileEntry))  # the order of the packed columns
_MODE, _MTIME = FIELDS.index("mode"), FIELDS.index("mtime")
_SHARED_MAX = 4096  # distinct modes and mtimes shared per layer: a forged layer may give each its own


def pack(files: list[FileEntry]) -> tuple[list, ...]:
    """Entries as one list per field, to cross a process boundary: pickling lists of plain
    values costs a fraction of pickling the objects, and unpickling them in the parent
    makes no per-entry tuple next to the entries being rebuilt."""
    return tuple(list(map(attrgetter(name), files)) for name in FIELDS)


def unpack(columns: tuple[list, ...]) -> list[FileEntry]:
    """The entries again. Pickle does not keep the worker's one int per distinct mode and
    mtime (layerscan._walk): they are shared again here, 64 bytes less per entry."""
    if not columns:
        return []
    cols = list(columns)
    cols[_MODE] = _shared(cols[_MODE])
    cols[_MTIME] = _shared(cols[_MTIME])
    return list(map(FileEntry, *cols))


def _shared(values: list) -> list:
    """`values` with one object per distinct int (at most _SHARED_MAX of them)."""
    seen: dict = {}
    if set(map(type, values)) <= {int}:
        # The common case in C: ints only (1 == 1.0 as keys, and a pax float must stay a
        # float), few distinct values (else the loop below, which stops sharing at the cap).
        out = list(map(seen.setdefault, values, values))
        if len(seen) <= _SHARED_MAX:
            return out
        seen = {}
    out = []
    for v in values:
        if type(v) is not int:
            out.append(v)
        elif len(seen) < _SHARED_MAX:
            out.append(seen.setdefault(v, v))
        else:
            out.append(seen.get(v, v))
    return out
