"""`forensics extract`: the bytes of one path, as one layer holds it or as the merged
filesystem shows it, with a manifest of where they came from.

Nothing from the image chooses where anything is written: the file's name in DIR is
fixed from the requested path (its safe characters plus a digest of the exact path),
beside it `manifest.json`; both are created next to their final name and linked into
place only if that name is free (never an overwrite, never through a link planted there).
Links are never followed: a symlink is recorded with its target; a hardlink's bytes are
its target's within the same layer, else it is recorded too. The bytes are hashed as they
are written and must be the bytes the one pass hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from forensics.export.layers import LayerView, content_path, merged
from forensics.models import FileEntry
from forensics.paths import norm_layer_path
from forensics.read.source import MemberSource
from forensics.render.safe import visible

MANIFEST = "manifest.json"
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
BUILD_METADATA = (
    "mode, owner and mtime are what the layer tar records: build metadata that whoever built or "
    "edited the image could set to anything; the bytes and their digests are what the layer holds"
)


class ExtractError(Exception):
    """The path cannot be extracted as asked: one line saying why and what to do."""


def image_path(text: str) -> str:
    """The requested path as the image names it (`/etc/x`, `etc/x`, `./etc/x`)."""
    path, escapes = norm_layer_path(text)
    if escapes or path == "/":
        raise ExtractError(f"{visible(text)!r} is not a path inside the image (it is the root or climbs above it)")
    return path


def file_name(path: str) -> str:
    """The fixed name in DIR for `path`: no separator, no leading dot, never `manifest.json`."""
    stem = _UNSAFE_CHARS.sub("_", path.strip("/")).strip("._")[:96] or "file"
    tag = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{stem}.{tag}.bin"


@dataclass(slots=True)
class Located:
    view: LayerView
    entry: FileEntry
    member: str | None  # the member whose bytes are read (a hardlink's target); None: no bytes
    source: str  # "layer" (as the layer holds it) or "merged"


def _holders(views: list[LayerView], path: str) -> str:
    held = [str(v.index) for v in views if v.find(path) is not None]
    deleted = [str(v.index) for v in views if any(f.path == path and f.type in ("whiteout", "opaque") for f in v.files)]
    out = f"layers holding it: {', '.join(held)}" if held else "no layer holds it"
    return out + (f"; deleted by a whiteout in layer {', '.join(deleted)}" if deleted else "")


def locate(views: list[LayerView], path: str, layer: int | None) -> Located:
    if layer is not None:
        if not 0 <= layer < len(views):
            raise ExtractError(f"--layer {layer}: the image has {len(views)} layer(s), numbered from 0")
        view = views[layer]
        entry = view.find(path)
        if entry is None:
            raise ExtractError(f"layer {layer} holds no {visible(path)} ({_holders(views, path)})")
        source = "layer"
    else:
        node = merged(views).get(path)
        if node is None:
            raise ExtractError(
                f"the merged filesystem holds no {visible(path)} ({_holders(views, path)}); "
                "--layer N extracts it as a layer holds it"
            )
        view, entry, source = views[node.layer], node.entry, "merged"
    if entry.type == "dir":
        raise ExtractError(
            f"{visible(path)} is a directory; extract its files one at a time "
            f"(`forensics hashes ARCHIVE --layer {view.index}` lists them)"
        )
    if view.blob is None:
        raise ExtractError(f"layer {view.index} is not in the archive or could not be read")
    return Located(view, entry, content_path(view, entry), source)


class _Dir:
    """DIR, opened once: every name is created relative to it, never through a path."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ExtractError(f"cannot create -o {visible(path)}: {exc.strerror or exc}") from None
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ExtractError(f"-o {visible(path)}: not a directory I can open: {exc.strerror or exc}") from None
        self.partial: list[str] = []

    def refuse_existing(self, *names: str) -> None:
        for name in names:
            try:
                os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            raise ExtractError(
                f"{visible(os.path.join(self.path, name))} exists; extract never overwrites: choose another -o DIR"
            )

    def create(self, name: str) -> int:
        tmp = f".{name}.{os.getpid()}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.fd)
        self.partial.append(tmp)
        return fd

    def publish(self, name: str) -> None:
        """Link the finished temporary file to its name, only if the name is still free."""
        tmp = f".{name}.{os.getpid()}.partial"
        try:
            os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileExistsError:
            raise ExtractError(
                f"{visible(os.path.join(self.path, name))} appeared meanwhile; not overwritten"
            ) from None
        os.unlink(tmp, dir_fd=self.fd)
        self.partial.remove(tmp)

    def close(self) -> None:
        for tmp in self.partial:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except OSError:
                pass
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        os.close(self.fd)


