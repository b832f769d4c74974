"""Inline SVG for the status page: the 90-day availability bar and the latency sparkline.

Built as strings (no template loop per cell): a page with 200 targets draws 18,000 cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape


def availability_class(value: float | None) -> str:
    if value is None:
        return "nodata"
    if value >= 0.999:
        return "good"
    if value >= 0.99:
        return "fair"
    if value >= 0.95:
        return "poor"
    return "bad"


def bar(days: Sequence[tuple[int, float | None]], label: str) -> str:
    """One cell per day, oldest first; ``(day_start, availability or None)``."""
    width, gap = 3, 1
    cells = []
    for i, (start, value) in enumerate(days):
        day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
        text = "no data" if value is None else f"{value * 100:.2f}%"
        cells.append(
            f'<rect x="{i * (width + gap)}" width="{width}" height="20" '
            f'class="{availability_class(value)}"><title>{day}: {text}</title></rect>'
        )
    total = len(days) * (width + gap)
    return (
        f'<svg class="bar" role="img" aria-label="{escape(label)}" width="{total}" height="20"'
        f' viewBox="0 0 {total} 20">{"".join(cells)}</svg>'
    )


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
