"""The lab's backend storage: one SQLite database that every data center of a service shares.

In the real chain, a service's data centers share its database, so a failover finds the same
prescriptions; here all the (service, data center) listeners run in one process and use one
SQLite connection. A lock serialises access, because tests and the control API read from
other threads than the event loop's. Each service keeps its records as JSON documents keyed by
``(service, kind, key)``; the idempotency table remembers each write's original answer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from garde.errors import LabError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    owner TEXT,
    value TEXT NOT NULL,
    PRIMARY KEY (service, kind, key)
);
CREATE INDEX IF NOT EXISTS records_owner ON records (service, kind, owner);
CREATE TABLE IF NOT EXISTS idempotency (
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (service, operation, key)
);
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    effect TEXT NOT NULL,
    business_key TEXT NOT NULL,
    idempotency_key TEXT,
    dc TEXT NOT NULL,
    identity TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_business ON effects (service, effect, business_key);
CREATE INDEX IF NOT EXISTS effects_idem ON effects (idempotency_key);
"""


class Database:
    """The one SQLite connection of a lab, used under a lock from any thread."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        try:
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            # WAL without fsync on each commit: the lab is a simulator, its speed matters and
            # a crash of the lab itself is not what drills measure.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LabError(f"cannot open the lab database {path}: {exc}") from None
        self.lock = threading.RLock()

    @contextmanager
    def cursor(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self._conn.close()


class Records:
    """The documents of one backend (a service, or services sharing one like Recip-e)."""

    def __init__(self, db: Database, backend: str) -> None:
        self.db = db
        self.backend = backend

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.db.cursor() as conn:
            row = conn.execute(
                "SELECT value FROM records WHERE service=? AND kind=? AND key=?",
                (self.backend, kind, key),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(
        self,
        kind: str,
        key: str,
        value: dict[str, Any],
        owner: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        sql = "INSERT OR REPLACE INTO records (service, kind, key, owner, value) VALUES (?,?,?,?,?)"
        params = (self.backend, kind, key, owner, json.dumps(value))
        if conn is not None:
            conn.execute(sql, params)
            return
        with self.db.cursor() as own:
            own.execute(sql, params)

    def exists(self, kind: str, key: str) -> bool:
        with self.db.cursor() as conn:
            row = conn.execute(
                "SELECT 1 FROM records WHERE service=? AND kind=? AND key=?",
                (self.backend, kind, key),
            ).fetchone()
        return row is not None

    def by_owner(self, kind: str, owner: str) -> list[dict[str, Any]]:
        with self.db.cursor() as conn:
            rows = conn.execute(
                "SELECT value FROM records WHERE service=? AND kind=? AND owner=? ORDER BY rowid",
                (self.backend, kind, owner),
            ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]


class Idempotency:
    """Remembers the answer to each write carrying an ``Idempotency-Key``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, service: str, operation: str, key: str) -> tuple[str, int, bytes] | None:
        """``(fingerprint, status, body)`` of the first answer to this key, if any."""
        with self.db.cursor() as conn:
            row = conn.execute(
                "SELECT fingerprint, status, body FROM idempotency"
                " WHERE service=? AND operation=? AND key=?",
                (service, operation, key),
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), bytes(row[2]))

    def remember(
        self,
        conn: sqlite3.Connection,
        service: str,
        operation: str,
        key: str,
        fingerprint: str,
        status: int,
        body: bytes,
    ) -> None:
        conn.execute(
            "INSERT INTO idempotency (service, operation, key, fingerprint, status, body)"
            " VALUES (?,?,?,?,?,?)",
            (service, operation, key, fingerprint, status, body),
        )
