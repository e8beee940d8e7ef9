"""Layer-aligned comparison: pair the two images' steps and find the first that diverges.

A step is a history entry that owns a layer. Steps are paired by their trimmed
created_by lines (difflib over the sequences: equal lines pair, a replaced run
of the same length pairs position by position). For each pair, every path that
either layer touched is compared in the two merged filesystems as they stand
right after that step; what differs is what the step changed differently. A
step only one image has is compared against the other image as it stood after
the last paired step.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from forensics.compare.fs import Replay, compare_states, describe, path_diff
from forensics.compare.history import label, trimmed
from forensics.compare.model import PathDiff, StepComparison
from forensics.history.content import is_persistence_path

MAX_STEP_PATHS = 200  # per step in the result; the counts say how many there were


@dataclass
class Step:
    pos: int  # position of the layer in image.layers
    layer: int
    history: int | None
    created_by: str | None


@dataclass
class RawStep:
    """A step comparison before noise classification."""

    status: str  # paired, only-in-a, only-in-b
    a: Step | None
    b: Step | None
    diffs: list[PathDiff] = field(default_factory=list)


def steps_of(replay: Replay) -> list[Step]:
    img = replay.image
    owner = {h.layer_index: h for h in img.history if h.layer_index is not None}
    out = []
    for pos, layer in enumerate(img.layers):
        h = owner.get(layer.index)
        out.append(Step(pos, layer.index, h.index if h else None, h.created_by if h else None))
    return out


def _compare_paths(paths, ra: Replay, pa: int | None, rb: Replay, pb: int | None, times: bool) -> list[PathDiff]:
    out = []
    for p in sorted(paths):
        sa, sb = ra.at(p, pa), rb.at(p, pb)
        what = compare_states(sa, sb, times)
        if what is not None:
            out.append(path_diff(p, sa, sb, what, ra, rb))
    return out


def align(ra: Replay, rb: Replay, times: bool = False, history_pairs: dict[int, int] | None = None) -> list[RawStep]:
    """Pair the steps and compare each pair on the paths either layer touched.

    `history_pairs` maps A's history indexes to B's (the line-by-line history
    alignment, equal or changed lines). Steps whose history entries are paired
    there are paired; layers without a history entry pair by position. Without
    `history_pairs`, steps pair by their created_by lines (difflib).
    """
    sa, sb = steps_of(ra), steps_of(rb)
    pair_of: dict[int, int] = {}  # index in sa -> index in sb
    if history_pairs is not None:
        b_by_history = {s.history: k for k, s in enumerate(sb) if s.history is not None}
        for i, s in enumerate(sa):
            if s.history is not None and history_pairs.get(s.history) in b_by_history:
                pair_of[i] = b_by_history[history_pairs[s.history]]
        loose_a = [i for i, s in enumerate(sa) if s.history is None]
        loose_b = [k for k, s in enumerate(sb) if s.history is None]
        if len(loose_a) == len(sa) and len(loose_b) == len(sb):
            pair_of.update(zip(loose_a, loose_b))  # no history at all: by position
    else:
        ka = [trimmed(s.created_by) for s in sa]
        kb = [trimmed(s.created_by) for s in sb]
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_opcodes():
            n = (i2 - i1) if op == "equal" else min(i2 - i1, j2 - j1) if op == "replace" else 0
            pair_of.update({i1 + k: j1 + k for k in range(n)})
    # keep the pairs monotonic (a crossing pair would be meaningless)
    mono: dict[int, int] = {}
    last = -1
    for i in sorted(pair_of):
        if pair_of[i] > last:
            mono[i] = last = pair_of[i]
    paired_b = set(mono.values())

    order: list[tuple[str, int | None, int | None]] = []
    i = j = 0
    while i < len(sa) or j < len(sb):
        if i < len(sa) and i in mono and j < len(sb) and mono[i] == j:
            order.append(("paired", i, j))
            i, j = i + 1, j + 1
        elif i < len(sa) and i not in mono:
            order.append(("only-in-a", i, None))
            i += 1
        elif j < len(sb) and j not in paired_b:
            order.append(("only-in-b", None, j))
            j += 1
        else:  # pragma: no cover - monotonic pairs make this unreachable
            break

    # a step only one image has is compared with the other image at the next paired step
    next_a: list[int | None] = [None] * len(order)
    next_b: list[int | None] = [None] * len(order)
    na: int | None = sa[-1].pos if sa else None
    nb: int | None = sb[-1].pos if sb else None
    for k in range(len(order) - 1, -1, -1):
        kind, oi, oj = order[k]
        next_a[k], next_b[k] = na, nb
        if kind == "paired" and oi is not None and oj is not None:
            na, nb = sa[oi].pos, sb[oj].pos
    out: list[RawStep] = []
    for k, (kind, oi, oj) in enumerate(order):
        if kind == "paired" and oi is not None and oj is not None:
            a, b = sa[oi], sb[oj]
            paths = set(ra.touched[a.pos]) | set(rb.touched[b.pos])
            out.append(RawStep("paired", a, b, _compare_paths(paths, ra, a.pos, rb, b.pos, times)))
        elif kind == "only-in-a" and oi is not None:
            a = sa[oi]
            out.append(RawStep(kind, a, None, _compare_paths(ra.touched[a.pos], ra, a.pos, rb, next_b[k], times)))
        elif oj is not None:
            b = sb[oj]
            out.append(RawStep(kind, None, b, _compare_paths(rb.touched[b.pos], ra, next_a[k], rb, b.pos, times)))
    return out


def to_model(raw: RawStep, real: list[PathDiff], noise: list[PathDiff]) -> StepComparison:
    a, b = raw.a, raw.b
    if raw.status == "paired":
        status = "differs" if real else "noise" if noise else "equal"
    else:
        status = raw.status
    cb_a = a.created_by if a else None
    cb_b = b.created_by if b else None
    history_equal = a is not None and b is not None and trimmed(cb_a) == trimmed(cb_b)
    return StepComparison(
        status=status,
        a_history=a.history if a else None,
        b_history=b.history if b else None,
        a_layer=a.layer if a else None,
        b_layer=b.layer if b else None,
        created_by=cb_a if a else cb_b,
        b_created_by=None if history_equal or a is None else cb_b,
        label=label(cb_a if a else cb_b),
        history_equal=history_equal,
        paths=rank(real)[:MAX_STEP_PATHS],
        noise=noise[:MAX_STEP_PATHS],
        paths_total=len(real),
        noise_total=len(noise),
    )


# ------------------------------------------------------------------ ranking and wording


def _executable(st) -> bool:
    return st is not None and st.type == "file" and (st.kind in ("elf", "script") or bool(st.mode & 0o111))


def importance(d: PathDiff) -> int:
    """Lower is more telling: how much this difference says about a trojaned image."""
    a, b = d.a, d.b
    if (
        d.change == "changed"
        and (_executable(a) or _executable(b))
        and ("type" in d.what or (a is not None and b is not None and a.kind != b.kind and "content" in d.what))
    ):
        return 0
    if d.change == "changed" and "content" in d.what and (_executable(a) or _executable(b)):
        return 1
    if is_persistence_path(d.path) and (d.change != "changed" or "content" in d.what or "type" in d.what):
        return 2
    if d.change != "changed" and (_executable(a) or _executable(b)):
        return 3
    if any(st is not None and st.type == "file" and st.mode & 0o6000 for st in (a, b)):
        return 4
    if d.change == "changed" and ("content" in d.what or "type" in d.what or "link" in d.what):
        return 5
    if any(st is not None and st.type == "file" for st in (a, b)):
        return 6
    if d.change == "changed" and ("mode" in d.what or "owner" in d.what):
        return 7
    return 8


def rank(diffs: list[PathDiff]) -> list[PathDiff]:
    return sorted(diffs, key=lambda d: (importance(d), d.path))


def describe_diff(d: PathDiff) -> str:
    """'`/usr/bin/x` is a 62-byte shell script in B, a 70.0 KiB ELF in A'."""
    if d.change == "added":
        return f"`{d.path}` is only in B ({describe(d.b)})"
    if d.change == "removed":
        return f"`{d.path}` is only in A ({describe(d.a)})"
    a, b = d.a, d.b
    da, db = describe(a), describe(b)
    if da != db or a is None or b is None:
        return f"`{d.path}` is {db} in B, {da} in A"
    parts = []
    for w in d.what:
        if w == "content":
            parts.append("content")
        elif w == "mode":
            parts.append(f"mode {a.mode:04o} in A, {b.mode:04o} in B")
        elif w == "owner":
            parts.append(f"owner {a.uid}:{a.gid} in A, {b.uid}:{b.gid} in B")
        elif w == "link":
            parts.append(f"link {a.link} in A, {b.link} in B")
        elif w == "mtime":
            parts.append("mtime")
        elif w == "size":
            parts.append(f"size {a.size} in A, {b.size} in B")
    return f"`{d.path}` ({db}) differs: " + "; ".join(p for p in parts if p)


def summary(diffs: list[PathDiff]) -> str:
    if not diffs:
        return ""
    ranked = rank(diffs)
    text = describe_diff(ranked[0])
    more = len(ranked) - 1
    if more:
        text += f" (and {more} more path{'s' if more != 1 else ''})"
    return text


__all__ = ["RawStep", "Step", "align", "describe_diff", "importance", "rank", "steps_of", "summary", "to_model"]
