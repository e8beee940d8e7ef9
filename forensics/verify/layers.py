"""layer.* findings: each layer's uncompressed digest against rootfs.diff_ids."""

from __future__ import annotations

from forensics.findings import Code, finding
from forensics.models import Finding
from forensics.read.model import ResolvedImage

RAISES: tuple[Code, ...] = ("layer.count-mismatch", "layer.diffid-mismatch")


def check_layers(img: ResolvedImage) -> list[Finding]:
    out: list[Finding] = []
    if img.config_doc is None:
        return out  # no config, nothing declares diff_ids
    n_layers, n_ids = len(img.layers), len(img.diff_ids)
    if n_layers != n_ids:
        out.append(
            finding(
                "layer.count-mismatch",
                "high",
                f"image[{img.index}]",
                f"the manifest lists {n_layers} layers but rootfs.diff_ids has {n_ids} entries",
                image=img.index,
                evidence={"layers": n_layers, "diff_ids": n_ids},
            )
        )
    for lr in img.layers:
        e = lr.descriptor.entry
        if e is None or e.layer is None or lr.declared_diff_id is None:
            continue
        actual = e.layer.diff_id
        if actual is None:
            continue  # decompression was stopped; reported as archive.malformed
        if actual != lr.declared_diff_id:
            truncated = bool(e.layer.error or e.error)
            out.append(
                finding(
                    "layer.diffid-mismatch",
                    "high" if truncated else "critical",
                    f"layer[{lr.index}]",
                    f"layer {lr.index} ({e.name}, addressed as {lr.descriptor.digest}): sha256 of its uncompressed "
                    f"tar is {actual}, rootfs.diff_ids[{lr.index}] says {lr.declared_diff_id}"
                    + (" (the layer could not be read to its end)" if truncated else ""),
                    image=img.index,
                    layer=lr.index,
                    digest=lr.descriptor.digest,
                    entry=e.name,
                    evidence={"declared": lr.declared_diff_id, "actual": actual},
                )
            )
    return out
