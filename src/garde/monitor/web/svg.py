"""Inline SVG for the status page: the 90-day availability bar and the latency sparkline.

Built as strings (no template loop per cell): a page with 200 targets draws 18,000 cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape


def availability_class(value: float | None) -> str:
    # One letter: a page with 200 targets draws 18,000 cells, bytes add up.
    if value is None:
        return "n"
    if value >= 0.999:
        return "g"
    if value >= 0.99:
        return "f"
    if value >= 0.95:
        return "p"
    return "b"


def day_labels(starts: Sequence[int]) -> list[str]:
    """``YYYY-MM-DD`` of each day start, computed once per page for every bar."""
    return [datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d") for start in starts]


CELL_WIDTH, CELL_GAP = 3, 1


def bar_cells(values: Sequence[float | None], days: Sequence[str], first: int = 0) -> str:
    """The cells of a bar, the first one at position ``first`` (so parts can be cached)."""
    cells = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        text = "no data" if value is None else f"{value * 100:.2f}%"
        x = (first + i) * (CELL_WIDTH + CELL_GAP)
        cells.append(
            f'<rect x="{x}" class="{availability_class(value)}"><title>{day} {text}</title></rect>'
        )
    return "".join(cells)


def bar_wrap(cells: str, count: int, label: str) -> str:
    total = count * (CELL_WIDTH + CELL_GAP)
    return (
        f'<svg class="bar" role="img" aria-label="{escape(label)}" width="{total}" height="20"'
        f' viewBox="0 0 {total} 20">{cells}</svg>'
    )


def bar(values: Sequence[float | None], days: Sequence[str], label: str) -> str:
    """One cell per day, oldest first: the day's availability, or None (no data)."""
    return bar_wrap(bar_cells(values, days), len(values), label)


def sparkline(
    values: Sequence[float | None], label: str, width: int = 120, height: int = 24
) -> str:
    """A polyline of latencies (seconds); gaps where nothing was measured."""
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return (
            f'<svg class="spark" role="img" aria-label="{escape(label)}" width="{width}"'
            f' height="{height}"></svg>'
        )
    top = max(known) or 1.0
    step = width / max(1, len(values) - 1)
    segments: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if segments[-1]:
                segments.append([])
            continue
        y = height - 2 - (v / top) * (height - 4)
        segments[-1].append(f"{i * step:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline points="{" ".join(points)}"/>' for points in segments if len(points) > 1
    )
    peak = f"max {top * 1000:.0f} ms"
    return (
        f'<svg class="spark" role="img" aria-label="{escape(label)}: {peak}" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}"><title>{peak}</title>{lines}</svg>'
    )
