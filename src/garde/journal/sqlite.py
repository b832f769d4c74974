"""The embedded journal: one SQLite file in WAL mode, ``synchronous=FULL``, group commit.

Every write goes through one writer thread: it takes whatever is queued (up to
``max_batch`` transactions), runs them in one ``BEGIN IMMEDIATE`` transaction, commits (one
fsync for the whole batch) and only then resolves each caller's future. So ``accept`` returns
only once its entry is on disk, and a thousand concurrent callers cost a handful of fsyncs.
Reads use their own connections (WAL lets them run beside the writer). Several processes may
share the file: SQLite's lock serialises their writers, each waiting up to ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from garde.errors import GardeError, JournalUnavailable, UsageError
from garde.journal import ops, sql
from garde.journal.base import Outcome
from garde.journal.records import INSERT_COLUMNS, Row
from garde.journal.sealing import Keyring
from garde.journal.store import Clock, StoreBase
from garde.storage import missing_directory
from garde.walmode import enter_wal

log = logging.getLogger("garde.journal")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  service TEXT NOT NULL,
  operation TEXT NOT NULL,
  target_group TEXT,
  order_key TEXT,
  idem_key TEXT NOT NULL,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  deadline REAL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before REAL NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_token TEXT,
  lease_until REAL,
  last_error TEXT,
  reason TEXT,
  key_id TEXT,
  sealed BLOB NOT NULL,
  checksum TEXT NOT NULL,
  answer_status INTEGER,
  answer_type TEXT,
  answer_body BLOB,
  subject_key TEXT,
  UNIQUE (service, operation, idem_key)
);
CREATE INDEX IF NOT EXISTS entries_waiting ON entries (service, seq)
  WHERE state IN ('journaled', 'delivering');
DROP INDEX IF EXISTS entries_holding;
CREATE INDEX IF NOT EXISTS entries_holding_v2 ON entries (service, order_key, seq)
  WHERE state IN ('journaled', 'delivering', 'needs_token', 'conflict', 'quarantined')
  AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_needs_token ON entries (subject_key)
  WHERE state = 'needs_token';
DROP INDEX IF EXISTS entries_backlog;
CREATE INDEX IF NOT EXISTS entries_backlog_v2
  ON entries (service, operation, state, created_at)
  WHERE state IN ('journaled', 'delivering', 'needs_token', 'conflict', 'quarantined');
CREATE INDEX IF NOT EXISTS entries_tried ON entries (service, operation, state, attempts)
  WHERE state IN ('journaled', 'delivering', 'needs_token', 'conflict', 'quarantined')
  AND attempts > 0;
CREATE INDEX IF NOT EXISTS entries_failed ON entries (service, updated_at)
  WHERE state IN ('journaled', 'delivering', 'needs_token') AND last_error IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_due ON entries (deadline)
  WHERE state IN ('journaled', 'delivering', 'needs_token') AND deadline IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
  at REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, entry_id TEXT, detail TEXT NOT NULL
);
"""


SETTLES_BUSY = 8
"""Settles in one commit from which the replayer counts as busy: its next settles wait a
moment for more (``settle_wait``), so that one commit writes each page once for many
entries instead of once per few. A lone replay (one ordering key) never waits."""


