"""Text from the image made safe to show: every invisible or controlling character visible.

A file name, label or tag is the attacker's text. Printed raw, `ESC ] 52 ;`
writes the clipboard and `ESC ] 0 ;` the window title, a CR overwrites the
line, an LF followed by "CLEAN: ..." starts a fake line of our own output,
and a right-to-left override shows `run<U+202E>gnp.sh` as `runhs.png`
(in HTML too: autoescape covers `<&"'`, not these). `visible` rewrites each
such character as the escape a Python or C programmer would write (`\\x1b`,
`\\r`, `\\n`, `\\u202e`); every text renderer passes what it prints through it,
and the HTML renderers apply `visible_html` (the same, but keeping LF and TAB,
which HTML shows as white space) to every value a template prints.

What is escaped: the Unicode categories Cc (C0, DEL, C1), Cf (format: bidi
embeddings, overrides and isolates, zero-width characters, BOM), Cs (lone
surrogates, which no terminal or UTF-8 file can hold) and Zl/Zp (line and
paragraph separators), as of Unicode 14 (tests/test_safe_output.py checks this table
against the running Python's unicodedata). A backslash is left as it is: the
JSON output keeps every value exactly, for when the difference matters.
"""

from __future__ import annotations

import re

# Unicode categories Cc, Cf, Cs, Zl, Zp (Unicode 14.0).
_RANGES = [
    (0x0, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
]


def _class(ranges) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_UNSAFE = re.compile(f"[{_class(_RANGES)}]")
# HTML: LF and TAB are white space there, not controls; CR is still shown.
_UNSAFE_HTML = re.compile(f"[{_class([(0x0, 0x8), (0xB, 0x1F)] + _RANGES[1:])}]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def visible(text: str) -> str:
    """`text` with every control, format, surrogate and separator character escaped."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def visible_html(text: str) -> str:
    """`visible`, keeping LF and TAB (HTML white space); for the templates' finalize hook."""
    return _UNSAFE_HTML.sub(_escape, text) if _UNSAFE_HTML.search(text) else text


def visible_lines(lines: list[str]) -> str:
    """Lines of a text renderer, each made visible, joined: a value can never start a line."""
    return "\n".join(visible(line) for line in lines)


def finalize_html(value):
    """Jinja `finalize`: every printed string made visible, trusted Markup left alone
    (the shipped CSS/JS, the SVG drawing, which escapes its own values with visible_html)."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return visible_html(value)
    return value


__all__ = ["visible", "visible_html", "visible_lines", "finalize_html"]
