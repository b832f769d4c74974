"""What the status page and the JSON API show, computed from the live snapshot and the
aggregates (never raw rows), so the page renders fast with years of history."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from garde.catalog.impact import Status
from garde.catalog.model import Catalog
from garde.monitor.maintenance import Calendar
from garde.monitor.state import ServiceStatus, Snapshot
from garde.monitor.store.base import Aggregate, Incident, Resolution, Store
from garde.monitor.web import svg
from garde.monitor.web.i18n import labels

DAY = 86400
BAR_DAYS = 90
SPARK_HOURS = 48


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class DataCenterRow:
    dc: str
    status: str
    bar: str
    sparkline: str
    availability: float | None
    error: str | None


@dataclass
class ServiceRow:
    id: str
    name: str
    status: str
    impacted_by: list[str]
    since: str
    dcs: list[DataCenterRow] = field(default_factory=list)


@dataclass
class GroupRow:
    id: str
    name: str
    status: str
    lines: list[dict[str, str]]


def history(
    store: Store, now: float
) -> tuple[dict[str, list[Aggregate]], dict[str, list[Aggregate]]]:
    """Day rows of the last 90 days and hour rows of the last 48 hours, by target."""
    first_day = Resolution.DAY.bucket(now) - (BAR_DAYS - 1) * DAY
    days: dict[str, list[Aggregate]] = defaultdict(list)
    for row in store.aggregates(Resolution.DAY, first_day):
        days[row.target].append(row)
    first_hour = Resolution.HOUR.bucket(now) - (SPARK_HOURS - 1) * 3600
    hours: dict[str, list[Aggregate]] = defaultdict(list)
    for row in store.aggregates(Resolution.HOUR, first_hour):
        hours[row.target].append(row)
    return days, hours


def status_page(
    catalog: Catalog,
    snap: Snapshot,
    store: Store,
    calendar: Calendar,
    language: str,
    now: float,
) -> dict[str, Any]:
    words = labels(language)
    days, hours = history(store, now)
    first_day = Resolution.DAY.bucket(now) - (BAR_DAYS - 1) * DAY
    first_hour = Resolution.HOUR.bucket(now) - (SPARK_HOURS - 1) * 3600
    services = []
    for sid, service in snap.services.items():
        row = ServiceRow(
            sid,
            catalog.services[sid].name,
            service.status.value,
            list(service.impacted_by),
            when(service.since) if service.status is not ServiceStatus.OPERATIONAL else "",
        )
        for dc, dc_status in service.data_centers.items():
            tid = f"{sid}@{dc}"
            by_day = {a.bucket: a for a in days.get(tid, [])}
            cells = [
                (first_day + i * DAY, _avail(by_day.get(first_day + i * DAY)))
                for i in range(BAR_DAYS)
            ]
            by_hour = {a.bucket: a for a in hours.get(tid, [])}
            points = [_p95(by_hour.get(first_hour + i * 3600)) for i in range(SPARK_HOURS)]
            measured = [a for a in by_day.values() if a.n]
            total_n = sum(a.n for a in measured)
            view = snap.targets.get(tid)
            row.dcs.append(
                DataCenterRow(
                    dc,
                    dc_status.value,
                    svg.bar(cells, f"{row.name} {dc}: {words['availability_90']}"),
                    svg.sparkline(points, f"{row.name} {dc}: {words['latency_48']}"),
                    sum(a.up for a in measured) / total_n if total_n else None,
                    view.error if view is not None else None,
                )
            )
        services.append(row)
    result = snap.impact(catalog, language)
    groups = []
    for gid, group in result.groups.items():
        lines = []
        for op in group.operations:
            lines.append(
                {
                    "operation": f"{op.service}.{op.operation}",
                    "status": op.status.value,
                    "action": words[op.continuity.value],
                    "procedure": op.procedure or "",
                    "impacted_by": ", ".join(c for c in op.impacted_by if c != op.service),
                }
            )
        # Stopped first: what people must do differently now comes before the rest.
        lines.sort(key=lambda line: line["status"] != Status.STOPPED.value)
        groups.append(GroupRow(gid, group.name, group.status.value, lines))
    groups.sort(key=lambda g: -Status(g.status).rank)
    open_incidents = store.incidents(open_only=True)
    register = [
        i for i in store.incidents(since=now - BAR_DAYS * DAY, limit=200) if i.state.value != "open"
    ]
    upcoming = [
        {
            "title": w.title,
            "scope": ", ".join(w.scope),
            "start": when(b),
            "end": when(e),
            "active": b <= now < e,
            "recurring": w.rrule is not None,
        }
        for w, b, e in calendar.upcoming(now, 30 * DAY)[:20]
    ]
    return {
        "lang": language,
        "t": words,
        "overall": snap.overall.value,
        "updated": when(now),
        "groups": groups,
        "services": services,
        "incidents": [_incident(i) for i in open_incidents],
        "register": [_incident(i) for i in register],
        "maintenance": upcoming,
        "when": when,
    }


def _incident(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "service": incident.service,
        "severity": incident.severity,
        "state": incident.state.value,
        "started": when(incident.started_at),
        "resolved": when(incident.resolved_at),
        "impacted": list(incident.impacted),
        "groups": list(incident.groups),
        "in_maintenance": incident.in_maintenance,
        "updates": [
            {
                "at": when(u.at),
                "kind": u.kind,
                "status": u.status,
                "message": u.message,
                "author": u.author,
            }
            for u in reversed(incident.updates)
        ],
    }


def _avail(row: Aggregate | None) -> float | None:
    return None if row is None else row.availability


def _p95(row: Aggregate | None) -> float | None:
    return None if row is None else row.percentile(0.95)


def status_json(catalog: Catalog, snap: Snapshot, language: str) -> dict[str, Any]:
    return {
        "at": snap.at,
        "overall": snap.overall.value,
        "services": {
            sid: {
                "name": catalog.services[sid].name,
                "status": s.status.value,
                "data_centers": {dc: st.value for dc, st in s.data_centers.items()},
                "impacted_by": list(s.impacted_by),
                "since": s.since,
            }
            for sid, s in snap.services.items()
        },
        "targets": {
            tid: {
                "status": v.status.value,
                "since": v.since,
                "locations": {loc: st.value for loc, st in v.locations.items()},
                "latency": v.latency,
                "error": v.error,
            }
            for tid, v in snap.targets.items()
        },
        "impact": snap.impact(catalog, language).as_json(),
    }


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "service": incident.service,
        "title": incident.title,
        "severity": incident.severity,
        "state": incident.state.value,
        "started_at": incident.started_at,
        "resolved_at": incident.resolved_at,
        "impacted": list(incident.impacted),
        "groups": list(incident.groups),
        "in_maintenance": incident.in_maintenance,
        "updates": [
            {
                "id": u.id,
                "at": u.at,
                "kind": u.kind,
                "status": u.status,
                "message": u.message,
                "author": u.author,
            }
            for u in incident.updates
        ],
    }
