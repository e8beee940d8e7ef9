"""Teaching on a terminal: one code's entry, or the tour of an archive, wrapped to the width.

Prose is wrapped at word boundaries; a command is never wrapped (it must paste whole), and a
digest is never shortened. Every line goes through `visible`: the tour prints the image's own
text (tags, file names, history lines)."""

from __future__ import annotations

import shutil
import textwrap

from forensics.explain.teaching import LAYOUT_NOTE
from forensics.explain.tour import Tour
from forensics.render.safe import visible, visible_lines


def width() -> int:
    """COLUMNS, else the terminal's width, else 80; never below 40."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _wrap(text: str, cols: int, indent: str = "", first: str | None = None) -> list[str]:
    first = indent if first is None else first
    return textwrap.wrap(
        visible(text),
        cols,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def render_entry(e: dict, cols: int | None = None) -> str:
    cols = cols or width()
    lines = [f"{e['code']}  ({e['section']})"]
    lines += _wrap(e["meaning"], cols, "  ")
    lines.append("")
    lines += _wrap(f"Severity: {e['severity']}.", cols, "  ")
    raised = ", ".join(e["raised_by"]) or "no module of this version yet"
    lines += _wrap(f"Raised by: {raised}.", cols, "  ")
    for title, key in (("Why it matters", "why"), ("How an attacker produces it", "attack")):
        lines += ["", title]
        lines += _wrap(e[key], cols, "  ")
    lines += ["", "Confirm it by hand"]
    for step in e["confirm"]:
        lines += _wrap(step["say"] + ":", cols, "    ", "  - ")
        lines.append(f"      $ {step['run']}")
    lines += _wrap(LAYOUT_NOTE, cols, "  ")
    lines += ["", "Known false-positive causes"]
    for fp in e["false_positives"]:
        lines += _wrap(fp, cols, "    ", "  - ")
    return visible_lines(lines) + "\n"


def _mark(ok: bool | None, stated_by: str) -> str:
    if ok is None:
        return ""
    return f"matches {stated_by}" if ok else f"DIFFERS from {stated_by}"


def render_tour(tour: Tour, cols: int | None = None) -> str:
    cols = cols or width()
    lines = [f"Tour of {tour.source}: {tour.format}, verdict {tour.verdict.upper()}"]
    lines += _wrap(
        "Each step below names a document, says what it holds, and recomputes its digests: run the "
        "$ line yourself (from this directory) and compare the first field it prints with the digest under it.",
        cols,
    )
    said: set[str] = set()
    for n, stop in enumerate(tour.stops, 1):
        lines += ["", f"{n}. {stop.title}"]
        if stop.note and stop.note not in said:  # each lesson once, at its first stop
            said.add(stop.note)
            lines += _wrap(stop.note, cols, "   ")
        for fact in stop.says:
            lines += _wrap(fact, cols, "       ", "     - ")
        for c in stop.checks:
            lines += _wrap(c.say + ":", cols, "     ", "   ")
            lines.append(f"     $ {c.command}")
            mark = _mark(c.matches, c.stated_by)
            lines.append(f"       {c.digest}" + (f"  {mark}" if mark else ""))
            if c.matches is False:
                lines.append(f"       {c.stated}  ({c.stated_by})")
    lines.append("")
    if tour.findings:
        lines.append("Findings")
        for sev, code, count in tour.findings:
            lines.append(f"  {sev.upper():8} {code} ({count})")
        lines += _wrap(
            "`forensics explain CODE` says what a code means and how to confirm it by hand; "
            "`forensics scan` lists each finding with its evidence.",
            cols,
            "  ",
        )
    else:
        lines.append("No findings.")
    return visible_lines(lines) + "\n"
