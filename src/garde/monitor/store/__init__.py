"""Storage of the monitor's history, incidents and maintenance windows."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

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

DEFAULT_DB = "sqlite:///garde-monitor.sqlite"


def open_store(url: str) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://...[?schema=NAME]``."""
    if url.startswith(("postgresql://", "postgres://")):
        from garde.monitor.store.postgres import PostgresStore

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        schema = query.pop("schema", [None])[0]
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        clean = parts._replace(query=rest).geturl()
        return PostgresStore(clean, schema=schema)
    from garde.monitor.store.sqlite import SqliteStore

    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    if "://" in url:
        from garde.errors import UsageError

        raise UsageError(
            f"unknown database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    return SqliteStore(url)
