"""How much of a period the monitor watched, and when that is too little for a figure.

Availability is the share of samples, maintenance excluded, in which a service (or a data
center) was not down: a figure over the time *observed*, never extrapolated to the rest of
the period. Beside it goes its coverage, the observed share of the period; below
``MIN_COVERAGE`` (or ``MIN_OBSERVED``) there is no figure, only "insufficient data".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

MIN_COVERAGE = 0.1
"""A figure needs a tenth of its period observed. Below that it tells more about when garde
started (or stopped) watching than about the service: 21 minutes of data, an outage among
them, once made "11.9 % available" of a whole month. A tenth still lets a monitor installed in
the last days of a month report on it, with its coverage beside the figure."""

MIN_OBSERVED = 3600.0
"""And at least an hour, whatever the period (the first hours of a month): over less, a
single failed sample moves the figure by a percent or more."""


class Row(Protocol):
    """A history row (``Aggregate`` or ``Summary``): its samples and the time they cover."""

    @property
    def bucket(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def maint(self) -> int: ...
    @property
    def observed(self) -> float: ...


def row_seconds(row: Row, bucket_seconds: float, interval: float) -> float:
    """Seconds of its bucket ``row`` covers. Rows written before garde counted this (samples
    but nothing observed) are estimated at one ``interval`` per sample, at most the bucket."""
    if row.observed > 0:
        return min(row.observed, bucket_seconds)
    return min((row.n + row.maint) * interval, bucket_seconds)


@dataclass(frozen=True, slots=True)
class Observed:
    """The time watched over a period, both in seconds."""

    seconds: float
    period: float

    @classmethod
    def of(
        cls, rows: Iterable[Row], bucket_seconds: float, interval: float, period: float
    ) -> Observed:
        total = sum(row_seconds(row, bucket_seconds, interval) for row in rows)
        return cls(min(total, max(period, 0.0)), max(period, 0.0))

    @property
    def coverage(self) -> float | None:
        """Share of the period observed; None for a period that has not begun."""
        return self.seconds / self.period if self.period > 0 else None

    @property
    def sufficient(self) -> bool:
        return self.period > 0 and self.seconds >= max(MIN_OBSERVED, MIN_COVERAGE * self.period)

    def figure(self, value: float | None) -> float | None:
        """``value`` when there is enough data for it, else None."""
        return value if self.sufficient else None

    def as_json(self) -> dict[str, Any]:
        return {
            "observed_seconds": round(self.seconds, 1),
            "coverage": self.coverage,
            "insufficient_data": not self.sufficient,
        }


def duration(seconds: float, units: tuple[str, str, str] = ("d", "h", "min")) -> str:
    """``12 min``, ``3 h 20 min``, ``45 d 3 h``: the two largest units (rounded down)."""
    day, hour, minute = units
    whole = int(seconds // 60)
    days, rest = divmod(whole, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} {day} {hours} {hour}" if hours else f"{days} {day}"
    if hours:
        return f"{hours} {hour} {minutes} {minute}" if minutes else f"{hours} {hour}"
    return f"{minutes} {minute}" if minutes else f"{int(seconds)} s"
