"""Layer entries as filesystem changes: normalized paths, whiteouts, opaque dirs.

Builders write `./a`, `/a` and `a` for the same file; we normalize and keep the
raw name as evidence. A name that climbs above the root keeps its raw form as
its path (the shared corpus convention), so it can never alias a real path.
"""

from __future__ import annotations

import posixpath

from forensics.archive.layerscan import LayerMember
from forensics.models import FileEntry

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def norm_layer_path(name: str) -> tuple[str, bool]:
    """(normalized absolute path, escapes_root)."""
    parts: list[str] = []
    escapes = False
    for p in name.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                escapes = True
                continue
            parts.pop()
        else:
            parts.append(p)
    return "/" + "/".join(parts), escapes


def resolve_link_target(link_path: str, target: str) -> tuple[str, bool]:
    """Where a symlink at link_path points, inside the root; and whether it climbs out."""
    if target.startswith("/"):
        return norm_layer_path(target)
    return norm_layer_path(posixpath.join(posixpath.dirname(link_path), target))


def to_file_entries(members: list[LayerMember]) -> tuple[list[FileEntry], list[tuple[str, str]]]:
    """Convert raw members; also return (raw name, reason) for names escaping the root."""
    out: list[FileEntry] = []
    unsafe: list[tuple[str, str]] = []
    for m in members:
        path, escapes = norm_layer_path(m.name)
        if escapes:
            unsafe.append((m.name, "entry name climbs above the root with '..'"))
            path = m.name  # keep the raw name: it must not alias a real path
        ftype = m.type
        link = m.linkname or None
        base = posixpath.basename(path)
        if not escapes and base.startswith(WHITEOUT):
            parent = posixpath.dirname(path)
            if base == OPAQUE:
                ftype, path = "opaque", parent
            elif base[len(WHITEOUT):] in ("", ".", ".."):
                unsafe.append((m.name, "whiteout of '.' or '..' would delete a parent directory"))
                ftype, path = "other", m.name
            else:
                ftype, path = "whiteout", posixpath.join(parent, base[len(WHITEOUT):])
        if ftype == "hardlink" and link is not None:
            lpath, lesc = norm_layer_path(link)
            if lesc:
                unsafe.append((m.name, f"hardlink target {link!r} climbs above the root"))
            else:
                link = lpath
        rel = path.lstrip("/")
        raw = None if m.name in (rel, rel + "/") else m.name
        out.append(FileEntry.model_construct(
            path=path, type=ftype if ftype in _TYPES else "other", mode=m.mode, uid=m.uid, gid=m.gid,
            size=m.size, mtime=m.mtime, link=link, sha256=m.sha256, kind=m.kind, raw_name=raw))
    return out, unsafe


_TYPES = {"file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"}
