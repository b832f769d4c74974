"""Incidents open and close themselves from service states, with a timeline.

One incident per service that fails *on its own* (root cause). A service down because a
dependency is down gets no incident and no alert: it is listed as impacted on the
dependency's incident (the STS fails: one alert, not twenty). Monitoring of that service
goes on, and every resolution is notified, also during maintenance windows, which mute the
other alerts.

An incident is titled by its worst moment (an outage that recovers through reduced redundancy
stays registered as an outage); its timeline keeps every change, in order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

from garde.catalog import Catalog, FailedService, Status, impact
from garde.locales import moment
from garde.monitor.maintenance import Calendar
from garde.monitor.state import ServiceSnapshot, ServiceStatus, Snapshot, TargetStatus
from garde.monitor.store.base import Incident, Store


class EventKind(StrEnum):
    OPENED = "incident.opened"
    UPDATED = "incident.updated"
    RESOLVED = "incident.resolved"
    OPERATOR_UPDATE = "incident.operator_update"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    incident: Incident
    message: str
    at: float
    muted: bool = False
    """Not sent: the service is under planned maintenance (never true for resolutions)."""

    def as_json(self) -> dict[str, object]:
        i = self.incident
        return {
            "event": self.kind.value,
            **moment("at", self.at),
            "message": self.message,
            "incident": {
                "id": i.id,
                "service": i.service,
                "title": i.title,
                "severity": i.severity,
                "state": i.state.value,
                "worst_status": i.worst_status,
                **moment("started_at", i.started_at),
                **moment("resolved_at", i.resolved_at),
                "impacted": list(i.impacted),
                "groups": list(i.groups),
            },
        }


def describe(catalog: Catalog, service: ServiceSnapshot) -> str:
    name = catalog.services[service.service].name
    down = [dc for dc, s in service.data_centers.items() if s is TargetStatus.DOWN]
    slow = [dc for dc, s in service.data_centers.items() if s is TargetStatus.DEGRADED]
    if service.status is ServiceStatus.OUTAGE:
        return f"{name}: outage, no data center answers"
    if service.status is ServiceStatus.REDUCED_REDUNDANCY:
        return f"{name}: reduced redundancy, {', '.join(down)} down; the others serve"
    if service.status is ServiceStatus.DEGRADED:
        return f"{name}: degraded, slow answers from {', '.join(slow)}"
    return f"{name}: operational"


def severity_of(status: ServiceStatus) -> str:
    return "major" if status is ServiceStatus.OUTAGE else "minor"


Badness = tuple[int, int, int]


def badness(service: ServiceSnapshot) -> Badness:
    """How bad a moment is: the status first (``ServiceStatus.rank``: outage, degraded,
    reduced redundancy), then how many data centers are down, then how many are slow."""
    states = service.data_centers.values()
    return (
        service.status.rank,
        sum(1 for s in states if s is TargetStatus.DOWN),
        sum(1 for s in states if s is TargetStatus.DEGRADED),
    )


_UNCOUNTED = 1 << 30
"""Data centers of a worst moment known only by its status (read back from the store): only
a worse status retitles the incident."""


def stored_badness(incident: Incident) -> Badness:
    """The worst moment of an incident read back from the store (after a restart)."""
    statuses = {s.value: s for s in ServiceStatus}
    worst = statuses.get(incident.worst_status)
    if worst is None:
        # Made by hand, or by a version that did not record it: the timeline, else severity.
        seen = [statuses[u.status] for u in incident.updates if u.status in statuses]
        worst = max(seen, key=lambda s: s.rank, default=None)
    if worst is None:
        worst = ServiceStatus.OUTAGE if incident.severity == "major" else ServiceStatus.DEGRADED
    return (worst.rank, _UNCOUNTED, _UNCOUNTED)


def _latest_auto(incident: Incident) -> tuple[str, str] | None:
    """The status and description of the incident's latest automatic update."""
    for update in reversed(incident.updates):
        if update.kind == "auto":
            return update.status, update.message.partition("; also impacted: ")[0]
    return None


