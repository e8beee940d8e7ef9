"""Coverage: for each regular file of the final filesystem, what vouches for its content.

A clean verdict says that nothing contradicts the image's own records; it does not say
that every byte was checked. Content fetched by a RUN step, copied from a build
context, or extracted from an archive cannot be checked from the image alone. This
module counts, in files and bytes, what was verified and how strongly, what is only
explained, and what is left, and says how to close the rest.
"""

from __future__ import annotations

from collections.abc import Container

from forensics.models import Coverage, CoverageGap, FileBytes, PathChange

# Record statuses (forensics.history.packages): a digest recorded by an earlier layer
# than the file's, by the same step, or contradicted.
EARLIER, SAME_STEP, MISMATCH = "earlier", "same-step", "mismatch"
MAX_GAPS = 8


def image_coverage(
    overlay,
    change_at: dict[tuple[int, str], PathChange],
    owner: dict[int, int],
    commands: dict[int, str],
    *,
    records: dict[str, str] | None = None,
    copy_verified: set[tuple[int, str]] | None = None,
    absent_platforms: int = 0,
    known_good: Container[str] | None = None,
) -> Coverage:
    """`change_at[(layer, path)]` is the change that layer made at path (explained or
    not), `owner[layer]` the history entry owning a layer, `commands[h]` its line, and
    `records[path]` the package-record status of a file. A file whose sha256 is in
    `known_good` (the user's --known-good sets) counts as verified by that set when nothing
    stronger vouches for it (unverifiable, or a same-step record); a contradicted or
    unexplained file stays where it is: its finding stands whatever the set says."""
    records = records or {}
    copy_verified = copy_verified or set()
    # Plain [files, bytes] counters on the loop (one pass over every file of the image);
    # the models are built once at the end.
    slots = {
        k: [0, 0]
        for k in (
            "total",
            "verified_earlier_record",
            "verified_same_step",
            "verified_claim",
            "verified_copy_hash",
            "verified_known_good",
            "unverifiable",
            "contradicted",
            "unexplained",
        )
    }
    gaps: dict[int | None, list] = {}  # history -> [files, bytes, why]
    status_slot = {MISMATCH: "contradicted", EARLIER: "verified_earlier_record", SAME_STEP: "verified_same_step"}
    total = slots["total"]
    for path, node in overlay.nodes.items():
        entry = node.entry
        etype = entry.type
        if etype != "file" and etype != "hardlink":
            continue
        size = entry.size if etype == "file" else 0
        key = (node.layer, path)
        ch = change_at.get(key)
        status = records.get(path)
        slot = status_slot.get(status) if status is not None else None
        if slot is None:
            if key in copy_verified:
                slot = "verified_copy_hash"
            elif ch is None or ch.explained_by is None:
                slot = "unexplained"
            elif ch.assurance == "verified":
                slot = "verified_claim"
            elif known_good is not None and node.sha256 in known_good:
                slot = "verified_known_good"
            else:
                slot = "unverifiable"
                gap = gaps.setdefault(owner.get(node.layer), [0, 0, _why(ch)])
                gap[0] += 1
                gap[1] += size
        elif slot == "verified_same_step" and known_good is not None and node.sha256 in known_good:
            slot = "verified_known_good"
        c = slots[slot]
        c[0] += 1
        c[1] += size
        total[0] += 1
        total[1] += size
    cov = Coverage(
        absent_platforms=absent_platforms,
        files=slots["total"][0],
        bytes=slots["total"][1],
        **{k: FileBytes(files=v[0], bytes=v[1]) for k, v in slots.items() if k != "total"},
    )
    ordered = sorted(gaps.items(), key=lambda kv: (-kv[1][1], -kv[1][0]))[:MAX_GAPS]
    cov.gaps = [
        CoverageGap(history=h, command=_short(commands.get(h)) if h is not None else None, files=n, bytes=b, why=why)
        for h, (n, b, why) in ordered
    ]
    cov.advice = _advice(cov)
    return cov


def _why(ch: PathChange) -> str:
    if ch.assurance == "package":
        return "package files whose records hold no digest, or were not checked"
    if ch.assurance == "tree":
        return "content from outside the image (an archive, a build context, a program run)"
    return "content from outside the image (a download, a copied file)"


def _short(text: str | None, n: int = 100) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _size(n: int) -> str:
    from forensics.render.units import human_size

    return human_size(n)


def _advice(cov: Coverage) -> list[str]:
    out: list[str] = []
    for g in cov.gaps[:3]:
        where = f"history[{g.history}]" if g.history is not None else "a layer no history step owns"
        cmd = f" (`{g.command}`)" if g.command else ""
        out.append(
            f"The content that {where}{cmd} put in the image ({g.files} files, {_size(g.bytes)}) cannot be "
            f"checked from this image alone: compare it with a rebuild, `forensics diff`."
        )
    if cov.verified_same_step.files:
        out.append(
            f"{cov.verified_same_step.files} files match only records written by the same step that wrote "
            f"them (dpkg md5sums, pip RECORD): whoever controlled that step could have rewritten both, so "
            f"this is consistency, not proof; a rebuild from the same packages (`forensics diff`) closes it."
        )
    if cov.absent_platforms:
        out.append(
            f"{cov.absent_platforms} platform manifest(s) named by the index are not in this export and "
            f"were not verified: export them (all platforms) to check them."
        )
    return out


def set_absent_platforms(cov: Coverage, n: int) -> None:
    cov.absent_platforms = n
    cov.advice = _advice(cov)
