"""The member source of a seekable input (forensics.read.source): a second, targeted
pass that streams chosen members of chosen layers again.

The first pass keeps digests and metadata, never contents. A few checks need
more of a handful of files (an md5 a package database recorded, the bytes of a
file that may differ only by an embedded timestamp). This reads the input again,
decompresses only the layer blobs named, and hands each wanted member to a
callback. Only for seekable inputs (a file or a directory, not stdin). Damage
means "not read": the first pass has already reported it.
"""

from __future__ import annotations

import os

from forensics.archive.decompress import open_stream, sniff
from forensics.archive.tarstream import FileSource, TarReader
from forensics.paths import norm_layer_path, norm_outer
from forensics.read.source import Consume


class _Prefixed:
    def __init__(self, head: bytes, read) -> None:
        self._head, self._read = head, read

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return bytes(self._read(n))


def _walk_layer(read, entry_path: str, targets: set[str], consume: Consume) -> None:
    head = bytes(read(4096))
    kind = sniff(head)
    tar = TarReader(FileSource(open_stream("none" if kind == "tar" else kind, _Prefixed(head, read))))
    try:
        while (m := tar.next()) is not None:
            if m.type != "file":
                continue
            path = norm_layer_path(m.name)[0]
            if path in targets:
                consume(entry_path, path, m, tar.read)
    except Exception:  # noqa: BLE001 - hostile input; the first pass reported the damage
        return


def reread(source: str, wanted: dict[str, set[str]], consume: Consume) -> None:
    """For each outer entry path in `wanted` (a layer blob), call `consume` for its
    regular members whose normalized path is in the set."""
    if source == "-" or not wanted:
        return
    if os.path.isdir(source):
        for entry_path, targets in wanted.items():
            try:
                with open(os.path.join(source, entry_path), "rb") as fh:
                    _walk_layer(fh.read, entry_path, targets, consume)
            except OSError:
                continue
        return
    try:
        with open(source, "rb") as fh:
            head = fh.read(4096)
            kind = sniff(head)
            stream = open_stream("none" if kind == "tar" else kind, _Prefixed(head, fh.read))
            outer = TarReader(FileSource(stream))
            while (m := outer.next()) is not None:
                path, _ = norm_outer(m.name)
                if m.type == "file" and path in wanted:
                    # Every copy of a duplicated entry is read; consumers keep the last one,
                    # which is the copy the first pass analyzed (as extraction would).
                    _walk_layer(outer.read, path, wanted[path], consume)
    except Exception:  # noqa: BLE001 - hostile input: keep what was read
        return


class SeekableSource:
    """A file or a layout directory read again; "-" (stdin) cannot be."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.readable = path != "-" and (os.path.isfile(path) or os.path.isdir(path))

    def stream(self, wanted: dict[str, set[str]], consume: Consume) -> None:
        if self.readable:
            reread(self.path, wanted, consume)
