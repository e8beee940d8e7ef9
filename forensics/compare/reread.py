"""Second pass over an archive: the bytes of a few small files of chosen layers.

The first pass keeps digests, not contents. To tell a timestamp inside a file
from a real change (forensics.compare.noise, when="timestamps"), the two
versions are read again, streaming, capped at MAX_BYTES each. Only for seekable
inputs (a file or a directory, not stdin); any damage means "not read", which
leaves the difference real.
"""

from __future__ import annotations

import os

from forensics.archive.layerfs import norm_layer_path
from forensics.models import Report

MAX_BYTES = 1 << 20


class _Pre:
    def __init__(self, head: bytes, read) -> None:
        self._head, self._read = head, read

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return bytes(self._read(n))


def layer_entries(report: Report, image: int) -> dict[int, str]:
    """Layer index -> outer entry path of its blob (matched by the digest of the bytes read)."""
    from forensics.archive.scan import norm_outer

    by_digest: dict[str, str] = {}
    for b in report.blobs:
        if b.kind == "layer" and b.digest:
            by_digest.setdefault(b.digest, norm_outer(b.name)[0])
    out: dict[int, str] = {}
    img = report.images[image]
    for layer in img.layers:
        if layer.actual_sha256 and layer.actual_sha256 in by_digest:
            out[layer.index] = by_digest[layer.actual_sha256]
        elif layer.path_in_archive:
            out[layer.index] = norm_outer(layer.path_in_archive)[0]
    return out


def read_files(report: Report, image: int, wanted: dict[int, set[str]],
               max_bytes: int = MAX_BYTES) -> dict[tuple[int, str], bytes]:
    """{(layer index, path): content} for the wanted regular files that could be read whole."""
    from forensics.archive.decompress import open_stream, sniff
    from forensics.archive.scan import norm_outer
    from forensics.archive.tarstream import FileSource, TarReader

    source = report.input.path
    result: dict[tuple[int, str], bytes] = {}
    if source == "-" or not wanted:
        return result
    entries = layer_entries(report, image)
    by_entry: dict[str, list[tuple[int, set[str]]]] = {}
    for layer, paths in wanted.items():
        if layer in entries and paths:
            by_entry.setdefault(entries[layer], []).append((layer, paths))
    if not by_entry:
        return result

    def walk_layer(read, entry_path: str) -> None:
        head = read(4096)
        kind = sniff(bytes(head))
        stream = open_stream("none" if kind == "tar" else kind, _Pre(bytes(head), read))
        tar = TarReader(FileSource(stream))
        targets = by_entry[entry_path]
        try:
            while (m := tar.next()) is not None:
                if m.type != "file" or m.size > max_bytes:
                    continue
                p = norm_layer_path(m.name)[0]
                layers = [layer for layer, paths in targets if p in paths]
                if not layers:
                    continue
                chunks = []
                while part := tar.read(1 << 20):
                    chunks.append(bytes(part))
                data = b"".join(chunks)
                for layer in layers:
                    result[(layer, p)] = data  # the last copy in the tar wins, as extraction does
        except Exception:  # noqa: BLE001 - hostile input: the first pass reported the damage
            return

    try:
        if os.path.isdir(source):
            for entry_path in by_entry:
                try:
                    with open(os.path.join(source, entry_path), "rb") as fh:
                        walk_layer(fh.read, entry_path)
                except OSError:
                    continue
            return result
        with open(source, "rb") as fh:
            head = fh.read(4096)
            kind = sniff(head)
            stream = open_stream("none" if kind == "tar" else kind, _Pre(head, fh.read))
            outer = TarReader(FileSource(stream))
            done: set[str] = set()
            while (m := outer.next()) is not None:
                path, _ = norm_outer(m.name)
                if m.type == "file" and path in by_entry and path not in done:
                    done.add(path)
                    walk_layer(outer.read, path)
                    if len(done) == len(by_entry):
                        break
    except Exception:  # noqa: BLE001
        pass
    return result
