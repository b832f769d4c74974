"""Bringing a database made by an older garde up to the current schema, when a store opens
it. ``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is, so the columns added
since are added here (existing rows take their default) and filled where history allows.
Every step is idempotent: running it again, or from two monitors at once, changes nothing.
"""

# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ADDED_COLUMNS = [
    # Seconds of its bucket a history row's samples cover (0: written before it was counted).
    ("aggregates", "observed", "{real} NOT NULL DEFAULT 0"),
    # The worst service status an incident reached: its title describes that moment.
    ("incidents", "worst_status", "TEXT NOT NULL DEFAULT ''"),
]
"""``(table, column, declaration)``; the table and column names are ours, never input."""


def upgrade(cur: Any, postgres: bool, sql: Callable[[str], str]) -> None:
    """Add the missing tables and columns and backfill them, in the caller's transaction.
    ``sql`` turns ``?`` placeholders into the dialect's."""
    from garde.monitor.store.subscriptions import subscription_tables

    real = "DOUBLE PRECISION" if postgres else "REAL"
    # Tables added since the first schema (subscriptions: the profession's subscribers).
    id_column = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    for statement in subscription_tables(id_column, real):
        cur.execute(statement)
    for table, column, declaration in ADDED_COLUMNS:
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        if column in {c[0] for c in cur.description}:
            continue
        # PostgreSQL: two monitors upgrading one database at once must not both fail.
        guard = "IF NOT EXISTS " if postgres else ""
        cur.execute(
            f"ALTER TABLE {table} ADD COLUMN {guard}{column} {declaration.format(real=real)}"
        )
    backfill_worst_status(cur, sql)


def backfill_worst_status(cur: Any, sql: Callable[[str], str]) -> None:
    """Incidents from before ``worst_status`` get it from their timeline, and their title
    back from the moment they were worst: the monitor used to retitle an incident at each
    change, so an outage that ended as reduced redundancy was registered as the latter.
    Incidents without automatic updates (made by hand) are left as they are."""
    from garde.monitor.state import ServiceStatus

    ranks = {s.value: s.rank for s in ServiceStatus if s is not ServiceStatus.OPERATIONAL}
    cur.execute("SELECT id FROM incidents WHERE worst_status = ''")
    for (incident_id,) in cur.fetchall():
        cur.execute(
            sql(
                "SELECT status, message FROM incident_updates WHERE incident_id = ?"
                " AND kind = 'auto' ORDER BY at, id"
            ),
            (incident_id,),
        )
        worst: tuple[int, str, str] | None = None
        for status, message in cur.fetchall():
            rank = ranks.get(status)
            if rank is not None and (worst is None or rank > worst[0]):
                worst = (rank, status, message)
        if worst is None:
            continue
        # An automatic update's message is the title of its moment, sometimes followed by
        # the dependants impacted since the one before.
        title = worst[2].partition("; also impacted: ")[0]
        cur.execute(
            sql("UPDATE incidents SET worst_status = ?, title = ? WHERE id = ?"),
            (worst[1], title, incident_id),
        )
