"""Merged filesystems of an image, step by step, and the differences between two of them.

`Replay(image)` applies the image's layers in order over an Overlay (OCI whiteout
rules, forensics.history.overlay) and keeps, for every path, the state it has
after each layer that touched it: the final merged filesystem is `final`, the
state after layer L is `at(path, L)`. `diff_fs` compares two merged filesystems
on type, content (sha256), size, mode, owner and link target; mtimes only when
asked (a rebuild never has the same mtimes).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from forensics.compare.model import WHAT_ORDER, PathDiff, PathState
from forensics.history.overlay import PERM_MASK, Overlay
from forensics.models import FileEntry, Image
from forensics.render.units import human_size

REGULAR = ("file", "hardlink")


@dataclass(slots=True, frozen=True)
class St:
    """A path's state; cheap to keep one per version (PathState is built only for differences)."""

    type: str
    mode: int
    uid: int
    gid: int
    size: int | None
    sha256: str | None
    link: str | None
    mtime: float
    kind: str | None
    layer: int

    def public(self, history: int | None = None) -> PathState:
        return PathState(
            type=self.type,
            mode=self.mode,
            uid=self.uid,
            gid=self.gid,
            size=self.size,
            sha256=self.sha256,
            link=self.link,
            mtime=self.mtime,
            kind=self.kind,
            layer=self.layer,
            history=history,
        )

    @property
    def executable(self) -> bool:
        return self.type == "file" and (self.kind in ("elf", "script") or bool(self.mode & 0o111))


def _state(entry: FileEntry, sha: str | None, layer: int, target: FileEntry | None) -> St:
    if entry.type in REGULAR:
        src = target if entry.type == "hardlink" and target is not None else entry
        return St(
            "file", entry.mode & PERM_MASK, entry.uid, entry.gid, src.size, sha, None, entry.mtime, src.kind, layer
        )
    link = entry.link if entry.type == "symlink" else None
    return St(entry.type, entry.mode & PERM_MASK, entry.uid, entry.gid, None, None, link, entry.mtime, None, layer)


class Replay:
    """One image's layers replayed: final merged filesystem plus per-layer versions of each path."""

    def __init__(self, img: Image) -> None:
        self.image = img
        self.history_of_layer = {h.layer_index: h.index for h in img.history if h.layer_index is not None}
        self.final: dict[str, St] = {}
        self.touched: list[list[str]] = []  # per position in img.layers
        self.missing: list[int] = [layer.index for layer in img.layers if not layer.present]
        self._versions: dict[str, tuple[list[int], list[St | None]]] = {}
        overlay = Overlay()
        for pos, layer in enumerate(img.layers):
            files = layer.files
            changes = overlay.apply(layer.index, files)
            touched: dict[str, None] = {}
            for ch in changes:
                if ch.change == "deleted":
                    touched[ch.path] = None
            for f in files:
                if f.type in ("whiteout", "opaque") or f.path == "/" or f.path.startswith(".."):
                    continue
                touched[f.path] = None
            for p in touched:
                node = overlay.nodes.get(p)
                st = None
                if node is not None:
                    target = None
                    if node.entry.type == "hardlink" and node.entry.link:
                        t = overlay.nodes.get(node.entry.link)
                        target = t.entry if t is not None else None
                        if target is not None and target.type == "hardlink" and target.link:
                            t2 = overlay.nodes.get(target.link)
                            target = t2.entry if t2 is not None else target
                    st = _state(node.entry, node.sha256, layer.index, target)
                layers, states = self._versions.setdefault(p, ([], []))
                layers.append(pos)
                states.append(st)
            self.touched.append(list(touched))
        for p, (_, states) in self._versions.items():
            if states[-1] is not None:
                self.final[p] = states[-1]

    def at(self, path: str, pos: int | None) -> St | None:
        """State of `path` after the layer at position `pos` (None: before the first layer)."""
        if pos is None:
            return None
        v = self._versions.get(path)
        if v is None:
            return None
        layers, states = v
        i = bisect.bisect_right(layers, pos) - 1
        return states[i] if i >= 0 else None

    def history_of(self, st: St | None) -> int | None:
        return None if st is None else self.history_of_layer.get(st.layer)


