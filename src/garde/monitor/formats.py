"""The monitor's records as they leave it and times as they come in: JSON for the API and
``--json``, times written for people, and times read from them. One form each, whether the
status page, the API or the command line speaks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from garde.errors import UsageError
from garde.locales import local_time, moment
from garde.monitor.store.base import Incident, Maintenance


def when(ts: float | None) -> str:
    """A time as people read it (pages, the command line): Belgian time with its offset,
    ``2026-01-31 23:00 +01:00`` ("" if none)."""
    return local_time(ts)


def parse_time(value: object, what: str) -> float:
    """RFC 3339 / ISO 8601 text (UTC when no offset) or Unix seconds; ``what`` names the
    field or option in the error."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    raise UsageError(f"{what}: expected an ISO 8601 time like 2026-01-31T22:00:00Z, got {value!r}")


def incident_json(incident: Incident) -> dict[str, Any]:
    """An incident and its timeline (oldest update first), times in RFC 3339 UTC (with their
    deprecated ``_unix`` siblings, ``garde.locales.moment``)."""
    return {
        "id": incident.id,
        "service": incident.service,
        "title": incident.title,
        "severity": incident.severity,
        "state": incident.state.value,
        "worst_status": incident.worst_status,
        **moment("started_at", incident.started_at),
        **moment("resolved_at", incident.resolved_at),
        "impacted": list(incident.impacted),
        "groups": list(incident.groups),
        "in_maintenance": incident.in_maintenance,
        "updates": [
            {
                "id": u.id,
                **moment("at", u.at),
                "kind": u.kind,
                "status": u.status,
                "message": u.message,
                "author": u.author,
            }
            for u in incident.updates
        ],
    }


def maintenance_json(window: Maintenance) -> dict[str, Any]:
    """A maintenance window, times in RFC 3339 UTC with their ``_unix`` siblings (the API
    adds whether it is cancelled)."""
    return {
        "id": window.id,
        "title": window.title,
        "scope": list(window.scope),
        **moment("starts_at", window.starts_at),
        **moment("ends_at", window.ends_at),
        "rrule": window.rrule,
        **moment("until", window.until),
    }
