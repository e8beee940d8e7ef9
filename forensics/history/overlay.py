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
        _what(what),
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


# One list object per distinct `what` (an empty one for every addition and deletion): a
# list per changed path is 56 bytes and more, 17 MB on an image of 300,000 changes. Nothing
# changes a PathChange's `what` in place once it is made; code that wants to must copy it.
_WHATS: dict[tuple[str, ...], list[str]] = {}


def _what(what: list[str] | None) -> list[str]:
    key = tuple(what) if what else ()
    shared = _WHATS.get(key)
    if shared is None:
        if len(_WHATS) >= 256:  # at most 6 words in a fixed order: never reached
            return list(key)
        shared = _WHATS[key] = list(key)
    return shared


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


def _parent(path: str) -> str:
    """posixpath.dirname, without its call chain for the usual normalized path."""
    i = path.rfind("/")
    if i > 0 and path[i - 1] != "/":
        return path[:i]
    return posixpath.dirname(path)


_GONE = ("whiteout", "opaque")


class Overlay:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        # parent -> the paths ever linked below it. A removed path stays listed (removal is
        # rare, a set per directory is ~4x the memory of a list): readers check self.nodes,
        # and a path is listed again only when it comes back after a removal.
        self._children: dict[str, list[str]] = {}

    # --- tree bookkeeping ----------------------------------------------------------
    def _link(self, path: str) -> None:
        parent = _parent(path)
        if parent == path:
            return
        kids = self._children.get(parent)
        if kids is None:
            node = self.nodes.get(parent)  # key by the directory's own string, not a copy
            self._children[node.entry.path if node is not None else parent] = [path]
        else:
            kids.append(path)

    def _descendants(self, path: str) -> list[str]:
        out: set[str] = set()
        children = self._children
        nodes = self.nodes
        seen: set[str] = set()
        stack = list(children.get(path, ()))
        while stack:
            p = stack.pop()
            if p in seen:  # listed twice: removed and written again
                continue
            seen.add(p)
            if p in nodes:
                out.add(p)
            stack.extend(children.get(p, ()))
        return sorted(out)  # in path order, whatever order the layers linked them in

    def _remove(self, path: str) -> Node | None:
        return self.nodes.pop(path, None)

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def resolve(self, path: str, max_hops: int = 40) -> Node | None:
        """Follow symlinks in the merged tree (merged-/usr: /bin -> usr/bin)."""
        landing = resolve_path(path, self.nodes.get, follow_last=True, max_hops=max_hops)
        return self.nodes.get(landing) if landing is not None else None

    # --- applying a layer ----------------------------------------------------------
    def _deleted(self, paths: list[str], changes: list[PathChange]) -> None:
        for p in paths:
            node = self._remove(p)
            if node is not None:
                e = node.entry
                changes.append(
                    _change(path=p, change="deleted", type=e.type, before_sha256=node.sha256, link=e.link, before=e)
                )

    def apply(self, layer: int, files: list[FileEntry]) -> list[PathChange]:
        """What `files` change in the merged filesystem, which then holds them. Runs once
        per layer entry: keep the loop lean."""
        changes: list[PathChange] = []
        nodes = self.nodes
        # 1. deletions (opaque first: the spec applies them before the new content)
        for f in files:
            if f.type == "opaque":
                self._deleted(self._descendants(f.path), changes)
        for f in files:
            if f.type == "whiteout":
                # whiteouts act on what was there before this layer (its own entries come later)
                below = self._descendants(f.path)
                self._deleted([f.path, *below] if f.path in nodes else below, changes)
        # 2. new content
        written: set[str] = set()
        same_layer: dict[str, FileEntry] | None = None  # built at the first hardlink
        compare = self._compare
        no_what = _what(None)
        for f in files:
            path = f.path
            ftype = f.type
            if ftype in _GONE or path.startswith("..") or path == "/":
                continue  # the root directory entry ("./") is not a change of the image
            sha = f.sha256
            if ftype == "hardlink" and f.link:
                if same_layer is None:  # the last entry of this layer at each hardlink target
                    targets = {g.link for g in files if g.type == "hardlink" and g.link}
                    same_layer = {
                        g.path: g
                        for g in files
                        if g.path in targets and g.type not in _GONE and not g.path.startswith("..")
                    }
                target = same_layer.get(f.link) or (nodes[f.link].entry if f.link in nodes else None)
                sha = target.sha256 if target is not None else None
            before = nodes.get(path)
            if path in written:
                before = None  # duplicate in the same layer: reported by verify.structure
            written.add(path)
            if before is None:  # most changes: _compare's first case without its two calls
                changes.append(
                    PathChange(
                        path,
                        "added",
                        ftype,
                        no_what,
                        f.size,
                        sha,
                        None,
                        f.link if ftype == "symlink" else None,
                        None,
                        None,
                        f.mode,
                        f.uid,
                        f.gid,
                    )
                )
            else:
                change = compare(before, f, sha)
                if change is not None:
                    changes.append(change)
            if before is not None and before.entry.type == "dir" and ftype != "dir":
                self._deleted(self._descendants(path), changes)  # a non-dir replaces a whole subtree
            new = path not in nodes
            nodes[path] = Node(f, layer, sha)
            if new:  # a path still in the tree is linked already
                self._link(path)
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
