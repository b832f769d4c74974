"""The embedded default: one SQLite file in WAL mode (``sqlite:///path`` or a plain path)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from garde.errors import StoreUnavailable, UsageError
from garde.monitor.store.sql import SqlStore
from garde.storage import SQLITE, missing_directory
from garde.walmode import enter_wal


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:" and not Path(self.path).parent.is_dir():
                raise UsageError(missing_directory("monitor store", Path(self.path)))
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
            # WAL: the status page reads while the writer writes. NORMAL sync is enough for
            # monitoring history (a crash loses at most the last batch, never corrupts).
            enter_wal(connection, 10.0)
            connection.execute("PRAGMA synchronous=NORMAL")
            reader = None
            if self.path != ":memory:":
                # WAL lets this connection read while the other writes. Autocommit: each
                # SELECT sees the latest committed rows and holds no snapshot open.
                reader = sqlite3.connect(
                    self.path, check_same_thread=False, timeout=10.0, isolation_level=None
                )
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"cannot open SQLite database {self.path!r}: {exc}; check the path and its"
                " permissions"
            ) from exc
        super().__init__(connection, SQLITE, (sqlite3.Error,), repr(self.path), reader)