def _iso(t: float) -> str | None:
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def extract(
    loc: Located,
    path: str,
    out_dir: str,
    source: MemberSource,
    about: dict,
    on_bytes: Callable[[int], None] | None = None,
) -> dict:
    """Write the file (when it has bytes) and its manifest into `out_dir`; return the manifest.
    `about` holds the run's own fields (tool, input, image, case)."""
    name = file_name(path)
    d = _Dir(out_dir)
    try:
        d.refuse_existing(name, MANIFEST)
        digests: dict | None = None
        if loc.member is not None:
            digests = _write_bytes(d, name, loc, source)
        e, v = loc.entry, loc.view
        manifest = {
            **about,
            "path": path,
            "source": loc.source,
            "layer": {"index": v.index, "digest": v.digest, "diff_id": v.diff_id, "history": v.step},
            "type": e.type,
            "link": e.link,
            "content_member": loc.member,
            "file": name if digests is not None else None,
            "size": digests["size"] if digests else (e.size if e.type == "file" else 0),
            "sha256": digests["sha256"] if digests else None,
            "md5": digests["md5"] if digests else None,
            "mode": f"{e.mode & 0o7777:04o}",
            "uid": e.uid,
            "gid": e.gid,
            "mtime": _iso(e.mtime),
            "mtime_epoch": e.mtime,
            "note": BUILD_METADATA
            + (
                ""
                if digests is not None
                else "; no bytes written: "
                + ("a symlink is recorded, never followed" if e.type == "symlink" else f"a {e.type} has no content")
                + (" (a hardlink whose target is not in the same layer)" if e.type == "hardlink" else "")
            ),
            "extracted_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body = (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii")
        fd = d.create(MANIFEST)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fchmod(fh.fileno(), 0o444)
            os.fsync(fh.fileno())
        if digests is not None:
            d.publish(name)
        try:
            d.publish(MANIFEST)
        except ExtractError:
            if digests is not None:
                os.unlink(name, dir_fd=d.fd)  # no file without its manifest
            raise
        if on_bytes is not None and digests is not None:
            on_bytes(digests["size"])
        return manifest
    finally:
        d.close()


def _write_bytes(d: _Dir, name: str, loc: Located, source: MemberSource) -> dict:
    fd = d.create(name)
    got: dict = {}
    expected = (loc.view.find(loc.member) if loc.member else None) or loc.entry
    with os.fdopen(fd, "wb") as fh:

        def consume(blob: str, member: str, header, read) -> None:
            # Every copy of a duplicated member is streamed: keep the last, as extraction would.
            fh.seek(0)
            fh.truncate()
            m, s, n = hashlib.md5(), hashlib.sha256(), 0
            while chunk := read(1 << 20):
                fh.write(chunk)
                m.update(chunk)
                s.update(chunk)
                n += len(chunk)
            got.update(size=n, md5=m.hexdigest(), sha256=s.hexdigest())

        assert loc.view.blob is not None and loc.member is not None
        source.stream({loc.view.blob: {loc.member}}, consume)
        fh.flush()
        os.fchmod(fh.fileno(), 0o444)  # evidence: read-only, never executable or setuid
        os.fsync(fh.fileno())
    if not got:
        raise ExtractError(f"layer {loc.view.index}: {visible(loc.member or '')} could not be read again")
    if expected.sha256 and got["sha256"] != expected.sha256:
        raise ExtractError(
            f"layer {loc.view.index}: {visible(loc.member or '')} read again is sha256:{got['sha256']}, "
            f"not the sha256:{expected.sha256} the first pass hashed: the input changed"
        )
    return got
