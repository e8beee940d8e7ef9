"""The files of an image as the exports see them: per layer (the blob, its digests, its
file index and the md5s the one pass took) or merged (the OCI whiteout rules applied,
forensics.history.overlay), and the second read of contents that fills in what the pass
did not hash (md5 outside package systems, the bytes themselves).

Works on the model (forensics.read.model) and a MemberSource only, never on the input."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from forensics.history.overlay import Overlay
from forensics.models import FileEntry
from forensics.paths import norm_layer_path
from forensics.read.model import Resolved, record_digest
from forensics.read.source import MemberSource

_EMPTY_MD5 = hashlib.md5(b"").hexdigest()


@dataclass(slots=True)
class LayerView:
    image: int
    index: int  # from 0, as everywhere in the tool's output
    digest: str | None  # the layer blob's digest (as declared; docker-archive: computed)
    diff_id: str | None  # sha256 of the uncompressed tar, computed
    blob: str | None  # the blob's path in the archive (what a MemberSource streams), None when absent
    files: list[FileEntry]
    md5: dict[str, str] = field(default_factory=dict)  # path -> md5 hex taken in the pass
    step: int | None = None  # the history entry that owns the layer

    def find(self, path: str) -> FileEntry | None:
        """The entry extraction would leave at `path`: the last of its copies in the tar."""
        found = None
        for f in self.files:
            if f.path == path and f.type not in ("whiteout", "opaque"):
                found = f
        return found


def layer_views(res: Resolved, image: int, steps: dict[int, int] | None = None) -> list[LayerView]:
    """Every layer of image `image` of the model; `steps` maps a layer to its history entry."""
    img = res.images[image]
    out: list[LayerView] = []
    for lr in img.layers:
        d, e = lr.descriptor, lr.descriptor.entry
        scan = e.layer if e is not None else None
        md5: dict[str, str] = {}
        if scan is not None:
            for name, value in scan.record_digests.items():
                hx = record_digest(value, "md5")
                if hx:
                    md5[norm_layer_path(name)[0]] = hx
        out.append(
            LayerView(
                image=image,
                index=lr.index,
                digest=d.actual if img.source == "docker" else d.digest,
                diff_id=scan.diff_id if scan is not None else None,
                blob=e.path if e is not None and scan is not None else None,
                files=scan.files if scan is not None else [],
                md5=md5,
                step=(steps or {}).get(lr.index),
            )
        )
    return out


def merged(views: list[LayerView]) -> Overlay:
    """The final filesystem of the layers (OCI whiteouts applied); each node names its layer."""
    ov = Overlay()
    for v in views:
        ov.apply(v.index, v.files)
    return ov


def content_path(view: LayerView, f: FileEntry) -> str | None:
    """The member whose bytes `f` has in its layer: itself, or a hardlink's target within the
    same layer (never outside it); None when there are no bytes to read."""
    if f.type == "file":
        return f.path
    if f.type == "hardlink" and f.link:
        target = view.find(f.link)
        if target is not None and target.type == "file":
            return target.path
    return None


@dataclass(slots=True)
class Hashed:
    size: int
    md5: str
    sha256: str


Sink = Callable[[str, str, Callable[[int], memoryview]], None]


def read_contents(source: MemberSource, wanted: dict[str, set[str]], sink: Sink) -> None:
    """Stream the members `wanted[blob]` of each layer blob to `sink(blob, path, read)`."""
    if wanted:
        source.stream(wanted, lambda blob, path, member, read: sink(blob, path, read))


def md5_of(source: MemberSource, need: Iterator[tuple[LayerView, str]]) -> dict[tuple[str, str], Hashed]:
    """(blob, path) -> Hashed, read again for the members the pass took no md5 of. Every
    copy of a duplicated member is read; the last one wins, as extraction would leave it."""
    wanted: dict[str, set[str]] = {}
    for view, path in need:
        if view.blob is not None:
            wanted.setdefault(view.blob, set()).add(path)
    out: dict[tuple[str, str], Hashed] = {}

    def sink(blob: str, path: str, read: Callable[[int], memoryview]) -> None:
        m, s, n = hashlib.md5(), hashlib.sha256(), 0
        while chunk := read(1 << 20):
            m.update(chunk)
            s.update(chunk)
            n += len(chunk)
        out[(blob, path)] = Hashed(n, m.hexdigest(), s.hexdigest())

    read_contents(source, wanted, sink)
    return out


def known_md5(view: LayerView, path: str, f: FileEntry) -> str | None:
    """The md5 without reading anything: taken in the pass, or that of an empty file."""
    if f.type == "file" and f.size == 0:
        return _EMPTY_MD5
    return view.md5.get(path)
