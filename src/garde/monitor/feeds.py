"""Machine-readable outputs: the mode feed the gateway follows, and the Atom incident feed.

Mode feed contract (``GET /api/v1/modes``, documented in docs/monitor.md): per service a
``mode`` (``normal`` / ``degraded`` / ``offline``), the data centers to avoid, short advice and
``valid_until``; past that instant a follower must ignore the entry and rely on its own checks
(the monitor itself may be the thing that failed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from garde.catalog import Catalog
from garde.locales import rfc3339
from garde.monitor.state import ServiceStatus, Snapshot, TargetStatus
from garde.monitor.store.base import Incident


class FeedMode(StrEnum):
    NORMAL = "normal"
    DEGRADED = "degraded"
    OFFLINE = "offline"


MODE_OF = {
    ServiceStatus.OPERATIONAL: FeedMode.NORMAL,
    ServiceStatus.REDUCED_REDUNDANCY: FeedMode.NORMAL,
    ServiceStatus.DEGRADED: FeedMode.DEGRADED,
    ServiceStatus.OUTAGE: FeedMode.OFFLINE,
}

ADVICE = {
    FeedMode.NORMAL: "Call the service as usual.",
    FeedMode.DEGRADED: (
        "Answers are slow: shorten timeouts, serve cacheable reads from cache and journal"
        " deferrable writes rather than wait."
    ),
    FeedMode.OFFLINE: (
        "No data center answers: do not wait for timeouts; journal deferrable and async"
        " writes, serve cacheable reads stale, refuse online operations with the procedure."
    ),
}


def mode_feed(catalog: Catalog, snap: Snapshot, validity_intervals: float = 3.0) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for sid, service in snap.services.items():
        mode = MODE_OF[service.status]
        interval = catalog.services[sid].probe.interval
        avoid = [dc for dc, s in service.data_centers.items() if s is TargetStatus.DOWN]
        advice = ADVICE[mode]
        if service.impacted_by:
            advice += f" Cause: {', '.join(service.impacted_by)} is down."
        elif avoid and mode is FeedMode.NORMAL:
            advice = f"Avoid {', '.join(avoid)}; the other data centers serve."
        services[sid] = {
            "mode": mode.value,
            "status": service.status.value,
            "avoid_data_centers": avoid,
            "impacted_by": list(service.impacted_by),
            "since": None if service.since is None else rfc3339(service.since),
            "advice": advice,
            "valid_until": rfc3339(snap.at + validity_intervals * interval),
        }
    return {"generated_at": rfc3339(snap.at), "services": services}


def atom_feed(
    incidents: list[Incident],
    base_url: str,
    now: float,
    *,
    path: str = "/feed.atom",
    title: str = "garde: incidents of the eHealth chain",
) -> bytes:
    """The Atom feed of ``incidents`` (``path``: where it is served, its id; a
    profession's feed is ``/for/{group}/feed.atom``)."""
    from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]  # imported where used: only the feed needs it

    feed = FeedGenerator()
    feed.id(base_url.rstrip("/") + path)
    feed.title(title)
    feed.author({"name": "garde monitor"})
    feed.link(href=base_url.rstrip("/") + path, rel="self")
    feed.link(href=base_url.rstrip("/") + "/", rel="alternate")
    latest = max(
        [now if not incidents else 0.0]
        + [max([i.started_at, i.resolved_at or 0.0] + [u.at for u in i.updates]) for i in incidents]
    )
    feed.updated(datetime.fromtimestamp(latest, UTC))
    for incident in reversed(incidents):  # feedgen prepends entries: newest ends up first
        entry = feed.add_entry()
        entry.id(f"{base_url.rstrip('/')}/incidents/{incident.id}")
        state = "resolved" if incident.resolved_at is not None else "ongoing"
        entry.title(f"[{state}] {incident.title}")
        entry.link(href=f"{base_url.rstrip('/')}/incidents/{incident.id}")
        entry.published(datetime.fromtimestamp(incident.started_at, UTC))
        last = max(
            [incident.started_at, incident.resolved_at or 0.0] + [u.at for u in incident.updates]
        )
        entry.updated(datetime.fromtimestamp(last, UTC))
        # The title and summary say how bad it got; the content, every change in order.
        entry.summary(_summary(incident), type="text")
        lines = [f"{rfc3339(u.at)} {u.status}: {u.message}" for u in incident.updates]
        if incident.impacted:
            lines.append("Also impacted: " + ", ".join(incident.impacted))
        entry.content("\n".join(lines) or incident.title, type="text")
    return bytes(feed.atom_str(pretty=True))


def _summary(incident: Incident) -> str:
    from garde.monitor.observed import duration

    text = f"{incident.title} ({incident.severity}). Started {rfc3339(incident.started_at)}"
    if incident.resolved_at is None:
        return text + ", ongoing."
    lasted = duration(incident.resolved_at - incident.started_at)
    return text + f", resolved {rfc3339(incident.resolved_at)} after {lasted}."
