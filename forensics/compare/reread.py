"""Second pass over an input (forensics.read.source): the bytes of a few small files of chosen layers.

The first pass keeps digests, not contents. To tell a timestamp inside a file
from a real change (forensics.compare.noise, when="timestamps"), the two
versions are read again, streaming, capped at MAX_BYTES each. Only for seekable
inputs (a file or a directory, not stdin); any damage means "not read", which
leaves the difference real.
"""

from __future__ import annotations

from forensics.models import Report
from forensics.paths import norm_outer
from forensics.read.source import MemberSource, open_source

MAX_BYTES = 1 << 20


def layer_entries(report: Report, image: int) -> dict[int, str]:
    """Layer index -> outer entry path of its blob (matched by the digest of the bytes read)."""
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


def read_files(
    report: Report,
    image: int,
    wanted: dict[int, set[str]],
    max_bytes: int = MAX_BYTES,
    source: MemberSource | None = None,
) -> dict[tuple[int, str], bytes]:
    """{(layer index, path): content} for the wanted regular files that could be read whole;
    `source` reads the report's input again (by default, from the path the report names)."""
    result: dict[tuple[int, str], bytes] = {}
    entries = layer_entries(report, image)
    by_entry: dict[str, list[tuple[int, set[str]]]] = {}
    for layer, paths in wanted.items():
        if layer in entries and paths:
            by_entry.setdefault(entries[layer], []).append((layer, paths))

    def consume(entry_path: str, path: str, member, read) -> None:
        if member.size > max_bytes:
            return
        chunks = []
        while part := read(1 << 20):
            chunks.append(bytes(part))
        data = b"".join(chunks)
        for layer, paths in by_entry[entry_path]:
            if path in paths:
                result[(layer, path)] = data  # the last copy in the tar wins, as extraction does

    source = source or open_source(report.input.path)
    source.stream({e: set().union(*(p for _, p in v)) for e, v in by_entry.items()}, consume)
    return result
