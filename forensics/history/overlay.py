"""The merged filesystem, one layer at a time, and what each layer changed in it.

Applies the OCI changeset rules (image-spec layer.md): a whiteout `.wh.NAME`
deletes NAME and everything below it in the *lower* layers; an opaque marker
`.wh..wh..opq` hides every lower child of its directory, whatever its position
in the tar. Entries of the same layer are never hidden by its own whiteouts.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from forensics.models import FileEntry, FileType, PathChange

# Mode bits that matter; mtime differences alone are "metadata".
PERM_MASK = 0o7777


def _change(
    path: str,
    change: str,
    type: str,
    what: list[str] | None = None,
    size: int | None = None,
    sha256: str | None = None,
    before_sha256: str | None = None,
    link: str | None = None,
    after: FileEntry | None = None,
    before: FileEntry | None = None,
) -> PathChange:
    """One PathChange per changed path of every layer: keep it lean."""
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    if after is not None:
        mode, uid, gid = after.mode, after.uid, after.gid
    btype: FileType | None = None
    bsize: int | None = None
    bmode: int | None = None
    buid: int | None = None
    bgid: int | None = None
    blink: str | None = None
    if before is not None:
        btype, bsize, bmode, buid, bgid = before.type, before.size, before.mode, before.uid, before.gid
        blink = before.link if before.type == "symlink" else None
    return PathChange(
        path,
        change,  # type: ignore[arg-type]
        type,  # type: ignore[arg-type]
        what if what is not None else [],
        size,
        sha256,
        before_sha256,
        link,
        None,
        None,
        mode,
        uid,
        gid,
        btype,
        bsize,
        bmode,
        buid,
        bgid,
        blink,
    )


@dataclass(slots=True)
class Node:
    entry: FileEntry
    layer: int  # index of the layer that last wrote this path
    sha256: str | None  # content digest, hardlinks resolved


def resolve_path(path: str, lookup, *, follow_last: bool = True, max_hops: int = 40) -> str | None:
    """Where `path` leads in a tree whose nodes `lookup` returns: symlinks in the parent
    directories are followed, and in the last component too with `follow_last` (a write
    through a link lands at its target; `ln -s` and `rm` act on the link). None after
    `max_hops` links (a loop)."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    i = 0
    while i < len(parts):
        candidate = posixpath.join(current, parts[i])
        node = lookup(candidate)
        if (
            node is not None
            and node.entry.type == "symlink"
            and node.entry.link
            and (follow_last or i < len(parts) - 1)
        ):
            hops += 1
            if hops > max_hops:
                return None
            target = node.entry.link
            base = "/" if target.startswith("/") else current
            rest = [p for p in posixpath.normpath(posixpath.join(base, target)).split("/") if p]
            parts = rest + parts[i + 1 :]
            current, i = "/", 0
            continue
        current = candidate
        i += 1
    return current


class Overlay:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._children: dict[str, set[str]] = {}

    # --- tree bookkeeping ----------------------------------------------------------
    def _link(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if parent != path:
            self._children.setdefault(parent, set()).add(path)

    def _descendants(self, path: str) -> list[str]:
        out: list[str] = []
        stack = list(self._children.get(path, ()))
        while stack:
            p = stack.pop()
            if p in self.nodes:
                out.append(p)
            stack.extend(self._children.get(p, ()))
        return sorted(out)  # the children are sets: their order follows the string-hash seed

    def _remove(self, path: str) -> Node | None:
        node = self.nodes.pop(path, None)
        parent = posixpath.dirname(path)
        kids = self._children.get(parent)
        if kids is not None:
            kids.discard(path)
        return node

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def resolve(self, path: str, max_hops: int = 40) -> Node | None:
        """Follow symlinks in the merged tree (merged-/usr: /bin -> usr/bin)."""
        landing = resolve_path(path, self.nodes.get, follow_last=True, max_hops=max_hops)
        return self.nodes.get(landing) if landing is not None else None

    # --- applying a layer ----------------------------------------------------------
    def apply(self, layer: int, files: list[FileEntry]) -> list[PathChange]:
        changes: list[PathChange] = []
        lower = self.nodes  # whiteouts act on what was there before this layer
        written: set[str] = set()
        # 1. deletions (opaque first: the spec applies them before the new content)
        for f in files:
            if f.type == "opaque":
                for p in self._descendants(f.path):
                    node = self._remove(p)
                    if node is not None:
                        changes.append(
                            _change(
                                path=p,
                                change="deleted",
                                type=node.entry.type,
                                before_sha256=node.sha256,
                                link=node.entry.link,
                                before=node.entry,
                            )
                        )
        for f in files:
            if f.type == "whiteout":
                targets = [f.path] + self._descendants(f.path) if f.path in lower else self._descendants(f.path)
                for p in targets:
                    node = self._remove(p)
                    if node is not None:
                        changes.append(
                            _change(
                                path=p,
                                change="deleted",
                                type=node.entry.type,
                                before_sha256=node.sha256,
                                link=node.entry.link,
                                before=node.entry,
                            )
                        )
        # 2. new content
        same_layer: dict[str, FileEntry] = {}
        for f in files:
            if f.type in ("whiteout", "opaque") or f.path.startswith(".."):
                continue
            same_layer[f.path] = f
        for f in files:
            if f.type in ("whiteout", "opaque") or f.path.startswith("..") or f.path == "/":
                continue  # the root directory entry ("./") is not a change of the image
            sha = f.sha256
            if f.type == "hardlink" and f.link:
                target = same_layer.get(f.link) or (self.nodes[f.link].entry if f.link in self.nodes else None)
                sha = target.sha256 if target is not None else None
            before = self.nodes.get(f.path)
            if f.path in written:
                before = None  # duplicate in the same layer: reported by verify.structure
            written.add(f.path)
            change = self._compare(before, f, sha)
            if change is not None:
                changes.append(change)
            if before is not None and before.entry.type == "dir" and f.type != "dir":
                for p in self._descendants(f.path):  # a non-dir replaces a whole subtree
                    node = self._remove(p)
                    if node is not None:
                        changes.append(
                            _change(
                                path=p,
                                change="deleted",
                                type=node.entry.type,
                                before_sha256=node.sha256,
                                link=node.entry.link,
                                before=node.entry,
                            )
                        )
            self.nodes[f.path] = Node(f, layer, sha)
            self._link(f.path)
        return changes

    @staticmethod
    def _compare(before: Node | None, f: FileEntry, sha: str | None) -> PathChange | None:
        if before is None:
            return _change(
                path=f.path,
                change="added",
                type=f.type,
                size=f.size,
                sha256=sha,
                link=f.link if f.type == "symlink" else None,
                after=f,
            )
        b = before.entry
        what: list[str] = []
        if b.type != f.type and not {b.type, f.type} <= {"file", "hardlink"}:
            what.append("type")
        if (before.sha256 or None) != (sha or None) and f.type in ("file", "hardlink"):
            what.append("content")
        if (b.mode & PERM_MASK) != (f.mode & PERM_MASK):
            what.append("mode")
        if (b.uid, b.gid) != (f.uid, f.gid):
            what.append("owner")
        if f.type == "symlink" and b.link != f.link:
            what.append("link")
        if not what:
            if f.type == "dir":
                return None  # a parent directory re-emitted: not a change of its own
            what.append("metadata")
        return _change(
            path=f.path,
            change="modified",
            type=f.type,
            what=what,
            size=f.size,
            sha256=sha,
            before_sha256=before.sha256,
            link=f.link if f.type == "symlink" else None,
            after=f,
            before=b,
        )
