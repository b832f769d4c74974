"""What the status page and the JSON API show, computed from the live snapshot and the
aggregates (never raw rows), so the page renders fast with years of history."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from garde.catalog import Catalog, FailedService, Status, impact
from garde.locales import moment
from garde.monitor.formats import when
from garde.monitor.maintenance import Calendar
from garde.monitor.observed import Observed, row_seconds
from garde.monitor.state import ServiceStatus, Snapshot
from garde.monitor.store.base import Incident, Resolution, Store, Summary
from garde.monitor.web import svg
from garde.monitor.web.i18n import labels, span

DAY = 86400
BAR_DAYS = 90
SPARK_HOURS = 48
FULL = 0.995
"""Coverage from which a figure is shown without saying how much was observed."""
COMPACT_OVER = 500
"""Above this many targets the services table is one line per service (its data centers'
states, a link to its history page) instead of a 90-day bar and a latency line per data
center: at 5,000 targets those drew 450,000 cells, 34 MB of HTML (780 KB gzipped), more
than anyone reads and more than nginx itself serves 2,000 times a second here
(docs/benchmarks.md). Each service's history page has the charts."""


@dataclass
class DataCenterRow:
    dc: str
    status: str
    bar: str
    sparkline: str
    availability: float | None
    """Over the time observed in the 90 days; None when too little was (see ``observed``)."""
    error: str | None
    observed: str = ""
    """What the figure stands on, in the page's language: "over 12 d observed" when less
    than the 90 days were, "insufficient data (12 min observed)" instead of a figure."""


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


@dataclass
class TargetHistory:
    """What one data center's row of the page shows: a cell per day, a point per hour."""

    cells: list[float | None]
    points: list[float | None]
    n: int = 0
    up: int = 0
    markup: str = ""
    observed: float = 0.0
    """Seconds the day rows cover (each at most its day)."""
    """The SVG cells of ``cells`` (cached for the closed days)."""


