"""The lab's backend storage: one SQLite database that every data center of a service shares.

In the real chain, a service's data centers share its database, so a failover finds the same
prescriptions; here all the (service, data center) listeners run in one process and use one
SQLite connection. A lock serialises access, because tests and the control API read from
other threads than the event loop's. Each service keeps its records as JSON documents keyed by
``(service, kind, key)``; the idempotency table remembers each write's original answer.

Every write of the lab passes here (a journal replay sends thousands a second), so the hot
statements are prepared once, the lock is taken directly rather than through generator-based
context managers, and records are (de)serialised with pydantic's JSON (a dependency already):
the standard library is four times slower on a prescription's two kilobytes of KMEHR.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic_core import from_json, to_json

from garde.errors import LabError, UsageError
from garde.storage import missing_directory
from garde.walmode import enter_wal

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
-- Effects are never deleted, so a plain INTEGER PRIMARY KEY (max + 1) already numbers them in
-- the order applied; AUTOINCREMENT would only add a write to sqlite_sequence per effect.
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY,
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
-- No index on idempotency_key: the only query by key ORs it with business_key, a full scan
-- anyway, and each index is one more page to write per effect.
CREATE INDEX IF NOT EXISTS effects_business ON effects (service, effect, business_key);
"""

_GET = "SELECT value FROM records WHERE service=? AND kind=? AND key=?"
# An upsert, not INSERT OR REPLACE: the row keeps its rowid (and its place in by_owner's
# order of creation) and no index entry is deleted and inserted again.
_PUT = (
    "INSERT INTO records (service, kind, key, owner, value) VALUES (?,?,?,?,?)"
    " ON CONFLICT (service, kind, key) DO UPDATE SET owner=excluded.owner, value=excluded.value"
)
_LOOKUP = (
    "SELECT fingerprint, status, body FROM idempotency WHERE service=? AND operation=? AND key=?"
)
_REMEMBER = (
    "INSERT INTO idempotency (service, operation, key, fingerprint, status, body)"
    " VALUES (?,?,?,?,?,?)"
)


IN_MEMORY = ":memory:"


def _open_in_memory() -> tuple[sqlite3.Connection, bool]:
    """An in-memory database, on SQLite's ``memdb`` VFS where it has one.

    A plain ``:memory:`` database's commit costs grow with its size: on SQLite 3.40, in a
    model of the lab's writes, from 6 to 51 µs over 130,000 transactions, against 7–12 µs
    throughout on ``memdb`` (docs/benchmarks.md, the lab). ``memdb`` caps a database at
    1 GiB (SQLITE_MEMDB_DEFAULT_MAXSIZE), about 700,000 writes of the lab; a lab meant to
    run longer takes ``--state FILE``. The name has no leading slash, so the database is
    private to this connection, as ``:memory:`` is.
    """
    try:
        conn = sqlite3.connect(
            "file:garde-lab?vfs=memdb", uri=True, check_same_thread=False, isolation_level=None
        )
        return conn, True
    except sqlite3.OperationalError:  # built without memdb (before 3.36)
        return sqlite3.connect(IN_MEMORY, check_same_thread=False, isolation_level=None), False


class Database:
    """The one SQLite connection of a lab, used under a lock from any thread."""

    def __init__(self, path: str | Path = IN_MEMORY) -> None:
        self.memdb = False
        """Whether the data lives in SQLite's memdb VFS (capped at 1 GiB)."""
        if str(path) != IN_MEMORY and not Path(path).parent.is_dir():
            # A mistyped directory is named, not created (the journal and the monitor's
            # store say the same).
            raise UsageError(missing_directory("lab state file", Path(path)))
        try:
            if str(path) == IN_MEMORY:
                self.conn, self.memdb = _open_in_memory()
            else:
                self.conn = sqlite3.connect(
                    str(path), check_same_thread=False, isolation_level=None
                )
            # WAL without fsync on each commit: the lab is a simulator, its speed matters and
            # a crash of the lab itself is not what drills measure.
            enter_wal(self.conn, 10.0)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LabError(f"cannot open the lab database {path}: {exc}") from None
        self.lock = threading.RLock()
        """Held around every statement; re-entrant, so a transaction's holder may read too."""

    def full(self, error: sqlite3.Error) -> str | None:
        """What to tell when ``error`` says the database is full; None for other errors."""
        if getattr(error, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
            return None
        if self.memdb:
            return (
                "the lab's in-memory state is full (SQLite's 1 GiB cap for memory databases):"
                " restart the lab with --state FILE to keep its state on disk"
            )
        return "the lab's state file is on a full disk: free some space, or use another --state"

    @contextmanager
    def cursor(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.conn

    def transaction(self) -> Transaction:
        """A write transaction: everything inside commits together or not at all."""
        return Transaction(self)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class Transaction:
    """``with db.transaction() as conn``; a class, cheaper than a generator on every write."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        db = self._db
        db.lock.acquire()
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            db.lock.release()
            raise
        return db.conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        db = self._db
        try:
            if kind is None:
                db.conn.execute("COMMIT")
            elif db.conn.in_transaction:  # SQLite has rolled back by itself on some errors
                db.conn.execute("ROLLBACK")
        finally:
            db.lock.release()


class Records:
    """The documents of one backend (a service, or services sharing one like Recip-e)."""

    def __init__(self, db: Database, backend: str) -> None:
        self.db = db
        self.backend = backend

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        db = self.db
        with db.lock:
            row = db.conn.execute(_GET, (self.backend, kind, key)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = from_json(row[0])
        return value

    def put(
        self,
        kind: str,
        key: str,
        value: dict[str, Any],
        owner: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        params = (self.backend, kind, key, owner, to_json(value).decode())
        if conn is not None:
            conn.execute(_PUT, params)
            return
        with self.db.lock:
            self.db.conn.execute(_PUT, params)

    def exists(self, kind: str, key: str) -> bool:
        with self.db.cursor() as conn:
            row = conn.execute(
                "SELECT 1 FROM records WHERE service=? AND kind=? AND key=?",
                (self.backend, kind, key),
            ).fetchone()
        return row is not None

    def by_owner(self, kind: str, owner: str) -> list[dict[str, Any]]:
        """The owner's documents in the order they were first stored."""
        with self.db.cursor() as conn:
            rows = conn.execute(
                "SELECT value FROM records WHERE service=? AND kind=? AND owner=? ORDER BY rowid",
                (self.backend, kind, owner),
            ).fetchall()
        return [dict(from_json(row[0])) for row in rows]


class Idempotency:
    """Remembers the answer to each write carrying an ``Idempotency-Key``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Hashes of the keys remembered: nearly every write brings a new key, and a key whose
        # hash is not here is surely new, so its lookup needs no SELECT. A hash collision or
        # a rolled-back transaction only costs a SELECT, never a wrong answer.
        with db.lock:
            rows = db.conn.execute("SELECT service, operation, key FROM idempotency")
            self._seen = {hash(tuple(row)) for row in rows}

    def lookup(self, service: str, operation: str, key: str) -> tuple[str, int, bytes] | None:
        """``(fingerprint, status, body)`` of the first answer to this key, if any."""
        if hash((service, operation, key)) not in self._seen:
            return None
        db = self.db
        with db.lock:
            row = db.conn.execute(_LOOKUP, (service, operation, key)).fetchone()
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
        conn.execute(_REMEMBER, (service, operation, key, fingerprint, status, body))
        self._seen.add(hash((service, operation, key)))
