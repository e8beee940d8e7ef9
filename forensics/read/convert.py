"""The streaming core's inventory as the model: one `Entry` per outer entry, one
`LayerIndex` per layer blob. Runs once per entry (100,000 of them in a junk archive), so
it copies fields and builds nothing it does not need."""

from __future__ import annotations

from forensics.archive.layerscan import LayerScan
from forensics.archive.scan import Inventory
from forensics.read.model import Archive, Digest, Entry, LayerIndex, LimitHit


def _hits(hits: dict) -> dict[str, LimitHit]:
    return {k: LimitHit(h.limit, h.value, h.count, h.example) for k, h in hits.items()}


def layer_index_of(scan: LayerScan) -> LayerIndex:
    return LayerIndex(
        compression=scan.compression,
        diff_id=Digest.parse(scan.diff_id),
        uncompressed_size=scan.uncompressed_size,
        files=scan.files,
        unsafe=scan.unsafe,
        captured=scan.captured,
        record_digests=scan.record_digests,
        error=scan.error,
        trailing_garbage=scan.trailing_garbage,
        is_tar=scan.is_tar,
        over_limit=_hits(scan.over_limit),
    )


def archive_of(inv: Inventory) -> Archive:
    out = Archive(
        source=inv.source,
        is_dir=inv.is_dir,
        input_size=inv.input_size,
        input_sha256=Digest.parse(inv.input_sha256),
        input_compression=inv.input_compression,
        errors=list(inv.errors),
        truncated=inv.truncated,
        over_limit=_hits(inv.over_limit),
    )
    of_hex = Digest.of_hex
    for e in inv.entries:
        out.add(
            Entry(
                e.seq,
                e.name,
                e.path,
                e.type,
                e.size,
                e.mode,
                e.mtime,
                e.linkname,
                e.sha256,
                of_hex(e.sha256) if e.sha256 else None,
                e.nbytes,
                e.sniffed,
                e.data,
                layer_index_of(e.layer) if e.layer is not None else None,
                e.error,
                e.json_limit,
            )
        )
    return out
