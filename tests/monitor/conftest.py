"""The monitor store under test: SQLite and the real PostgreSQL, one parametrised suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from garde.monitor.store.base import Store

PG_URL = os.environ.get("GARDE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_store() -> Iterator[Store]:
    from garde.errors import StoreUnavailable
    from garde.monitor.store.postgres import PostgresStore

    schema = f"garde_monitor_{uuid.uuid4().hex[:12]}"
    try:
        store = PostgresStore(PG_URL, schema=schema)
    except StoreUnavailable as exc:
        if os.environ.get("GARDE_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable ({exc}); start it or set GARDE_TEST_POSTGRES")
    try:
        yield store
    finally:
        store.drop_schema()
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        from garde.monitor.store.sqlite import SqliteStore

        s = SqliteStore(tmp_path / "monitor.sqlite")
        try:
            yield s
        finally:
            s.close()
    else:
        yield from postgres_store()
