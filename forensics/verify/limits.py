"""archive.limit-exceeded: the parts of the input a safety limit left unanalyzed.

The limits themselves are `forensics.archive.layerscan.Limits` (README "Limits");
the readers count what they leave out (LimitHit), this module says so, once per
limit and place, naming the limit, its value, how much was left out and the
first entry concerned. High, although nothing is proven wrong: an attacker who
knows the limits would exceed one to hide what lies beyond it, so the default
gate (--fail-on high) must not pass an image it did not look at. A real image
from a real tool stays far below every limit.
"""

from __future__ import annotations

from forensics.findings import Code, finding
from forensics.models import Finding
from forensics.read.model import Archive, LimitHit, Resolved

RAISES: tuple[Code, ...] = ("archive.limit-exceeded",)

WHAT = {
    "max_path_length": "entry names longer than {value} characters",
    "max_path_depth": "entry names deeper than {value} components",
    "max_layer_entries": "more than {value} entries in one layer",
    "max_entries": "more than {value} entries in the archive",
    "input_bytes_per_entry": "more entries than the input's size allows (48,000, then one per {value} bytes)",
    "max_name_bytes": "more than {value} characters of entry names in the archive",
    "input_bytes_per_name_char": "more characters of entry names than the input's size allows "
    "(12 MiB, then one per {value} bytes)",
    "max_uncompressed": "a layer decompressing to more than {value} bytes",
    "max_ratio": "a layer decompressing more than {value} times its compressed size",
    "max_history": "more than {value} history entries",
    "analyzed_entries": "more layer entries to analyze than the input's size allows ({value}; a layer the "
    "manifests list again counts again)",
}
DECOMPRESSION = ("max_uncompressed", "max_ratio")


def limit_finding(hit: LimitHit, where: str, **fields) -> Finding:
    what = WHAT.get(hit.limit, hit.limit + " {value}").format(value=f"{hit.value:,}")
    if hit.limit in DECOMPRESSION:
        left = f"{hit.example}: the rest of the layer, its diff_id and its files beyond that point are not verified"
    elif hit.limit == "analyzed_entries":
        left = (
            f"{hit.count:,} entries of the layers listed from {hit.example!r} on were not analyzed (their "
            "digests are verified, their files are not compared with the history)"
        )
    elif hit.limit == "max_history":
        left = f"{hit.count:,} history entries after the first {hit.value:,} were not analyzed"
    else:
        left = (
            f"{hit.count:,} entries were read and hashed but not analyzed (the first: {hit.example!r}); "
            "no finding about them can be raised"
        )
    return finding(
        "archive.limit-exceeded",
        "high",
        f"{where}: {hit.limit}",
        f"{where} exceeds the limit {hit.limit} ({what}): {left}",
        evidence={"limit": hit.limit, "value": hit.value, "count": hit.count, "first": hit.example},
        **fields,
    )


def check_limits(inv: Archive, res: Resolved) -> list[Finding]:
    out = [limit_finding(hit, "the archive") for hit in inv.over_limit.values()]
    where: dict[str, tuple[int, int]] = {}
    for img in res.images:
        for lr in img.layers:
            e = lr.descriptor.entry
            if e is not None:
                where.setdefault(e.path, (img.index, lr.index))
    for e in inv.entries:
        if e.layer is None or not e.layer.over_limit:
            continue
        at = where.get(e.path)
        fields: dict[str, str | int] = {"entry": e.name}
        if at is not None:
            fields.update(image=at[0], layer=at[1])
        label = f"layer {at[1]} ({e.name})" if at is not None else e.name
        out += [limit_finding(hit, label, **fields) for hit in e.layer.over_limit.values()]
    return out
