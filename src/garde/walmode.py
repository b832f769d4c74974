"""Switching a SQLite file to WAL when other processes may be opening it too."""

from __future__ import annotations

import sqlite3
import time


def enter_wal(conn: sqlite3.Connection, timeout: float) -> str:
    """``PRAGMA journal_mode = WAL``, tried again while another connection holds the file;
    returns the mode SQLite reports (``wal``, or what it kept instead).

    When several processes open a new file at once (the workers of ``garde gateway
    --workers N`` start together), SQLite may answer this one statement with "database is
    locked" at once, without waiting in its busy handler: a worker then died at start-up
    (seen in CI; 2 in 200 four-thread races on a fresh file). Waits at most ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)
