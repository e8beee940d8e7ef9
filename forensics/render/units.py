"""Human-readable sizes, one definition for the terminal, HTML, SVG and diff wording."""

from __future__ import annotations


def human_size(n: int) -> str:
    """1023 B, 1.0 KiB, 48.0 KiB, 1.2 GiB (powers of 1024, one decimal)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