class IncidentManager:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        calendar: Calendar,
        *,
        settle_factor: float = 2.0,
        intervals: dict[str, float] | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.calendar = calendar
        self.intervals = intervals or {
            sid: service.probe.interval for sid, service in catalog.services.items()
        }
        # How long a service must fail on its own before it gets an incident: its dependants'
        # probes (no token) may cross their threshold a little before the dependency's own
        # probes do; waiting this long lets the dependency's failure explain theirs, so an
        # STS outage stays one incident and one alert (Alertmanager calls this group_wait).
        self.settle = {
            sid: settle_factor
            * max((self.intervals.get(d, 0.0) for d in catalog.dependencies(sid)), default=0.0)
            for sid in catalog.services
        }
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._open: dict[str, Incident] = {i.service: i for i in store.incidents(open_only=True)}
        self._last: dict[str, str] = {}
        """Per service with an open incident, the description of its latest change."""
        self._status: dict[str, str] = {}
        self._worst: dict[str, Badness] = {}
        for sid, i in self._open.items():
            latest = _latest_auto(i)
            self._status[sid], self._last[sid] = latest if latest else ("", i.title)
            self._worst[sid] = stored_badness(i)

    def open_incidents(self) -> dict[str, Incident]:
        return dict(self._open)

    def on_snapshot(self, snap: Snapshot) -> list[Event]:
        """Open, update and resolve incidents; the events to notify (muted ones included)."""
        # The monitor's tick and the API's operator updates run in different threads.
        with self._lock:
            return self._on_snapshot(snap)

    def _on_snapshot(self, snap: Snapshot) -> list[Event]:
        events: list[Event] = []
        now = snap.at
        for sid, service in snap.services.items():
            current = self._open.get(sid)
            if service.status is ServiceStatus.OPERATIONAL:
                self._pending.pop(sid, None)
                if (
                    current is not None
                    and TargetStatus.UNKNOWN not in service.data_centers.values()
                ):
                    events.append(self._resolve(current, now))
                # else: a data center not (yet) judged, as after a restart while its states
                # are learnt again, is no proof the incident is over: it stays open.
                continue
            impacted = sorted(d for d, s in snap.services.items() if sid in s.impacted_by)
            if current is None:
                if not service.root_cause:
                    self._pending.pop(sid, None)
                    continue  # explained by a dependency's incident: no alert of its own
                first = self._pending.setdefault(sid, now)
                if now - first < self.settle.get(sid, 0.0):
                    continue
                del self._pending[sid]
                events.append(self._open_incident(service, impacted, now))
                continue
            title = describe(self.catalog, service)
            if title != self._last.get(sid) or tuple(impacted) != current.impacted:
                events.extend(self._changed(current, service, impacted, title, now))
        return events

    def _groups(self, service: str) -> list[str]:
        result = impact(self.catalog, [FailedService(service)])
        return [g for g, gi in result.groups.items() if gi.status is not Status.UNAFFECTED]

    def _open_incident(self, service: ServiceSnapshot, impacted: list[str], now: float) -> Event:
        title = describe(self.catalog, service)
        muted = self.calendar.in_maintenance(now, service.service)
        incident = self.store.open_incident(
            service.service,
            title,
            severity_of(service.status),
            service.since or now,
            impacted=impacted,
            groups=self._groups(service.service),
            in_maintenance=muted,
            worst_status=service.status.value,
        )
        self.store.add_update(incident.id, now, "auto", service.status.value, title)
        incident = self.store.incident(incident.id)
        self._open[service.service] = incident
        self._last[service.service] = title
        self._status[service.service] = service.status.value
        self._worst[service.service] = badness(service)
        return Event(EventKind.OPENED, incident, title, now, muted=muted)

    def _changed(
        self,
        incident: Incident,
        service: ServiceSnapshot,
        impacted: list[str],
        title: str,
        now: float,
    ) -> list[Event]:
        severity = severity_of(service.status)
        # Severity only goes up during an incident: it was an outage even if it now recovers.
        new_severity = "major" if "major" in (severity, incident.severity) else "minor"
        # The title says how bad it got, so the register, the feed and the alerts' subject
        # keep "outage" for an outage that ends as reduced redundancy; what is true now is
        # the timeline's latest entry.
        bad = badness(service)
        worse = bad > self._worst.get(service.service, (-1, 0, 0))
        if worse:
            self._worst[service.service] = bad
        self.store.update_incident(
            incident.id,
            title=title if worse else None,
            severity=new_severity,
            impacted=impacted,
            worst_status=service.status.value if worse else None,
        )
        message = title
        if tuple(impacted) != incident.impacted and impacted:
            message += f"; also impacted: {', '.join(impacted)}"
        self.store.add_update(incident.id, now, "auto", service.status.value, message)
        refreshed = self.store.incident(incident.id)
        self._open[service.service] = refreshed
        self._last[service.service] = title
        status_changed = service.status.value != self._status.get(service.service)
        self._status[service.service] = service.status.value
        if not status_changed:
            # Same status, other details: another data center down, dependants impacted one
            # by one as their tokens expire. A timeline entry, not one more alert each time.
            return []
        muted = self.calendar.in_maintenance(now, service.service)
        return [Event(EventKind.UPDATED, refreshed, message, now, muted=muted)]

    def _resolve(self, incident: Incident, now: float) -> Event:
        name = self.catalog.services[incident.service].name
        message = f"{name}: operational again"
        self.store.add_update(incident.id, now, "auto", "resolved", message)
        self.store.resolve_incident(incident.id, now)
        del self._open[incident.service]
        self._last.pop(incident.service, None)
        self._status.pop(incident.service, None)
        self._worst.pop(incident.service, None)
        # Resolutions are never muted: whoever heard of the incident must hear it is over.
        return Event(EventKind.RESOLVED, self.store.incident(incident.id), message, now)

    def operator_update(
        self, incident_id: int, message: str, author: str, now: float, status: str = "update"
    ) -> Event:
        with self._lock:
            return self._operator_update(incident_id, message, author, now, status)

    def _operator_update(
        self, incident_id: int, message: str, author: str, now: float, status: str
    ) -> Event:
        self.store.add_update(incident_id, now, "operator", status, message, author)
        incident = self.store.incident(incident_id)
        if incident.service in self._open and incident.state.value == "open":
            self._open[incident.service] = incident
        return Event(EventKind.OPERATOR_UPDATE, incident, message, now)
