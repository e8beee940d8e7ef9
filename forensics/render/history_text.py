"""`forensics history`: each step beside what its layer really changed."""

from __future__ import annotations

import shutil
import textwrap

from forensics.models import Image, PathChange, Report
from forensics.render.safe import visible, visible_lines

MARK = {"added": "+", "deleted": "-", "modified": "~"}


def _change_line(c: PathChange) -> str:
    what = f" [{','.join(c.what)}]" if c.change == "modified" and c.what else ""
    tail = "/" if c.type == "dir" else (f" -> {visible(c.link or '')}" if c.type == "symlink" else "")
    return f"{MARK[c.change]} {visible(c.path)}{tail}{what}"


def _copy_hash_lines(st, width: int) -> list[str]:
    head = f"source hash {st.recorded[:17]}…: "
    if st.status == "verified":
        text = head + f"verified as {st.matched_as}, {len(st.paths)} path(s)"
    elif st.status == "mismatch":
        text = head + "does NOT match the layer's files"
    else:
        text = head + f"cannot be recomputed: {st.reason}"
    return textwrap.wrap(text, max(width, 30), subsequent_indent="   ", max_lines=4)


def _columns(left: list[str], right: list[str], width: int, lw: int) -> list[str]:
    rows = max(len(left), len(right))
    out = []
    for i in range(rows):
        lcell = left[i] if i < len(left) else ""
        rcell = right[i] if i < len(right) else ""
        out.append(f"{lcell:<{lw}} │ {rcell}"[:width])
    return out


def render_history(report: Report, *, width: int | None = None, max_paths: int = 12, all_paths: bool = False) -> str:
    width = width or max(shutil.get_terminal_size((120, 40)).columns, 80)
    lw = max(34, width // 2 - 2)
    lines: list[str] = []
    flagged = {(f.image, f.history) for f in report.findings if f.history is not None}
    for img in report.images:
        lines += _image(img, report, flagged, width, lw, max_paths, all_paths)
    return visible_lines(lines).rstrip() + "\n"  # no value can start a line of its own


def _image(img: Image, report: Report, flagged, width: int, lw: int, max_paths: int, all_paths: bool) -> list[str]:
    lines = [
        f"Image {img.index}: {visible(', '.join(img.refs)) or '(untagged)'}  {img.platform or ''}  "
        f"config {img.config_digest or '-'}",
        "=" * min(width, 120),
    ]
    if not img.history:
        lines.append("(no history recorded: nothing to compare the layers with)")
    for h in img.history:
        a = h.analysis
        kind = a.instruction.kind if a else "?"
        mark = "!!" if (img.index, h.index) in flagged else "  "
        layer = f"layer {h.layer_index}" if h.layer_index is not None else "no layer"
        head = f"{mark} #{h.index} {kind} ({layer})"
        left = [head] + textwrap.wrap(
            visible(h.created_by or "(empty created_by)"),
            lw - 3,
            initial_indent="   ",
            subsequent_indent="   ",
            max_lines=8,
        )
        right: list[str] = []
        if a and h.layer_index is not None:
            c = a.counts
            right.append(
                f"{c.get('added', 0)} added, {c.get('modified', 0)} modified, {c.get('deleted', 0)} deleted"
                f"; {c.get('unexplained', 0)} unexplained"
            )
            if a.copy_hash is not None:  # our own words, a validated hex and repr()s: nothing raw
                right += _copy_hash_lines(a.copy_hash, width - lw - 3)
            limit = None if all_paths else max_paths
            for ch in a.unexplained[:limit]:
                right.append("!! " + _change_line(ch) + "  (not explained)")
            if limit is not None and len(a.unexplained) > limit:
                right.append(f"!! … {len(a.unexplained) - limit} more unexplained (see --all or the JSON)")
            shown = a.explained[: (None if all_paths else max(0, max_paths - len(a.unexplained)))]
            for ch in shown:
                right.append("   " + _change_line(ch) + f"  ({ch.explained_by})")
            rest = len(a.explained) - len(shown)
            if rest > 0:
                right.append(f"   … {rest} more explained")
        elif h.empty_layer:
            right.append("(metadata only: no layer)")
        for f in report.findings:
            if f.image == img.index and f.history == h.index:
                right.append(f"{f.severity.value.upper()} {f.code}")
        lines += _columns(left, right, width, lw)
        lines.append("─" * min(width, 120))
    return lines
