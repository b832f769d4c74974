"""Monthly SLA report per service: availability over the time observed, maintenance
excluded, from day rows; with how much of the month that was, and no figure when too little."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from garde.catalog import Catalog
from garde.errors import UsageError
from garde.locales import moment
from garde.monitor.history import SERVICE_PREFIX, SERVICE_SAMPLE_INTERVAL, combine
from garde.monitor.observed import MIN_COVERAGE, MIN_OBSERVED, Observed, row_seconds
from garde.monitor.store.base import Aggregate, Resolution, Store

DAY = float(Resolution.DAY.seconds)


@dataclass(frozen=True, slots=True)
class SlaRow:
    service: str
    name: str
    availability: float | None
    """Share of the samples observed outside maintenance in which the service was not in
    outage; None when nothing was measured or too little of the period was observed."""
    downtime_minutes: float | None
    """Minutes observed in outage (never extrapolated); None when nothing was measured."""
    maintenance_minutes: float
    """Minutes observed under maintenance."""
    incidents: int
    data_centers: dict[str, float | None]
    """Availability per data center, None as for ``availability``."""
    observed: Observed
    data_centers_observed: dict[str, Observed]


@dataclass(frozen=True, slots=True)
class SlaReport:
    month: str
    start: float
    end: float
    """The month's end: ``until`` is before it while the month runs."""
    until: float
    """End of the period reported on: the month's end, or now for the current month."""
    rows: list[SlaRow]

    @property
    def period(self) -> float:
        return max(0.0, self.until - self.start)

    @property
    def complete(self) -> bool:
        return self.until >= self.end


def month_bounds(month: str) -> tuple[float, float]:
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise UsageError(f"invalid month {month!r}: write YYYY-MM, e.g. 2026-01")
    year, mon = int(month[:4]), int(month[5:])
    if not 1 <= mon <= 12:
        raise UsageError(f"invalid month {month!r}: the month must be 01 to 12")
    if not 1 <= year <= 9998:
        raise UsageError(f"invalid month {month!r}: the year must be 0001 to 9998")
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def sla_report(catalog: Catalog, store: Store, month: str, now: float) -> SlaReport:
    start, end = month_bounds(month)
    until = max(start, min(end, now))
    rows = store.aggregates(Resolution.DAY, start, end)
    by_target: dict[str, list[Aggregate]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row)
    incidents = [i for i in store.incidents(since=start, limit=10_000) if i.started_at < end]
    period = until - start
    report = []
    for sid, service in catalog.services.items():
        days = by_target.get(SERVICE_PREFIX + sid, [])
        total = combine(days, Resolution.DAY, sid, int(start))
        observed = Observed.of(days, DAY, SERVICE_SAMPLE_INTERVAL, period)
        down = maintenance = 0.0
        for day in days:
            # A day's samples are evenly spaced: each has its share of the day's observed time.
            seconds = row_seconds(day, DAY, SERVICE_SAMPLE_INTERVAL)
            samples = day.n + day.maint
            if samples:
                down += seconds * (day.n - day.up) / samples
                maintenance += seconds * day.maint / samples
        dcs: dict[str, float | None] = {}
        dcs_observed: dict[str, Observed] = {}
        for dc in service.endpoints:
            dc_days = by_target.get(f"{sid}@{dc}", [])
            dcs_observed[dc] = Observed.of(dc_days, DAY, service.probe.interval, period)
            dcs[dc] = dcs_observed[dc].figure(
                combine(dc_days, Resolution.DAY, sid, int(start)).availability
            )
        report.append(
            SlaRow(
                sid,
                service.name,
                observed.figure(total.availability),
                None if not total.n else down / 60,
                maintenance / 60,
                sum(1 for i in incidents if i.service == sid),
                dcs,
                observed,
                dcs_observed,
            )
        )
    return SlaReport(month, start, end, until, report)


def sla_json(report: SlaReport) -> dict[str, Any]:
    """The report as ``garde sla --json`` and ``/api/v1/sla/YYYY-MM`` give it."""
    return {
        "month": report.month,
        **moment("period_start", report.start),
        **moment("period_end", report.until),
        "period_seconds": report.period,
        "complete": report.complete,
        "min_coverage": MIN_COVERAGE,
        "min_observed_seconds": MIN_OBSERVED,
        "services": [
            {
                "service": r.service,
                "name": r.name,
                "availability": r.availability,
                "downtime_minutes": _round(r.downtime_minutes),
                "maintenance_minutes": _round(r.maintenance_minutes),
                "incidents": r.incidents,
                "data_centers": r.data_centers,
                **r.observed.as_json(),
                "data_centers_observed": {
                    dc: o.as_json() for dc, o in r.data_centers_observed.items()
                },
            }
            for r in report.rows
        ],
    }


def sla_csv(report: SlaReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    dcs = sorted({dc for row in report.rows for dc in row.data_centers})
    # New columns go after the data centers': readers that index columns keep working.
    writer.writerow(
        [
            "service",
            "name",
            "availability_percent",
            "downtime_minutes",
            "maintenance_minutes",
            "incidents",
            *[f"{dc}_availability_percent" for dc in dcs],
            "observed_minutes",
            "coverage_percent",
            "insufficient_data",
        ]
    )
    for row in report.rows:
        writer.writerow(
            [
                row.service,
                row.name,
                _pct(row.availability),
                _num(row.downtime_minutes),
                _num(row.maintenance_minutes),
                row.incidents,
                *[_pct(row.data_centers.get(dc)) for dc in dcs],
                _num(row.observed.seconds / 60),
                _pct(row.observed.coverage),
                "true" if not row.observed.sufficient else "false",
            ]
        )
    return out.getvalue()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.3f}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
