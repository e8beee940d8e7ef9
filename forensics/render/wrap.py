"""Terminal text for the real width: COLUMNS, else the terminal's, else 80; wrapped at spaces.

A digest or a path is never broken: a word longer than the line gets a line of its own,
so it can still be selected and pasted whole.
"""

from __future__ import annotations

import os
import shutil
import textwrap

MIN_WIDTH = 40


def terminal_width(stream_fd: int | None = None) -> int:
    """COLUMNS if set, else the size of the terminal on `stream_fd` (stdout by default), else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(int(env), MIN_WIDTH)
    if stream_fd is not None:
        try:
            return max(os.get_terminal_size(stream_fd).columns, MIN_WIDTH)
        except OSError:
            return 80
    return max(shutil.get_terminal_size((80, 24)).columns, MIN_WIDTH)


def wrap_line(line: str, width: int, extra_indent: int = 2) -> list[str]:
    """One line as several of at most `width` columns where it has spaces; the continuation
    lines are indented under the first one's text, `extra_indent` further."""
    if len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    indent = " " * min(lead + extra_indent, width // 2)
    return textwrap.wrap(
        line,
        width,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [line]


def wrap_lines(lines: list[str], width: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += wrap_line(line, width)
    return out
