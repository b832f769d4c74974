"""Fixtures of the journal suite: every backend test runs on SQLite and on PostgreSQL.

PostgreSQL is the real server on 127.0.0.1:5432; each test gets its own schema, dropped at
the end. Unreachable: the PostgreSQL cases skip, saying how to enable them, unless
GARDE_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from garde.journal.base import JournalStore
from garde.journal.sealing import Keyring

T = TypeVar("T")
PG_URL = os.environ.get("GARDE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


class FakeClock:
    """A clock tests move by hand: leases, back-offs and deadlines without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def keyring(*ids: str) -> Keyring:
    keys = {i: (i * 32).encode()[:32].ljust(32, b"k") for i in ids}
    return Keyring(keys, ids[-1])


def postgres_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Backend:
    """Opens journals of one kind on one shared location (the same file, the same schema)."""

    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind
        self.location = location

    @asynccontextmanager
    async def open(
        self, ring: Keyring | None = None, clock: Callable[[], float] | None = None, **extra: Any
    ) -> AsyncIterator[JournalStore]:
        options: dict[str, Any] = dict(extra)
        if clock is not None:
            options["clock"] = clock
        ring = ring or keyring("k1")
        if self.kind == "sqlite":
            from garde.journal.sqlite import SqliteJournal

            journal: Any = await SqliteJournal.open(Path(self.location), ring, **options)
        else:
            from garde.journal.postgres import PostgresJournal

            journal = await PostgresJournal.open(PG_URL, ring, schema=self.location, **options)
        try:
            yield journal
        finally:
            await journal.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "journal.db"))
        return
    problem = postgres_reachable()
    if problem is not None:
        if os.environ.get("GARDE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (GARDE_REQUIRE_POSTGRES=1) but: {problem}")
        pytest.skip(
            f"PostgreSQL not reachable at {PG_URL} ({problem}); start it or set"
            " GARDE_TEST_POSTGRES to a server to run these"
        )
    schema = f"garde_test_{secrets.token_hex(6)}"
    yield Backend("postgres", schema)
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
