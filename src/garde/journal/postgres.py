"""The shared journal: PostgreSQL through psycopg 3 and a connection pool.

Several gateway instances (a hospital's) point at the same database. Delivery work is leased
row by row with ``FOR UPDATE SKIP LOCKED``: two replayers never take the same entry, and an
entry whose lease ran out (its replayer crashed) is taken over by another. The idempotency
key sent upstream makes the one case leases cannot exclude (a replayer that was slow, not
dead) harmless. Transactions are the same as SQLite's (``ops``), run on pooled connections
in worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from garde.errors import GardeError, JournalUnavailable, UsageError
from garde.journal import ops
from garde.journal.records import INSERT_COLUMNS, Row
from garde.journal.sealing import Keyring
from garde.journal.store import Clock, StoreBase
from garde.storage import JOURNAL, POSTGRES, check_schema

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")

SCHEMA_VERSION = b"4"
"""Bump with every change to ``SCHEMA``: a journal at this version runs no DDL at start."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.entries (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  service TEXT NOT NULL,
  operation TEXT NOT NULL,
  target_group TEXT,
  order_key TEXT,
  idem_key TEXT NOT NULL,
  created_at DOUBLE PRECISION NOT NULL,
  updated_at DOUBLE PRECISION NOT NULL,
  deadline DOUBLE PRECISION,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_token TEXT,
  lease_until DOUBLE PRECISION,
  last_error TEXT,
  reason TEXT,
  key_id TEXT,
  sealed BYTEA NOT NULL,
  checksum TEXT NOT NULL,
  answer_status INTEGER,
  answer_type TEXT,
  answer_body BYTEA,
  subject_key TEXT,
  UNIQUE (service, operation, idem_key)
);
CREATE INDEX IF NOT EXISTS entries_waiting ON {s}.entries (service, seq)
  WHERE state IN ('journaled', 'delivering');
ALTER TABLE {s}.entries ADD COLUMN IF NOT EXISTS subject_key TEXT;
DROP INDEX IF EXISTS {s}.entries_holding;
CREATE INDEX IF NOT EXISTS entries_holding_v2 ON {s}.entries (service, order_key, seq)
  WHERE state IN ('journaled', 'delivering', 'needs_token', 'conflict', 'quarantined')
  AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_needs_token ON {s}.entries (subject_key)
  WHERE state = 'needs_token';
DROP INDEX IF EXISTS {s}.entries_backlog;
CREATE INDEX IF NOT EXISTS entries_backlog_v2
  ON {s}.entries (service, operation, state, created_at)
  WHERE state IN ('journaled', 'delivering', 'needs_token', 'conflict', 'quarantined');
CREATE INDEX IF NOT EXISTS entries_tried ON {s}.entries (service, operation, state, attempts)
  WHERE state IN ('journaled', 'delivering', 'needs_token', 'conflict', 'quarantined')
  AND attempts > 0;