class History:
    """Day rows (90 days) and hour rows (48 hours) for the page, with the closed part cached.

    Rows older than the previous hour (or day) no longer change: they are read and turned
    into cells once per hour; each page reads only the last two hours and days. Late results
    reach a row at most ~65 s after its bucket closed (minute flush grace), within that margin.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._frozen: dict[str, TargetHistory] = {}

    def load(self, store: Store, now: float, targets: dict[str, float]) -> dict[str, TargetHistory]:
        """``targets``: each target's probe interval (to estimate rows from before garde
        counted observed time)."""
        first_day = Resolution.DAY.bucket(now) - (BAR_DAYS - 1) * DAY
        days = [first_day + i * DAY for i in range(BAR_DAYS)]
        first_hour = Resolution.HOUR.bucket(now) - (SPARK_HOURS - 1) * 3600
        hours = [first_hour + i * 3600 for i in range(SPARK_HOURS)]
        live_day, live_hour = days[-2], hours[-2]
        labels = svg.day_labels(days)
        with self._lock:
            if self._key != (first_day, live_hour):
                day_rows = _index(store.summaries(Resolution.DAY, first_day, live_day))
                hour_rows = _index(store.summaries(Resolution.HOUR, first_hour, live_hour))
                self._frozen = {}
                for tid, interval in targets.items():
                    old = _history(tid, interval, day_rows, hour_rows, days[:-2], hours[:-2])
                    old.markup = svg.bar_cells(old.cells, labels[:-2])
                    self._frozen[tid] = old
                self._key = (first_day, live_hour)
            frozen = self._frozen
        live_days = _index(store.summaries(Resolution.DAY, live_day))
        live_hours = _index(store.summaries(Resolution.HOUR, live_hour))
        result = {}
        for tid, interval in targets.items():
            cached = frozen.get(tid)
            if cached is not None:
                old = cached
            else:
                old = _history(tid, interval, {}, {}, days[:-2], hours[:-2])
                old.markup = svg.bar_cells(old.cells, labels[:-2])
            new = _history(tid, interval, live_days, live_hours, days[-2:], hours[-2:])
            result[tid] = TargetHistory(
                old.cells + new.cells,
                old.points + new.points,
                old.n + new.n,
                old.up + new.up,
                old.markup + svg.bar_cells(new.cells, labels[-2:], BAR_DAYS - 2),
                old.observed + new.observed,
            )
        return result


def _index(rows: list[Summary]) -> dict[tuple[str, int], Summary]:
    return {(row.target, row.bucket): row for row in rows}


def _history(
    tid: str,
    interval: float,
    day_rows: dict[tuple[str, int], Summary],
    hour_rows: dict[tuple[str, int], Summary],
    days: list[int],
    hours: list[int],
) -> TargetHistory:
    cells: list[float | None] = []
    n = up = 0
    observed = 0.0
    for start in days:
        row = day_rows.get((tid, start))
        if row is not None:
            observed += row_seconds(row, DAY, interval)
        if row is None or not row.n:
            cells.append(None)
            continue
        cells.append(row.up / row.n)
        n += row.n
        up += row.up
    points = [_mean(hour_rows.get((tid, start))) for start in hours]
    return TargetHistory(cells, points, n, up, observed=observed)


def status_page(
    catalog: Catalog,
    snap: Snapshot,
    store: Store,
    calendar: Calendar,
    language: str,
    now: float,
    history: History | None = None,
) -> dict[str, Any]:
    words = labels(language)
    compact = sum(len(s.data_centers) for s in snap.services.values()) > COMPACT_OVER
    histories: dict[str, TargetHistory] = {}
    if not compact:
        page_targets = {
            f"{sid}@{dc}": catalog.services[sid].probe.interval
            for sid, s in snap.services.items()
            for dc in s.data_centers
        }
        histories = (history or History()).load(store, now, page_targets)
    # The bars' period: 89 whole days and today so far.
    period = now - (Resolution.DAY.bucket(now) - (BAR_DAYS - 1) * DAY)
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
            if compact:
                row.dcs.append(DataCenterRow(dc, dc_status.value, "", "", None, None))
                continue
            past = histories[tid]
            view = snap.targets.get(tid)
            observed = Observed(min(past.observed, period), period)
            row.dcs.append(
                DataCenterRow(
                    dc,
                    dc_status.value,
                    svg.bar_wrap(
                        past.markup, BAR_DAYS, f"{row.name} {dc}: {words['availability_90']}"
                    ),
                    svg.sparkline(past.points, f"{row.name} {dc}: {words['latency_48']}"),
                    observed.figure(past.up / past.n if past.n else None),
                    view.error if view is not None else None,
                    _observed_words(observed, words, language),
                )
            )
        services.append(row)
    result = snap.impact(catalog, language)
    groups = []
    for gid, group in result.groups.items():
        lines = []
        for op in group.operations:
            label = catalog.services[op.service].operations[op.operation].label
            lines.append(
                {
                    "operation": f"{op.service}.{op.operation}",
                    "label": label.get(language) if label else f"{op.service}.{op.operation}",
                    "status": op.status.value,
                    "action": words[op.continuity.value],
                    "procedure": op.procedure or "",
                    "impacted_by": ", ".join(
                        catalog.services[c].name_in(language)
                        for c in op.impacted_by
                        if c != op.service and c in catalog.services
                    ),
                }
            )
        # Stopped first: what people must do differently now comes before the rest.
        lines.sort(key=lambda line: line["status"] != Status.STOPPED.value)
        groups.append(GroupRow(gid, group.name, group.status.value, lines))
    groups.sort(key=lambda g: -Status(g.status).rank)
    open_incidents = store.incidents(open_only=True)
    # The register holds the open incidents too: it never says "none in 90 days" while one
    # is going on.
    register = store.incidents(since=now - BAR_DAYS * DAY, limit=200)
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
    down = [
        catalog.services[sid].name_in(language)
        for sid, service in snap.services.items()
        if service.status is ServiceStatus.OUTAGE and sid in catalog.services
    ]
    stopped_for = [g.name for g in groups if g.status == Status.STOPPED.value]
    return {
        "lang": language,
        "t": words,
        "compact_table": compact_services(services, words, language) if compact else "",
        "overall": snap.overall.value,
        "down": down,
        "stopped_for": stopped_for,
        "updated": when(now),
        "groups": groups,
        "services": services,
        "compact": compact,
        "incidents": [_incident(i, catalog, language) for i in open_incidents],
        "register": [_incident(i, catalog, language) for i in register],
        "maintenance": upcoming,
    }


def compact_services(services: list[ServiceRow], words: dict[str, str], language: str) -> Markup:
    """The services table of a page of thousands of targets, one line per service, built as
    strings (a template loop over 1,667 services and their 5,000 data centers was most of
    the page's rendering)."""
    w = {key: escape(value) for key, value in words.items()}
    lines = []
    for s in services:
        extra = ""
        if s.impacted_by:
            impacted = escape(", ".join(s.impacted_by))
            extra += f' <span class="small">{w["impacted_by"]} {impacted}</span>'
        if s.since:
            extra += f' <span class="small">{w["since"]} {escape(s.since)}</span>'
        dcs = " · ".join(f"{escape(d.dc)}: {w[d.status]}" for d in s.dcs)
        lines.append(
            f'<tr id="service-{escape(s.id)}"><th><a href="/services/{escape(s.id)}?lang='
            f'{language}">{escape(s.name)}</a></th><td><span class="badge {s.status}">'
            f'{w[s.status]}</span>{extra}</td><td class="small">{dcs}</td></tr>'
        )
    return Markup("\n".join(lines))  # noqa: S704 (every value above is escaped)


def _incident(
    incident: Incident, catalog: Catalog | None = None, language: str = "en"
) -> dict[str, Any]:
    title = incident.title if catalog is None else incident_title(catalog, incident, language)
    return {
        "id": incident.id,
        "title": title,
        "service": incident.service,
        "severity": incident.severity,
        "state": incident.state.value,
        "worst_status": incident.worst_status,
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
            for u in incident.updates  # in the order they happened
        ],
    }


