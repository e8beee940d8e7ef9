"""Layer entries as filesystem changes: normalized paths, whiteouts, opaque dirs.

Builders write `./a`, `/a` and `a` for the same file; we normalize and keep the
raw name as evidence. A name that climbs above the root keeps its raw form as
its path (the shared corpus convention), so it can never alias a real path.
"""

from __future__ import annotations

import operator
import posixpath

from forensics.models import FileEntry
from forensics.paths import norm_layer_path, resolve_link_target  # noqa: F401 - re-exported

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


# One set shared by every FileEntry: model_construct would otherwise keep a set per file.
_ALL_FIELDS = set(FileEntry.model_fields)
_new = object.__new__
_set = object.__setattr__


def _entry(values: dict) -> FileEntry:
    """FileEntry.model_construct without its per-call overhead (4x faster; this runs once
    per layer entry on the hashing thread). Sets exactly the attributes model_construct
    sets; tests/test_scan.py checks the two stay equal across pydantic versions."""
    obj = _new(FileEntry)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", _ALL_FIELDS)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


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
    return _entry(
        {
            "path": path,
            "type": ftype if ftype in _TYPES else "other",
            "mode": mode,
            "uid": uid,
            "gid": gid,
            "size": size,
            "mtime": mtime,
            "link": link,
            "sha256": sha256,
            "kind": kind,
            "raw_name": raw,
        }
    )


_TYPES = {"file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"}


FIELDS = tuple(FileEntry.model_fields)  # the order of a packed row
_row = operator.itemgetter(*FIELDS)


def pack(files: list[FileEntry]) -> list[tuple]:
    """Entries as plain rows, to cross a process boundary: pickling a pydantic model costs
    about ten times what a tuple of its values does."""
    row = _row
    return [row(f.__dict__) for f in files]


def unpack(rows: list[tuple]) -> list[FileEntry]:
    fields = FIELDS
    return [_entry(dict(zip(fields, row))) for row in rows]
