"""History comparison, line by line, the way container-diff's history analyzer sees it.

container-diff (`differs/history_diff.go`) takes `strings.TrimSpace(created_by)` of
every history entry and reports the two set differences. That is shown here for
reference, with a line-by-line alignment (difflib) beside it. It proves nothing:
history is editable metadata. The content comparison is what counts.
"""

from __future__ import annotations

import difflib
import re

from forensics.compare.model import HistoryComparison, HistoryLine
from forensics.models import Image

MAX_LABEL = 72


def trimmed(created_by: str | None) -> str:
    return (created_by or "").strip()


def label(created_by: str | None, limit: int = MAX_LABEL) -> str:
    """A history line as the Dockerfile instruction it stands for: `RUN ...`, `COPY ...`."""
    s = trimmed(created_by)
    if s.endswith("# buildkit"):
        s = s[: -len("# buildkit")].rstrip()
    m = re.match(r"^(?:\|\d+ (?:\S+=\S* )*)?/bin/(?:ba)?sh -c (.*)$", s, re.S)
    if m:
        rest = m.group(1).strip()
        if rest.startswith("#(nop)"):
            s = rest[len("#(nop)") :].strip()
        else:
            s = "RUN " + rest
    s = " ".join(s.split())
    if not s:
        return "(no created_by)"
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"


def compare_history(a: Image, b: Image, name_a: str = "A", name_b: str = "B") -> HistoryComparison:
    la = [trimmed(h.created_by) for h in a.history]
    lb = [trimmed(h.created_by) for h in b.history]
    lines: list[HistoryLine] = []
    created_differs = 0
    sm = difflib.SequenceMatcher(None, la, lb, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                cd = a.history[i].created != b.history[j].created
                created_differs += cd
                lines.append(HistoryLine(status="equal", a_index=i, b_index=j, a=la[i], b=lb[j], created_differs=cd))
            continue
        n = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(n):
            lines.append(HistoryLine(status="changed", a_index=i1 + k, b_index=j1 + k, a=la[i1 + k], b=lb[j1 + k]))
        for i in range(i1 + n, i2):
            lines.append(HistoryLine(status="removed", a_index=i, a=la[i]))
        for j in range(j1 + n, j2):
            lines.append(HistoryLine(status="added", b_index=j, b=lb[j]))
    set_b, set_a = set(lb), set(la)
    only_a = [x for x in dict.fromkeys(la) if x not in set_b]
    only_b = [x for x in dict.fromkeys(lb) if x not in set_a]
    return HistoryComparison(
        equal=la == lb,
        lines=lines,
        only_in_a=only_a,
        only_in_b=only_b,
        created_differs=created_differs,
        container_diff=container_diff_text(only_a, only_b, name_a, name_b),
    )


def container_diff_text(only_a: list[str], only_b: list[str], name_a: str, name_b: str) -> str:
    """The text `container-diff diff --type=history` prints for these set differences."""

    def block(name: str, items: list[str]) -> str:
        head = f"Docker history lines found only in {name}:"
        if not items:
            return head + " None"
        return head + "\n" + "".join(f"-{x}\n" for x in items).rstrip("\n")

    return f"-----History-----\n\n{block(name_a, only_a)}\n\n{block(name_b, only_b)}\n"
