"""The monitor's storage seam: one ``Store`` protocol, SQLite and PostgreSQL behind it.

History stays small: raw results are kept a few days; per-minute, per-hour and per-day
aggregates (counts, latency sum, max and a fixed histogram for percentiles) are kept for
years. Aggregates merge by addition, so a late result from a remote location, or a rollup
flushed twice, is simply added (upsert with sums). The status page reads aggregates only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

from garde.monitor.probes import ProbeResult

LATENCY_BOUNDS_MS = (5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000)
"""Upper bounds of the latency histogram buckets (ms); a 16th bucket holds the rest."""
BUCKETS = len(LATENCY_BOUNDS_MS) + 1


class Resolution(StrEnum):
    MINUTE = "m"
    HOUR = "h"
    DAY = "d"

    @property
    def seconds(self) -> int:
        return {"m": 60, "h": 3600, "d": 86400}[self.value]

    def bucket(self, at: float) -> int:
        return int(at // self.seconds) * self.seconds


def bucket_index(latency_seconds: float) -> int:
    ms = latency_seconds * 1000
    for i, bound in enumerate(LATENCY_BOUNDS_MS):
        if ms <= bound:
            return i
    return BUCKETS - 1


@dataclass(slots=True)
class Aggregate:
    """Probe results of one target over one bucket. Maintenance-time results count apart."""

    resolution: Resolution
    target: str
    bucket: int
    n: int = 0
    up: int = 0
    slow: int = 0
    maint: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    observed: float = 0.0
    """Seconds of the bucket its samples cover, maintenance included (``history.Aggregator``
    says how much each sample covers). 0 in rows written before garde counted it."""

    def add(self, result: ProbeResult, in_maintenance: bool, observed: float = 0.0) -> None:
        self.observed += observed
        if in_maintenance:
            self.maint += 1
            return
        self.n += 1
        if result.ok:
            self.up += 1
            self.slow += int(result.slow)
            self.latency_sum += result.latency
            self.latency_max = max(self.latency_max, result.latency)
            self.histogram[bucket_index(result.latency)] += 1

    def merge(self, other: Aggregate) -> None:
        self.n += other.n
        self.up += other.up
        self.slow += other.slow
        self.maint += other.maint
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.observed += other.observed

    @property
    def availability(self) -> float | None:
        """Share of successful probes outside maintenance; None when nothing was measured."""
        return self.up / self.n if self.n else None

    def percentile(self, q: float) -> float | None:
        """Latency (seconds) under which ``q`` of successful probes fell, from the histogram."""
        total = sum(self.histogram)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.histogram):
            if count and seen + count >= rank:
                lower = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0
                upper = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else None
                if upper is None:
                    return self.latency_max
                fraction = (rank - seen) / count
                return min((lower + (upper - lower) * fraction) / 1000, self.latency_max)
            seen += count
        return self.latency_max


class Summary(NamedTuple):
    """An aggregate row without its histogram (cheap to read in bulk)."""

    target: str
    bucket: int
    n: int
    up: int
    latency_sum: float
    maint: int = 0
    observed: float = 0.0

    @property
    def availability(self) -> float | None:
        return self.up / self.n if self.n else None

    @property
    def mean_latency(self) -> float | None:
        return self.latency_sum / self.up if self.up else None


class IncidentState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    id: int
    incident_id: int
    at: float
    kind: str
    """``auto`` (the monitor saw a change) or ``operator``."""
    status: str
    message: str
    author: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    service: str
    title: str
    severity: str
    """``minor`` (reduced redundancy, degraded) or ``major`` (outage)."""
    state: IncidentState
    started_at: float
    resolved_at: float | None
    impacted: tuple[str, ...] = ()
    """Dependant services down because of this one (they get no incident of their own)."""
    groups: tuple[str, ...] = ()
    in_maintenance: bool = False
    updates: tuple[IncidentUpdate, ...] = ()
    worst_status: str = ""
    """The worst service status the incident reached (``outage``, ``degraded``,
    ``reduced_redundancy``); its title describes that moment. Empty when unknown (an incident
    made by hand)."""


@dataclass(frozen=True, slots=True)
class Maintenance:
    id: int
    title: str
    scope: tuple[str, ...]
    """``service`` or ``service@dc`` entries the window covers."""
    starts_at: float
    ends_at: float
    """End of the first occurrence; its length is every occurrence's length."""
    rrule: str | None = None
    """RFC 5545 recurrence (``FREQ=WEEKLY;BYDAY=SU``) or None for a one-off window."""
    until: float | None = None
    created_at: float = 0.0
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of history is kept, in seconds (None: for ever)."""

    raw: float = 3 * 86400
    minute: float = 30 * 86400
    hour: float = 400 * 86400
    day: float | None = None


@runtime_checkable
class Store(Protocol):
    """What the monitor needs from storage. Methods are synchronous: the monitor calls them
    from one writer thread and the web side from worker threads."""

    def add_results(self, results: Sequence[ProbeResult]) -> None: ...

    def recent_results(self, target: str, limit: int = 50) -> list[ProbeResult]: ...

    def add_aggregates(self, rows: Sequence[Aggregate]) -> None:
        """Add each row to the stored one of the same (resolution, target, bucket)."""
        ...

    def aggregates(
        self,
        resolution: Resolution,
        since: float,
        until: float | None = None,
        targets: Sequence[str] | None = None,
    ) -> list[Aggregate]: ...

    def aggregates_at(
        self, resolution: Resolution, buckets: Sequence[int], targets: Sequence[str]
    ) -> list[Aggregate]:
        """The rows of ``targets`` at exactly these ``buckets`` (a few series' history,
        read by key whatever the number of other targets)."""
        ...

    def summaries(
        self, resolution: Resolution, since: float, until: float | None = None
    ) -> list[Summary]:
        """The counts of every target's rows, without histograms: what pages and bars need."""
        ...

    def prune(self, now: float, retention: Retention) -> dict[str, int]:
        """Delete history older than ``retention``; the number of rows deleted per kind."""
        ...

    def open_incident(
        self,
        service: str,
        title: str,
        severity: str,
        started_at: float,
        impacted: Sequence[str] = (),
        groups: Sequence[str] = (),
        in_maintenance: bool = False,
        worst_status: str = "",
    ) -> Incident: ...

    def update_incident(
        self,
        incident_id: int,
        *,
        title: str | None = None,
        severity: str | None = None,
        impacted: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        worst_status: str | None = None,
    ) -> None: ...

    def add_update(
        self, incident_id: int, at: float, kind: str, status: str, message: str, author: str = ""
    ) -> IncidentUpdate:
        """Raises ``NotFound`` when there is no such incident."""
        ...

    def resolve_incident(self, incident_id: int, at: float) -> None: ...

    def incident(self, incident_id: int) -> Incident: ...

    def incidents(
        self, *, open_only: bool = False, since: float | None = None, limit: int = 100
    ) -> list[Incident]: ...

    def add_maintenance(
        self,
        title: str,
        scope: Sequence[str],
        starts_at: float,
        ends_at: float,
        rrule: str | None = None,
        until: float | None = None,
        created_at: float = 0.0,
    ) -> Maintenance: ...

    def cancel_maintenance(self, maintenance_id: int) -> None: ...

    def maintenances(self, *, include_cancelled: bool = False) -> list[Maintenance]: ...

    def close(self) -> None: ...
