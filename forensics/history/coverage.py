"""Coverage: for each regular file of the final filesystem, what vouches for its content.

A clean verdict says that nothing contradicts the image's own records; it does not say
that every byte was checked. Content fetched by a RUN step, copied from a build
context, or extracted from an archive cannot be checked from the image alone. This
module counts, in files and bytes, what was verified and how strongly, what is only
explained, and what is left, and says how to close the rest.
"""

from __future__ import annotations

from forensics.models import Coverage, FileBytes, CoverageGap, PathChange

# Record statuses (forensics.history.packages): a digest recorded by an earlier layer
# than the file's, by the same step, or contradicted.
EARLIER, SAME_STEP, MISMATCH = "earlier", "same-step", "mismatch"
MAX_GAPS = 8


def _add(c: FileBytes, size: int) -> None:
    c.files += 1
    c.bytes += size


def image_coverage(overlay, change_at: dict[tuple[int, str], PathChange], owner: dict[int, int],
                   commands: dict[int, str], *, records: dict[str, str] | None = None,
                   copy_verified: set[tuple[int, str]] | None = None, absent_platforms: int = 0) -> Coverage:
    """`change_at[(layer, path)]` is the change that layer made at path (explained or
    not), `owner[layer]` the history entry owning a layer, `commands[h]` its line, and
    `records[path]` the package-record status of a file."""
    records = records or {}
    copy_verified = copy_verified or set()
    cov = Coverage(absent_platforms=absent_platforms)
    gaps: dict[int | None, CoverageGap] = {}
    for path, node in overlay.nodes.items():
        entry = node.entry
        if entry.type not in ("file", "hardlink"):
            continue
        size = entry.size if entry.type == "file" else 0
        _add_total(cov, size)
        status = records.get(path)
        ch = change_at.get((node.layer, path))
        if status == MISMATCH:
            _add(cov.contradicted, size)
        elif status == EARLIER:
            _add(cov.verified_earlier_record, size)
        elif status == SAME_STEP:
            _add(cov.verified_same_step, size)
        elif (node.layer, path) in copy_verified:
            _add(cov.verified_copy_hash, size)
        elif ch is None or ch.explained_by is None:
            _add(cov.unexplained, size)
        elif ch.assurance == "verified":
            _add(cov.verified_claim, size)
        else:
            _add(cov.unverifiable, size)
            h = owner.get(node.layer)
            gap = gaps.get(h)
            if gap is None:
                gap = gaps[h] = CoverageGap(history=h, command=_short(commands.get(h)) if h is not None else None,
                                            why=_why(ch))
            gap.files += 1
            gap.bytes += size
    cov.gaps = sorted(gaps.values(), key=lambda g: (-g.bytes, -g.files))[:MAX_GAPS]
    cov.advice = _advice(cov)
    return cov


def _add_total(cov: Coverage, size: int) -> None:
    cov.files += 1
    cov.bytes += size


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
        out.append(f"The content that {where}{cmd} put in the image ({g.files} files, {_size(g.bytes)}) cannot be "
                   f"checked from this image alone: compare it with a rebuild, `forensics diff`.")
    if cov.verified_same_step.files:
        out.append(f"{cov.verified_same_step.files} files match only records written by the same step that wrote "
                   f"them (dpkg md5sums, pip RECORD): whoever controlled that step could have rewritten both, so "
                   f"this is consistency, not proof; a rebuild from the same packages (`forensics diff`) closes it.")
    if cov.absent_platforms:
        out.append(f"{cov.absent_platforms} platform manifest(s) named by the index are not in this export and "
                   f"were not verified: export them (all platforms) to check them.")
    return out


def set_absent_platforms(cov: Coverage, n: int) -> None:
    cov.absent_platforms = n
    cov.advice = _advice(cov)
