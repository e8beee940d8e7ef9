"""A one-line progress bar on stderr, only when stderr is a terminal.

The line never exceeds the terminal's width (COLUMNS, else stderr's size, else 80): a
line that wrapped could not be rewritten by `\\r`, and each update would leave a stale
line behind. `close` erases it, so what follows starts on a clean line.
"""

from __future__ import annotations

import sys
import time

from forensics.render.safe import visible
from forensics.render.wrap import terminal_width


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class Progress:
    def __init__(self, label: str, enabled: bool | None = None, width: int | None = None) -> None:
        self.label = visible(label)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.monotonic()
        self._last = 0.0
        self._shown = 0  # columns of the line on screen
        self._width = width

    def _cols(self) -> int:
        if self._width is not None:
            return self._width
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        return terminal_width(fd) - 1  # the last column would wrap on some terminals

    def _write(self, text: str) -> None:
        text = _fit(text, self._cols())
        pad = " " * max(self._shown - len(text), 0)  # erase what the longer previous line left
        sys.stderr.write("\r" + text + pad)
        sys.stderr.flush()
        self._shown = len(text)

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and (total is None or done < total):
            return
        self._last = now
        rate = done / max(now - self.t0, 1e-6) / 1e6
        if total:
            frac = min(done / total, 1.0)
            tail = f" {frac * 100:5.1f}% {done / 1e6:,.0f}/{total / 1e6:,.0f} MB {rate:,.0f} MB/s"
            bar_w = max(0, min(30, self._cols() - len(self.label) - len(tail) - 3))
            bar = f" [{'#' * int(frac * bar_w):{bar_w}}]" if bar_w >= 5 else ""
            self._write(f"{self.label}{bar}{tail}")
        else:
            self._write(f"{self.label} {done / 1e6:,.0f} MB {rate:,.0f} MB/s")

    def stage(self, text: str) -> None:
        """Say what the long step after the byte stream is doing."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.t0
        self._write(f"{self.label}: read in {elapsed:.1f} s; {visible(text)}…")

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * self._shown + "\r")
            sys.stderr.flush()
            self._shown = 0
