"""Monthly SLA report per service: availability with maintenance excluded, from day rows."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from garde.catalog.model import Catalog
from garde.errors import UsageError
from garde.monitor.history import SERVICE_PREFIX, combine
from garde.monitor.store.base import Aggregate, Resolution, Store


@dataclass(frozen=True, slots=True)
class SlaRow:
    service: str
    name: str
    availability: float | None
    """Share of samples in which the service was not in outage, maintenance excluded."""
    downtime_minutes: float | None
    maintenance_minutes: float
    incidents: int
    data_centers: dict[str, float | None]


def month_bounds(month: str) -> tuple[float, float]:
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise UsageError(f"invalid month {month!r}: write YYYY-MM, e.g. 2026-01")
    year, mon = int(month[:4]), int(month[5:])
    if not 1 <= mon <= 12:
        raise UsageError(f"invalid month {month!r}: the month must be 01 to 12")
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def sla_report(catalog: Catalog, store: Store, month: str) -> list[SlaRow]:
    start, end = month_bounds(month)
    rows = store.aggregates(Resolution.DAY, start, end)
    by_target: dict[str, list[Aggregate]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row)
    incidents = [i for i in store.incidents(since=start, limit=10_000) if i.started_at < end]
    report = []
    for sid, service in catalog.services.items():
        total = combine(by_target.get(SERVICE_PREFIX + sid, []), Resolution.DAY, sid, int(start))
        samples = total.n + total.maint
        # Samples are evenly spaced, so their share of the month's minutes is their weight.
        minutes_each = (end - start) / 60 / samples if samples else 0.0
        report.append(
            SlaRow(
                sid,
                service.name,
                total.availability,
                None if total.availability is None else (total.n - total.up) * minutes_each,
                total.maint * minutes_each,
                sum(1 for i in incidents if i.service == sid),
                {
                    dc: combine(
                        by_target.get(f"{sid}@{dc}", []), Resolution.DAY, sid, int(start)
                    ).availability
                    for dc in service.endpoints
                },
            )
        )
    return report


def sla_csv(report: list[SlaRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    dcs = sorted({dc for row in report for dc in row.data_centers})
    writer.writerow(
        [
            "service",
            "name",
            "availability_percent",
            "downtime_minutes",
            "maintenance_minutes",
            "incidents",
            *[f"{dc}_availability_percent" for dc in dcs],
        ]
    )
    for row in report:
        writer.writerow(
            [
                row.service,
                row.name,
                _pct(row.availability),
                _num(row.downtime_minutes),
                _num(row.maintenance_minutes),
                row.incidents,
                *[_pct(row.data_centers.get(dc)) for dc in dcs],
            ]
        )
    return out.getvalue()


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.3f}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
