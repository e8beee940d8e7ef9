"""history.effect-mismatch inside extracted trees: files that do not look extracted.

`tar -x -C DIR` explains anything below DIR, and what an attacker adds there in the
same step is "explained" too. But an extraction leaves evidence: GNU tar keeps the
archive's mtimes (unless -m) and, as root, its owners (unless -o/--no-same-owner).
A release tarball's files share the vendor's times and owner; a file dropped into
the tree by another command of the step carries the build's time, root's owner, or
is the one executable of a release that has none. Such a file breaks its siblings'
pattern and is reported, medium: weaker evidence than a broken claim (a release may
mix times), strong enough to look at.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from forensics.findings import Code, finding
from forensics.models import Finding

RAISES: tuple[Code, ...] = ("history.effect-mismatch",)

# A pattern needs this many files, and this share of them, before a break counts.
MIN_FILES = 5
MAJORITY = 0.8
# At most this many outliers (or this share) per tree: more is a mixed release, not a plant.
MAX_OUTLIERS = 3
MAX_SHARE = 0.1
BUILD_WINDOW = 6 * 3600.0  # seconds around the step's own time that count as "built here"
MAX_FINDINGS = 10


def _when(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return repr(ts)


def _under(path: str, root: str) -> bool:
    return root == "/" or path.startswith(root.rstrip("/") + "/")


def check_trees(ctx, *, image: int, step_time: float | None) -> list[Finding]:
    """Outliers in each tree the step's commands extract. `ctx` is the StepContext after
    explain_step; `step_time` the step's `created` (None: the layer's newest mtime)."""
    out: list[Finding] = []
    for eff in ctx.effects:
        for root, how in eff.extracted.items():
            files = [
                e
                for p, e in ctx.entries.items()
                if _under(p, root)
                and e.type in ("file", "hardlink", "symlink")
                and p not in ctx.claims_at
                and not eff.bytecode(p)
            ]
            if len(files) < MIN_FILES:
                continue
            out += _outliers(ctx, image, root, how, files, step_time)
            if len(out) >= MAX_FINDINGS:
                return out[:MAX_FINDINGS]
    return out


def _outliers(ctx, image, root, how, files, step_time) -> list[Finding]:
    n = len(files)
    limit = max(1, min(MAX_OUTLIERS, int(n * MAX_SHARE) or 1))
    flagged: dict[str, list[str]] = {}
    ref = step_time if step_time is not None else max(e.mtime for e in files)
    if how.get("mtimes"):
        built = [e for e in files if abs(e.mtime - ref) <= BUILD_WINDOW]
        vendor = [e for e in files if e.mtime < ref - BUILD_WINDOW]
        if built and len(vendor) >= MAJORITY * n and len(built) <= limit:
            common = Counter(int(e.mtime) for e in vendor).most_common(1)[0][0]
            for e in built:
                flagged.setdefault(e.path, []).append(
                    f"dated {_when(e.mtime)}, the build's time, where {len(vendor)} of {n} files date from the "
                    f"archive (most {_when(common)})"
                )
    if how.get("owners"):
        owners = Counter((e.uid, e.gid) for e in files)
        ((major, count),) = owners.most_common(1)
        odd = [e for e in files if (e.uid, e.gid) != major]
        if count >= MAJORITY * n and 0 < len(odd) <= limit:
            for e in odd:
                flagged.setdefault(e.path, []).append(
                    f"owned by {e.uid}:{e.gid} where {count} of {n} files keep the archive's {major[0]}:{major[1]}"
                )
    # "The only executable of the release" alone is what a one-binary release looks
    # like; it only adds weight to a file already out of pattern.
    regular = [e for e in files if e.type in ("file", "hardlink")]
    execs = [e for e in regular if e.mode & 0o111 or e.kind == "elf"]
    if len(execs) == 1 and execs[0].path in flagged and len(regular) >= MIN_FILES:
        flagged[execs[0].path].append(f"the only executable among {len(regular)} files of the release")
    out = []
    for path, why in sorted(flagged.items()):
        out.append(
            finding(
                "history.effect-mismatch",
                "medium",
                f"layer[{ctx.layer_index}]:{path}",
                f"history[{ctx.history_index}]: `{how.get('command', 'tar -x')}` extracts an archive into {root}, "
                f"and its files keep the archive's metadata; {path} does not look extracted: " + "; ".join(why),
                image=image,
                history=ctx.history_index,
                layer=ctx.layer_index,
                path=path,
                evidence={"tree": root, "reasons": why, "paths": [path]},
            )
        )
    return out
