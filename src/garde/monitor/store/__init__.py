"""Storage of the monitor's history, incidents and maintenance windows."""

from __future__ import annotations

from garde.monitor.store.base import (
    Aggregate,
    Incident,
    IncidentState,
    IncidentUpdate,
    Maintenance,
    Resolution,
    Retention,
    Store,
)
from garde.storage import MONITOR, PostgresUrl, parse_url

__all__ = [
    "Aggregate",
    "Incident",
    "IncidentState",
    "IncidentUpdate",
    "Maintenance",
    "Resolution",
    "Retention",
    "Store",
    "open_store",
]


def open_store(url: str) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://...[?schema=NAME]`` (the
    syntax of ``garde.storage``, shared with the journal)."""
    location = parse_url(url, MONITOR)
    if isinstance(location, PostgresUrl):
        from garde.monitor.store.postgres import PostgresStore

        return PostgresStore(location.conninfo, schema=location.schema)
    from garde.monitor.store.sqlite import SqliteStore

    return SqliteStore(location.path)