def incident_page(
    catalog: Catalog, incident: Incident, language: str, now: float
) -> dict[str, Any]:
    """One incident as a person reads it: what, since when, who is affected and what they
    do (the procedures, with their links), and the timeline in the order it happened."""
    words = labels(language)
    service = catalog.services.get(incident.service)
    end = incident.resolved_at if incident.resolved_at is not None else now
    affected = []
    if incident.severity == "major" and service is not None:
        result = impact(catalog, [FailedService(incident.service)], language)
        for gid, group in result.groups.items():
            if not group.operations:
                continue
            lines = []
            for op in group.operations:
                procedure = catalog.procedures.get(op.procedure_id or "")
                lines.append(
                    {
                        "operation": f"{op.service}.{op.operation}",
                        "status": op.status.value,
                        "action": words[op.continuity.value],
                        "procedure": op.procedure or "",
                        "link": (procedure.link or "") if procedure is not None else "",
                    }
                )
            lines.sort(key=lambda line: line["status"] != Status.STOPPED.value)
            affected.append(GroupRow(gid, group.name, group.status.value, lines))
        affected.sort(key=lambda g: -Status(g.status).rank)
    elif service is not None:
        # One data center lost: the others serve; say so for the professions that use it.
        for gid in incident.groups:
            target = catalog.target_groups.get(gid)
            if target is not None:
                line = {
                    "operation": service.name,
                    "status": "degraded",
                    "action": words["failover"],
                }
                name = target.names.get(language)
                affected.append(GroupRow(gid, name, Status.DEGRADED.value, [line]))
    return {
        "lang": language,
        "t": words,
        "updated": when(now),
        "incident": _incident(incident, catalog, language),
        "service_name": service.name if service is not None else incident.service,
        "impacted_names": [
            catalog.services[s].name if s in catalog.services else s for s in incident.impacted
        ],
        "duration": span(max(0.0, end - incident.started_at), language),
        "affected": affected,
    }


