"""A one-line progress bar on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time

from forensics.render.safe import visible


class Progress:
    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = visible(label)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

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
            bar = "#" * int(frac * 30)
            text = (
                f"\r{self.label} [{bar:30}] {frac * 100:5.1f}% {done / 1e6:,.0f}/{total / 1e6:,.0f} MB {rate:,.0f} MB/s"
            )
        else:
            text = f"\r{self.label} {done / 1e6:,.0f} MB {rate:,.0f} MB/s"
        sys.stderr.write(text)
        sys.stderr.flush()
        self._shown = True

    def stage(self, text: str) -> None:
        """Say what the long step after the byte stream is doing."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.t0
        sys.stderr.write(f"\r{self.label}: read in {elapsed:.1f} s; {visible(text)}…".ljust(90))
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 90 + "\r")
            sys.stderr.flush()
