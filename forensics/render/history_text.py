"""`forensics history`: each step beside what its layer really changed."""

from __future__ import annotations

import textwrap

from forensics.models import Image, PathChange, Report
from forensics.render.safe import visible, visible_lines
from forensics.render.wrap import MIN_WIDTH, terminal_width, wrap_lines

MARK = {"added": "+", "deleted": "-", "modified": "~"}


def _change_line(c: PathChange) -> str:
    what = f" [{','.join(c.what)}]" if c.change == "modified" and c.what else ""
    tail = "/" if c.type == "dir" else (f" -> {visible(c.link or '')}" if c.type == "symlink" else "")
    return f"{MARK[c.change]} {visible(c.path)}{tail}{what}"


def _copy_hash_lines(st) -> list[str]:
    head = f"source hash {st.recorded}: "
    if st.status == "verified":
        return [head + f"verified as {st.matched_as}, {len(st.paths)} path(s)"]
    if st.status == "mismatch":
        return [head + "does NOT match the layer's files"]
    return [head + f"cannot be recomputed: {st.reason}"]


CUT = " [+]"  # marks a cell cut short: the rest is in --all, a wider terminal or the JSON


def _cell(text: str, width: int, max_lines: int | None = None) -> list[str]:
    """One entry of a column, wrapped at spaces to `width`; a word longer than the column
    (a digest, a path) is split, each piece but the last ending in the continuation mark."""
    lines = textwrap.wrap(text, width, subsequent_indent="   ", break_long_words=False, break_on_hyphens=False)
    out: list[str] = []
    for line in lines or [""]:
        while len(line) > width:
            out.append(line[: width - 1] + "\u21a9")  # ↩: continues on the next line
            line = "   " + line[width - 1 :]
        out.append(line)
    if max_lines is not None and len(out) > max_lines:
        out = out[:max_lines]
        out[-1] = out[-1][: width - len(CUT)] + CUT
    return out


def _columns(left: list[str], right: list[str], width: int, lw: int) -> list[str]:
    if lw == 0:  # too narrow for two columns: the step, then what its layer changed under it
        return left + ["    " + r for r in right]
    rows = max(len(left), len(right))
    out = []
    for i in range(rows):
        lcell = left[i] if i < len(left) else ""
        rcell = right[i] if i < len(right) else ""
        out.append(f"{lcell:<{lw}} │ {rcell}".rstrip())
    return out


def render_history(report: Report, *, width: int | None = None, max_paths: int = 12, all_paths: bool = False) -> str:
    """The verdict, then per image each step beside what its layer changed, in `width`
    columns (default: COLUMNS, the terminal's, else 80). Nothing is cut silently: a long
    value wraps inside its column, and a cell cut short ends in [+]."""
    from forensics.render.text import pin_lines, verdict_line

    width = max(width or terminal_width(), MIN_WIDTH)
    # Two columns from 72: the command on the left (a third), what changed on the right.
    lw = 0 if width < 72 else max(26, min(width // 3, 60))
    lines: list[str] = [verdict_line(report)]
    lines.append(f"input {visible(report.input.path)}  {report.input.sha256 or '(directory)'}")
    lines += pin_lines(report)
    if report.findings:
        lines.append(
            f"{len(report.findings)} finding(s): `forensics scan` lists them with their ids; steps with one are marked !!"
        )
    lines.append("")
    lines = wrap_lines(visible_lines(lines).split("\n"), width)
    flagged = {(f.image, f.history) for f in report.findings if f.history is not None}
    for img in report.images:
        lines += _image(img, report, flagged, width, lw, max_paths, all_paths)
    return visible_lines(lines).rstrip() + "\n"  # no value can start a line of its own


def _image(img: Image, report: Report, flagged, width: int, lw: int, max_paths: int, all_paths: bool) -> list[str]:
    rw = width - lw - 3 if lw else width - 4
    lines = wrap_lines(
        [
            f"Image {img.index}: {visible(', '.join(img.refs)) or '(untagged)'}  {img.platform or ''}  "
            f"config {img.config_digest or '-'}"
        ],
        width,
    )
    lines.append("=" * width)
    if not img.history:
        lines.append("(no history recorded: nothing to compare the layers with)")
    layers = {layer.index: layer for layer in img.layers}
    for h in img.history:
        a = h.analysis
        kind = a.instruction.kind if a else "?"
        mark = "!!" if (img.index, h.index) in flagged else "  "
        layer = f"layer {h.layer_index}" if h.layer_index is not None else "no layer"
        head = f"{mark} #{h.index} {kind} ({layer})"
        if h.layer_index in layers:  # full width: a digest is never split
            head += f"  diff_id {layers[h.layer_index].diff_id or '-'}"
        lines += wrap_lines([head], width)
        left = _cell(
            "   " + visible(h.created_by or "(empty created_by)"), lw or width, max_lines=None if all_paths else 8
        )
        right: list[str] = []
        if a and h.layer_index is not None:
            c = a.counts
            right += _cell(
                f"{c.get('added', 0)} added, {c.get('modified', 0)} modified, {c.get('deleted', 0)} deleted"
                f"; {c.get('unexplained', 0)} unexplained",
                rw,
            )
            if a.copy_hash is not None:  # our own words, a validated hex and repr()s: nothing raw
                right += _cell(_copy_hash_lines(a.copy_hash)[0], rw)
            limit = None if all_paths else max_paths
            for ch in a.unexplained[:limit]:
                right += _cell("!! " + _change_line(ch) + "  (not explained)", rw)
            if limit is not None and len(a.unexplained) > limit:
                right += _cell(f"!! … {len(a.unexplained) - limit} more unexplained (see --all or the JSON)", rw)
            shown = a.explained[: (None if all_paths else max(0, max_paths - len(a.unexplained)))]
            for ch in shown:
                right += _cell(
                    "   " + _change_line(ch) + f"  ({ch.explained_by})", rw, max_lines=None if all_paths else 3
                )
            rest = len(a.explained) - len(shown)
            if rest > 0:
                right += _cell(f"   … {rest} more explained (see --all)", rw)
        elif h.empty_layer:
            right.append("(metadata only: no layer)")
        for f in report.findings:
            if f.image == img.index and f.history == h.index:
                right += _cell(f"{f.severity.value.upper()} {f.code} {f.id or ''}".rstrip(), rw)
        lines += _columns(left, right, width, lw)
        lines.append("─" * width)
    return lines