def _observed_words(observed: Observed, words: dict[str, str], language: str) -> str:
    if not observed.seconds:
        return ""  # nothing yet: the bar's empty cells say it
    if not observed.sufficient:
        return words["insufficient_for"].format(span=span(observed.seconds, language))
    if observed.coverage is not None and observed.coverage < FULL:
        return words["over_observed"].format(span=span(observed.seconds, language))
    return ""


def _mean(row: Summary | None) -> float | None:
    return None if row is None else row.mean_latency


def status_json(catalog: Catalog, snap: Snapshot, language: str) -> dict[str, Any]:
    return {
        **moment("at", snap.at),
        "overall": snap.overall.value,
        "services": {
            sid: {
                "name": catalog.services[sid].name,
                "status": s.status.value,
                "data_centers": {dc: st.value for dc, st in s.data_centers.items()},
                "impacted_by": list(s.impacted_by),
                **moment("since", s.since),
            }
            for sid, s in snap.services.items()
        },
        "targets": {
            tid: {
                "status": v.status.value,
                **moment("since", v.since),
                "locations": {loc: st.value for loc, st in v.locations.items()},
                "latency": v.latency,
                "error": v.error,
            }
            for tid, v in snap.targets.items()
        },
        "impact": snap.impact(catalog, language).as_json(),
    }


REFRESH_SECONDS = 60
"""How often the pages reload themselves (``base.html``'s refresh)."""


def profession_page(
    catalog: Catalog, snap: Snapshot, store: Store, group_id: str, language: str, now: float
) -> dict[str, Any]:
    """One profession's page, in plain words: each thing their work needs, whether it works,
    what garde does about it, what to do now and since when, with the procedure's link."""
    words = labels(language)
    group = catalog.target_groups[group_id]
    result = snap.impact(catalog, language).groups[group_id]
    affected = {(op.service, op.operation): op for op in result.operations}
    rows = []
    for critical in group.critical:
        service = catalog.services[critical.service]
        operation = service.operations[critical.operation_id]
        found = affected.get((critical.service, critical.operation_id))
        state = snap.services.get(critical.service)
        since = state.since if state is not None and found is not None else None
        procedure = catalog.procedures.get(critical.procedure or "")
        rows.append(
            {
                "id": f"{critical.service}.{critical.operation_id}",
                "label": operation.label.get(language) if operation.label else operation.id,
                "service": service.name_in(language),
                "status": found.status.value if found is not None else Status.UNAFFECTED.value,
                "action": words[found.continuity.value] if found is not None else "",
                "procedure": (found.procedure or "") if found is not None else "",
                "link": (procedure.link or "") if procedure is not None and found else "",
                "impacted_by": [
                    catalog.services[c].name_in(language)
                    for c in (found.impacted_by if found is not None else ())
                    if c != critical.service and c in catalog.services
                ],
                "since": when(since),
            }
        )
    rows.sort(key=lambda row: -Status(str(row["status"])).rank)
    stopped = [row["label"] for row in rows if row["status"] == Status.STOPPED.value]
    degraded = [row["label"] for row in rows if row["status"] == Status.DEGRADED.value]
    incidents = [i for i in store.incidents(open_only=True) if group_id in i.groups]
    return {
        "lang": language,
        "t": words,
        "group": {"id": group_id, "name": group.names.get(language), "status": result.status.value},
        "stopped": stopped,
        "degraded": degraded,
        "rows": rows,
        "incidents": [_incident(i, catalog, language) for i in incidents],
        "updated": when(now),
        "next_update": when(now + REFRESH_SECONDS),
        "others": [
            {"id": gid, "name": g.names.get(language)}
            for gid, g in catalog.target_groups.items()
            if gid != group_id
        ],
    }


def incident_title(catalog: Catalog, incident: Incident, language: str) -> str:
    """The incident's title in ``language``: the service's name and the worst it reached
    (the stored title is the English one, for feeds and alerts)."""
    service = catalog.services.get(incident.service)
    if language == "en" or service is None or not incident.worst_status:
        return incident.title  # the stored one: in English, with the data centers named
    words = labels(language)
    state = words.get(f"title_{incident.worst_status}")
    return f"{service.name_in(language)}: {state}" if state else incident.title