CREATE INDEX IF NOT EXISTS entries_failed ON {s}.entries (service, updated_at)
  WHERE state IN ('journaled', 'delivering', 'needs_token') AND last_error IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_due ON {s}.entries (deadline)
  WHERE state IN ('journaled', 'delivering', 'needs_token') AND deadline IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.audit (
  at DOUBLE PRECISION NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, entry_id TEXT,
  detail TEXT NOT NULL
);
"""


class _Tx:
    """``ops.Tx`` over a psycopg connection: ``?`` becomes ``%s`` (``storage.POSTGRES``)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def _sql(self, query: str) -> str:
        return POSTGRES.sql(query)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(self._sql(query), params)
        return cur.fetchall() if cur.description else []

    def run(self, query: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(self._sql(query), params).rowcount

    def many(self, query: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(query), params)

    def insert(self, query: str, params: Sequence[Any]) -> int | None:
        found = self.rows(query + " RETURNING seq", params)
        return int(found[0][0]) if found else None


_ROW = "(" + ", ".join("%s" for _ in INSERT_COLUMNS) + ")"
_INSERT_HEAD = f"INSERT INTO entries ({', '.join(INSERT_COLUMNS)}) VALUES "
_MAX_ROWS = 500
"""Accepts per insert statement (PostgreSQL takes at most 65,535 parameters)."""


def _insert_many(rows: list[tuple[Any, ...]], tx: _Tx) -> list[Row | None]:
    """Insert ``rows`` (``INSERT_COLUMNS`` values) in as few statements as possible; for
    each, None if inserted, or the row already journaled under its idempotency key."""
    inserted: set[str] = set()
    # In idempotency-key order: two instances inserting the same keys at once then wait for
    # each other in the same order, never in a cycle (a deadlock PostgreSQL would break by
    # failing one of the batches).
    ordered = sorted(rows, key=lambda v: (v[1], v[2], v[5]))
    for first in range(0, len(ordered), _MAX_ROWS):
        chunk = ordered[first : first + _MAX_ROWS]
        query = (
            _INSERT_HEAD
            + ", ".join([_ROW] * len(chunk))
            + " ON CONFLICT (service, operation, idem_key) DO NOTHING RETURNING id"
        )
        found = tx.conn.execute(query, [v for row in chunk for v in row]).fetchall()
        inserted.update(str(r[0]) for r in found)
    results: list[Row | None] = []
    for values in rows:
        if values[0] in inserted:
            results.append(None)
        else:  # the key was journaled before, or twice in this batch: the entry that holds it
            results.append(ops.accept(tx, values))
    return results


def _unavailable(exc: Exception) -> JournalUnavailable:
    return JournalUnavailable(
        f"the PostgreSQL journal cannot persist writes ({str(exc).strip() or type(exc).__name__});"
        " check that the database is up and reachable"
    )


class PostgresJournal(StoreBase):
    """The PostgreSQL backend; ``await PostgresJournal.open(conninfo, keyring)``."""

    _lock = " FOR UPDATE OF e SKIP LOCKED"

    def __init__(
        self,
        conninfo: str,
        keyring: Keyring,
        *,
        schema: str = "garde_journal",
        clock: Clock = time.time,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(keyring, clock)
        self.conninfo = conninfo
        self.schema = check_schema(schema, JOURNAL)
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self._pool: ConnectionPool[Any] | None = None
        self._accepts: dict[
            asyncio.AbstractEventLoop, list[tuple[tuple[Any, ...], asyncio.Future[Row | None]]]
        ] = {}
        self._flushers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @classmethod
    async def open(cls, conninfo: str, keyring: Keyring, **options: Any) -> PostgresJournal:
        journal = cls(conninfo, keyring, **options)
        await asyncio.to_thread(journal._prepare)
        return journal

    def _prepare(self) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise UsageError(
                "the PostgreSQL journal needs psycopg: pip install 'garde[postgres]'"
            ) from None
        self._errors: tuple[type[Exception], ...] = (psycopg.Error,)
        try:
            pool: ConnectionPool[Any] = ConnectionPool(
                self.conninfo,
                min_size=self.min_size,
                max_size=self.max_size,
                kwargs={
                    "options": f"-c search_path={self.schema}",
                    "connect_timeout": max(1, int(self.connect_timeout)),
                },
                timeout=self.connect_timeout,
                open=False,
            )
            pool.open(wait=True, timeout=self.connect_timeout)
        except Exception as exc:  # psycopg_pool.PoolTimeout, psycopg.OperationalError
            raise _unavailable(exc) from None
        self._pool = pool
        try:
            with pool.connection() as conn, conn.transaction():
                # Several instances may start at once: one creates, the others wait.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
                if self._schema_version(conn) != SCHEMA_VERSION:
                    # DDL only when the schema is behind: even a no-op ALTER or CREATE INDEX
                    # IF NOT EXISTS locks the table, and every start would queue the other
                    # gateways' writes behind the longest transaction running.
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    for statement in SCHEMA.format(s=f'"{self.schema}"').split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        f'INSERT INTO "{self.schema}".meta VALUES (%s, %s) ON CONFLICT (name)'
                        " DO UPDATE SET value = EXCLUDED.value",
                        ("schema_version", SCHEMA_VERSION),
                    )
                found = conn.execute(
                    f'SELECT value FROM "{self.schema}".meta WHERE name = %s', ("order_salt",)
                ).fetchone()
                if found is None:
                    self._salt = os.urandom(32)
                    conn.execute(
                        f'INSERT INTO "{self.schema}".meta VALUES (%s, %s)',
                        ("order_salt", self._salt),
                    )
                else:
                    self._salt = bytes(found[0])
        except self._errors as exc:
            pool.close()
            raise _unavailable(exc) from None

    def _schema_version(self, conn: psycopg.Connection[Any]) -> bytes | None:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}".meta',)).fetchone()
        if found is None or found[0] is None:
            return None
        row = conn.execute(
            f'SELECT value FROM "{self.schema}".meta WHERE name = %s', ("schema_version",)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def _run(self, fn: Callable[[_Tx], T]) -> T:
        if self._pool is None:
            raise JournalUnavailable("the PostgreSQL journal is closed")
        try:
            with self._pool.connection() as conn, conn.transaction():
                return fn(_Tx(conn))
        except GardeError:
            raise
        except Exception as exc:  # psycopg.Error, PoolTimeout: nothing was committed
            raise _unavailable(exc) from None

    async def _read(self, fn: Callable[[_Tx], T]) -> T:
        return await asyncio.to_thread(self._run, fn)

    # -- accepts: group commit ------------------------------------------------------------

    async def _write_accept(self, values: tuple[Any, ...]) -> Row | None:
        """Accepts that arrive while a commit is running wait for the next one and share it
        (one multi-row insert, one commit); each caller is answered after the commit that
        holds its entry."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Row | None] = loop.create_future()
        self._accepts.setdefault(loop, []).append((values, future))
        if loop not in self._flushers:
            self._flushers[loop] = loop.create_task(self._flush_accepts(loop))
        return await future

    async def _flush_accepts(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while batch := self._accepts.pop(loop, []):
                rows = [values for values, _ in batch]
                try:
                    found = await asyncio.to_thread(
                        self._run, functools.partial(_insert_many, rows)
                    )
                except BaseException as exc:  # nothing of this batch is acknowledged
                    failure = (
                        exc
                        if isinstance(exc, Exception)
                        else JournalUnavailable(
                            "the journal stopped before this write was committed"
                        )
                    )
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), existing in zip(batch, found, strict=True):
                    if not future.done():
                        future.set_result(existing)
        finally:
            del self._flushers[loop]

    async def _write(self, fn: Callable[[_Tx], T]) -> T:
        return await asyncio.to_thread(self._run, fn)

    async def close(self) -> None:
        await self._before_close()
        loop = asyncio.get_running_loop()
        flushing = self._flushers.get(loop)
        if flushing is not None:  # accepts already handed over are committed (or refused)
            await asyncio.wait([flushing])
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.close)

    async def drop(self) -> None:
        """Remove the whole journal schema (tests and `garde journal` never call this on
        a journal in use)."""
        if self._pool is None:
            return

        def _drop(tx: _Tx) -> None:
            tx.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

        await self._write(_drop)
