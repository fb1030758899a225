"""Sizes as people read them, one way everywhere: ``512 B``, ``22.3 kB``, ``0.8 MB``,
``1.2 GB`` (decimal units, one decimal)."""

from __future__ import annotations


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"