class _Tx:
    """``ops.Tx`` over a sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(query, params).fetchall()

    def run(self, query: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(query, params).rowcount

    def many(self, query: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            self.conn.executemany(query, params)

    def insert(self, query: str, params: Sequence[Any]) -> int | None:
        # lastrowid, not RETURNING: measured twice as fast on the hot path.
        cur = self.conn.execute(query, params)
        return cur.lastrowid if cur.rowcount == 1 else None


@dataclass(slots=True)
class _Job:
    fn: Callable[[_Tx], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    values: tuple[Any, ...] | None = None
    """Set for an accept: accepts of one batch are inserted together."""
    settle: tuple[Outcome, tuple[Any, ...]] | None = None
    """Set for a settle: settles of one batch with the same outcome run as one update."""


_PLAIN_INSERT = sql.INSERT.split(" ON CONFLICT")[0]
_ROW_MARKS = "(" + ", ".join("?" for _ in INSERT_COLUMNS) + ")"
_INSERT_HEAD = _PLAIN_INSERT.split(" VALUES ")[0] + " VALUES "
_SETTLE_MANY = {
    Outcome.DELIVERED: (sql.SETTLE_DELIVERED_MANY, 6),
    Outcome.CONFLICT: (sql.SETTLE_CONFLICT_MANY, 7),
    Outcome.RETRY_LATER: (sql.SETTLE_RETRY_MANY, 5),
}


@functools.lru_cache(maxsize=64)
def _rows_of(count: int, width: int) -> str:
    """``count`` row placeholders of ``width`` values: ``(?, ?), (?, ?)``."""
    return ", ".join(["(" + ", ".join("?" * width) + ")"] * count)


def _flat(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


def _unavailable(path: Path, exc: sqlite3.Error) -> JournalUnavailable:
    text = str(exc)
    if "full" in text:
        hint = "the disk (or the journal's size limit) is full: free space"
    elif "readonly" in text or "read-only" in text:
        hint = "the journal file or its directory is read-only: fix its permissions"
    elif "locked" in text or "busy" in text:
        hint = "another process holds the journal's write lock for too long"
    else:
        hint = "check the file and its disk"
    return JournalUnavailable(f"journal {path} cannot persist writes ({text}); {hint}")


def _resolve(done: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in done:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class SqliteJournal(StoreBase):
    """The SQLite backend; open it with ``await SqliteJournal.open(path, keyring)``."""

    def __init__(
        self,
        path: Path,
        keyring: Keyring,
        *,
        clock: Clock = time.time,
        max_batch: int = 2000,
        busy_timeout: float = 5.0,
        max_pages: int | None = None,
        settle_wait: float = 0.002,
    ) -> None:
        super().__init__(keyring, clock)
        self.path = path
        self.max_batch = max_batch
        self.busy_timeout = busy_timeout
        self.max_pages = max_pages
        """A size cap in pages (tests use it to make the disk 'full')."""
        self.settle_wait = settle_wait
        """Seconds a busy replayer's settles wait for company before their commit."""
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0
        """Transactions committed by the writer (one fsync each): the group-commit gain."""

    @classmethod
    async def open(cls, path: str | Path, keyring: Keyring, **options: Any) -> SqliteJournal:
        journal = cls(Path(path), keyring, **options)
        await asyncio.to_thread(journal._prepare)
        journal._thread = threading.Thread(
            target=journal._writer, name=f"garde-journal-writer:{path}", daemon=True
        )
        journal._thread.start()
        return journal

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA cache_size = -65536")
        # Statement journals (a multi-row statement inside the group's transaction keeps the
        # pages it changes, to undo it alone) stay in memory: on disk they were written and
        # thrown away again, as many page writes as the WAL itself.
        conn.execute("PRAGMA temp_store = MEMORY")
        if self.max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {int(self.max_pages)}")
        return conn

    def _prepare(self) -> None:
        try:
            if not self.path.parent.is_dir():
                # A directory that is not there is most often a mistyped path: creating it
                # would hide the journal where nobody looks for it.
                raise UsageError(missing_directory("journal", self.path))
            conn = self._connect()
            try:
                mode = enter_wal(conn, self.busy_timeout)
                if str(mode).lower() != "wal":
                    raise JournalUnavailable(
                        f"journal {self.path}: SQLite refused WAL mode ({mode}); use a local disk"
                    )
                conn.execute("BEGIN IMMEDIATE")
                table, _, rest = SCHEMA.partition("DROP INDEX")
                for statement in table.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                columns = {r[1] for r in conn.execute("PRAGMA table_info(entries)")}
                if "subject_key" not in columns:  # a journal made before callers' tokens
                    conn.execute("ALTER TABLE entries ADD COLUMN subject_key TEXT")
                for statement in ("DROP INDEX" + rest).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                found = conn.execute("SELECT value FROM meta WHERE name = 'order_salt'").fetchone()
                if found is None:
                    self._salt = os.urandom(32)
                    conn.execute("INSERT INTO meta VALUES ('order_salt', ?)", (self._salt,))
                else:
                    self._salt = bytes(found[0])
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise _unavailable(self.path, exc) from None
        except OSError as exc:
            raise JournalUnavailable(f"journal {self.path}: {exc.strerror}") from None

    # -- writes: the single writer and its group commit ------------------------------------

    async def _write(
        self,
        fn: Callable[[_Tx], T],
        values: tuple[Any, ...] | None = None,
        settle: tuple[Outcome, tuple[Any, ...]] | None = None,
    ) -> T:
        if self._closed or self._thread is None:
            raise JournalUnavailable(f"journal {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future, values, settle))
        return await future

    async def _write_accept(self, values: tuple[Any, ...]) -> Row | None:
        return await self._write(lambda tx: ops.accept(tx, values), values)

    async def _write_settle(self, outcome: Outcome, params: tuple[Any, ...]) -> bool:
        query = ops.SETTLE_SQL[outcome]
        return await self._write(lambda tx: bool(tx.run(query, params)), settle=(outcome, params))

    def _writer(self) -> None:
        conn: sqlite3.Connection | None = None
        stopping = False
        busy = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stopping = self._take(batch, None)
            if busy and not stopping and all(job.settle is not None for job in batch):
                stopping = self._take(batch, time.monotonic() + self.settle_wait)
            busy = sum(job.settle is not None for job in batch) >= SETTLES_BUSY
            if conn is None:
                try:
                    conn = self._connect()
                except sqlite3.Error as exc:
                    self._finish(batch, [], _unavailable(self.path, exc))
                    continue
            conn = self._commit(conn, batch)
        if conn is not None:
            conn.close()

    def _take(self, batch: list[_Job], until: float | None) -> bool:
        """Add queued jobs to ``batch``: what is there now (``until`` None), or settles
        arriving until ``until``, stopping at the first job that is not a settle. True when
        the stop sentinel was met (the batch is still committed)."""
        while len(batch) < self.max_batch:
            try:
                if until is None:
                    job = self._queue.get_nowait()
                else:
                    left = until - time.monotonic()
                    if left <= 0:
                        return False
                    job = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if job is None:  # the sentinel: finish what was queued before it, then stop
                return True
            batch.append(job)
            if until is not None and job.settle is None:
                return False  # an accept or a lease waits for nobody
        return False

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> sqlite3.Connection | None:
        tx = _Tx(conn)
        results: list[tuple[Any, BaseException | None]] = [(None, None)] * len(batch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = self._insert_together(conn, batch, results)
            done |= self._settle_together(conn, batch, results)
            for index, job in enumerate(batch):
                if index in done:
                    continue
                try:
                    results[index] = (job.fn(tx), None)
                except GardeError as exc:  # the caller's mistake: ops change nothing first
                    results[index] = (None, exc)
            conn.execute("COMMIT")
            self.batches += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            log.error("journal write failed, nothing of this batch was acknowledged: %s", exc)
            self._finish(batch, [], _unavailable(self.path, exc))
            return conn
        except Exception as exc:  # a bug in a transaction: fail the batch, keep the writer
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            log.exception("journal transaction failed")
            self._finish(batch, [], JournalUnavailable(f"journal write failed: {exc!r}"))
            return conn
        self._finish(batch, results, None)
        return conn

    @staticmethod
    def _insert_together(
        conn: sqlite3.Connection,
        batch: list[_Job],
        results: list[tuple[Any, BaseException | None]],
    ) -> set[int]:
        """Insert the batch's accepts with one ``executemany`` (a third faster than one
        statement each). A repeated idempotency key makes it fail as a whole: then nothing
        of it stays and each accept runs on its own (``ON CONFLICT DO NOTHING``)."""
        accepts = [i for i, job in enumerate(batch) if job.values is not None]
        if len(accepts) < 2:
            return set()
        rows = [values for job in batch if (values := job.values) is not None]
        conn.execute("SAVEPOINT together")
        try:
            for size, chunk in ops.chunks(rows):
                # One statement of many rows is one ``sqlite3_step``: the sqlite3 module
                # gives the GIL up around each step, so ``executemany`` would hand it back
                # and forth with the event loop once per row.
                conn.execute(_INSERT_HEAD + _rows_of(size, len(INSERT_COLUMNS)), _flat(chunk))
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO together")
            conn.execute("RELEASE together")
            return set()
        conn.execute("RELEASE together")
        return set(accepts)  # their results stay None: "inserted"

    @staticmethod
    def _settle_together(
        conn: sqlite3.Connection,
        batch: list[_Job],
        results: list[tuple[Any, BaseException | None]],
    ) -> set[int]:
        """Settle the batch's entries with one update per outcome (and chunk) instead of one
        each. The update returns the ids it settled, so each caller learns whether its own
        lease held, without a savepoint (which would copy every page it touches aside)."""
        groups: dict[Outcome, list[int]] = {}
        for index, job in enumerate(batch):
            if job.settle is not None:
                groups.setdefault(job.settle[0], []).append(index)
        done: set[int] = set()
        for outcome, indexes in groups.items():
            if len(indexes) < 2 or outcome not in _SETTLE_MANY:
                continue
            query, width = _SETTLE_MANY[outcome]
            params = [p[1] for i in indexes if (p := batch[i].settle) is not None]
            if len({values[width - 2] for values in params}) != len(params):
                continue  # an entry settled twice: one at a time, so only one of them holds
            settled: set[str] = set()
            for size, chunk in ops.chunks(params):
                rows = conn.execute(query.format(rows=_rows_of(size, width)), _flat(chunk))
                settled.update(row[0] for row in rows)
            for i, values in zip(indexes, params, strict=True):
                results[i] = (values[width - 2] in settled, None)
            done.update(indexes)
        return done

    @staticmethod
    def _finish(
        batch: list[_Job],
        results: list[tuple[Any, BaseException | None]],
        error: BaseException | None,
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for index, job in enumerate(batch):
            if error is not None:
                outcome: tuple[Any, BaseException | None] = (None, error)
            else:
                outcome = results[index]
            by_loop.setdefault(job.loop, []).append((job.future, *outcome))
        for loop, done in by_loop.items():
            # One hop per event loop and batch, not one per caller.
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, done)

    # -- reads --------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[_Tx], T]) -> T:
        if self._closed:
            raise JournalUnavailable(f"journal {self.path} is closed")
        return await asyncio.to_thread(self._read_now, fn)

    def _read_now(self, fn: Callable[[_Tx], T]) -> T:
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise _unavailable(self.path, exc) from None
            with self._readers_lock:
                self._all_readers.append(conn)
        try:
            return fn(_Tx(conn))
        except sqlite3.Error as exc:
            raise _unavailable(self.path, exc) from None
        finally:
            self._readers.put(conn)

    async def close(self) -> None:
        """Drain: every write queued before ``close`` is committed and answered."""
        if self._closed:
            return
        await self._before_close()
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
