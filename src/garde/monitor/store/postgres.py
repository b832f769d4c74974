"""PostgreSQL, for operators who outgrow SQLite or run several monitors on one history.

``schema`` isolates one monitor (and each test session) in its own PostgreSQL schema.
"""

from __future__ import annotations

from garde.errors import StoreUnavailable, UsageError
from garde.monitor.store.sql import SqlStore
from garde.storage import MONITOR, POSTGRES, check_schema, redact


class PostgresStore(SqlStore):
    def __init__(self, url: str, schema: str | None = None) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError("PostgreSQL needs psycopg: pip install 'garde[postgres]'") from exc
        self.schema = None if schema is None else check_schema(schema, MONITOR)
        try:
            connection = psycopg.connect(url, connect_timeout=10)
            if schema is not None:
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                connection.execute(f"SET search_path TO {schema}")
                connection.commit()
            # Reads on their own connection, in autocommit: no transaction left open.
            reader = psycopg.connect(url, connect_timeout=10, autocommit=True)
            if schema is not None:
                reader.execute(f"SET search_path TO {schema}")
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL ({redact(url)}): {exc}; check the URL, that the"
                " server runs and accepts this user"
            ) from exc
        super().__init__(connection, POSTGRES, (psycopg.Error,), redact(url), reader)

    def drop_schema(self) -> None:
        """Remove this store's schema and everything in it (tests, decommissioning)."""
        if self.schema is None:
            raise UsageError("drop_schema needs a store opened with a schema")
        with self._tx() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