def compare_states(a: St | None, b: St | None, times: bool = False) -> list[str] | None:
    """None when equal; otherwise what differs (empty list for presence differences)."""
    if a is None and b is None:
        return None
    if a is None or b is None:
        return []
    what: set[str] = set()
    if a.type != b.type:
        what.add("type")
    if a.type == "file" and b.type == "file":
        if a.sha256 != b.sha256:
            what.add("content")
        if a.size != b.size:
            what.add("size")
    if a.mode != b.mode:
        what.add("mode")
    if (a.uid, a.gid) != (b.uid, b.gid):
        what.add("owner")
    if a.link != b.link:
        what.add("link")
    if times and int(a.mtime) != int(b.mtime):
        what.add("mtime")
    return [w for w in WHAT_ORDER if w in what] or None


def describe(st: St | PathState | None) -> str:
    """'a 62-byte shell script', 'a 70.0 KiB ELF', 'a directory', 'a symlink to /x', 'absent'."""
    if st is None:
        return "absent"
    if st.type == "file":
        kind = {"elf": "ELF", "script": "shell script", "empty": "file", "data": "file"}.get(st.kind or "", "file")
        if st.kind == "empty" or st.size == 0:
            return "an empty file"
        size = size_phrase(st.size)
        return f"{_article(size)} {size} {kind}"
    if st.type == "dir":
        return "a directory"
    if st.type == "symlink":
        return f"a symlink to {st.link}"
    return {"char": "a character device", "block": "a block device", "fifo": "a FIFO"}.get(st.type, f"a {st.type}")


def _article(phrase: str) -> str:
    return "an" if phrase.startswith(("8", "11-", "11.", "18-", "18.")) else "a"


def size_phrase(n: int | None) -> str:
    if n is None:
        return "unknown-size"
    return f"{n}-byte" if n < 1024 else human_size(n)


def _detail(path: str, change: str, what: list[str], a: St | None, b: St | None) -> str:
    if change == "added":
        return f"only in the second image ({b.type if b else '?'})"
    if change == "removed":
        return f"only in the first image ({a.type if a else '?'})"
    assert a is not None and b is not None
    parts: list[str] = []
    for w in what:
        if w == "type":
            parts.append(f"type {a.type} -> {b.type}")
        elif w == "content":
            parts.append(f"content sha256:{a.sha256} -> sha256:{b.sha256}")
        elif w == "size":
            parts.append(f"size {a.size} -> {b.size}")
        elif w == "mode":
            parts.append(f"mode {a.mode:04o} -> {b.mode:04o}")
        elif w == "owner":
            parts.append(f"owner {a.uid}:{a.gid} -> {b.uid}:{b.gid}")
        elif w == "link":
            parts.append(f"link {a.link} -> {b.link}")
        elif w == "mtime":
            parts.append(f"mtime {int(a.mtime)} -> {int(b.mtime)}")
    if ("content" in what or "type" in what) and (a.kind != b.kind or a.type != b.type):
        parts.append(f"was {describe(a)}, is {describe(b)}")
    return "; ".join(parts)


def path_diff(
    path: str, a: St | None, b: St | None, what: list[str], ra: Replay | None = None, rb: Replay | None = None
) -> PathDiff:
    change = "added" if a is None else "removed" if b is None else "changed"
    return PathDiff(
        path=path,
        change=change,
        what=what if change == "changed" else [],
        a=a.public(ra.history_of(a) if ra else None) if a else None,
        b=b.public(rb.history_of(b) if rb else None) if b else None,
        detail=_detail(path, change, what, a, b),
    )


def diff_fs(a: Replay, b: Replay, times: bool = False) -> list[PathDiff]:
    """Every path whose state differs between the two final merged filesystems, sorted by path."""
    out: list[PathDiff] = []
    fa, fb = a.final, b.final
    for p in sorted(fa.keys() | fb.keys()):
        what = compare_states(fa.get(p), fb.get(p), times)
        if what is not None:
            out.append(path_diff(p, fa.get(p), fb.get(p), what, a, b))
    return out
