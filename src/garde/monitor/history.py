"""Aggregation of probe results into minute, hour and day rows, in memory until the minute
closes, then added (summed) into the store at all three resolutions in one batch.

Because rows merge by addition, nothing is read back: a result that arrives late (a remote
location pushing after the minute closed) is just another small addition.

Each row also sums the seconds its samples cover (``observed``), so that availability is
given over the time the monitor watched, and a figure says how much of its period that was.
"""

from __future__ import annotations

from collections.abc import Iterable

from garde.monitor.probes import ProbeResult
from garde.monitor.store.base import Aggregate, Resolution

SERVICE_PREFIX = "service:"
"""History rows of a service's own state (outage or not, for SLA), next to its targets'."""

GRACE = 5.0
"""Seconds after a minute ends before it is flushed, so results still in flight land in it."""

SERVICE_SAMPLE_INTERVAL = 10.0
"""Seconds between two samples of a service's own state (the monitor's default)."""

REACH = 2.0
"""A sample covers the time since its series' previous sample, up to this many intervals:
ticks run a little late, but a longer silence is a gap nobody watched."""


class Aggregator:
    def __init__(self) -> None:
        self._open: dict[tuple[str, int], Aggregate] = {}
        self._oldest = float("inf")
        """Start of the oldest open minute: most ticks have nothing to flush and stop here."""
        self._covered: dict[str, float] = {}
        """Per series, the newest instant a sample has covered."""

    def add(self, result: ProbeResult, in_maintenance: bool = False, interval: float = 0.0) -> None:
        """Count ``result`` in its minute. ``interval``: how often its series is sampled (0:
        unknown, the sample then covers no time). A sample covers the time since the newest
        one of its series, at most ``REACH`` intervals; the first of a series one interval.
        Several locations probing one target thus cover the time once, not once each, and a
        result older than the newest (a late push) covers nothing more."""
        newest = self._covered.get(result.target)
        if newest is None:
            seconds = interval
            self._covered[result.target] = result.at
        else:
            seconds = min(max(0.0, result.at - newest), REACH * interval)
            if result.at > newest:
                self._covered[result.target] = result.at
        minute = Resolution.MINUTE.bucket(result.at)
        key = (result.target, minute)
        row = self._open.get(key)
        if row is None:
            row = self._open[key] = Aggregate(Resolution.MINUTE, result.target, minute)
            self._oldest = min(self._oldest, minute)
        row.add(result, in_maintenance, seconds)

    def __len__(self) -> int:
        return len(self._open)

    def flush(self, now: float, *, everything: bool = False) -> list[Aggregate]:
        """The rows to add to the store: closed minutes, each also as its hour and day."""
        return expand(self.take_closed(now, everything=everything))

    def take_closed(self, now: float, *, everything: bool = False) -> list[Aggregate]:
        """Remove and return the closed minute rows (cheap: ``expand`` them elsewhere)."""
        if not everything and self._oldest + 60 + GRACE > now:
            return []
        closed = [key for key in self._open if everything or key[1] + 60 + GRACE <= now]
        minutes = [self._open.pop(key) for key in closed]
        self._oldest = min((key[1] for key in self._open), default=float("inf"))
        return minutes


def expand(minutes: Iterable[Aggregate]) -> list[Aggregate]:
    """Minute rows plus the same counts folded into their hour and day rows."""
    rows: list[Aggregate] = []
    coarser: dict[tuple[Resolution, str, int], Aggregate] = {}
    for minute in minutes:
        rows.append(minute)
        for resolution in (Resolution.HOUR, Resolution.DAY):
            key = (resolution, minute.target, resolution.bucket(minute.bucket))
            row = coarser.get(key)
            if row is None:
                row = coarser[key] = Aggregate(resolution, minute.target, key[2])
            row.merge(minute)
    rows.extend(coarser.values())
    return rows


def combine(
    rows: Iterable[Aggregate], resolution: Resolution, target: str, bucket: int
) -> Aggregate:
    """One row summing ``rows`` (e.g. a service's data centers, or a month of days)."""
    total = Aggregate(resolution, target, bucket)
    for row in rows:
        total.merge(row)
    return total
