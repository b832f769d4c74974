"""Several gateway worker processes share one SQLite journal file."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from garde.journal.base import Submission
from garde.journal.sealing import Keyring
from garde.journal.sqlite import SqliteJournal

from .conftest import keyring, run

pytestmark = pytest.mark.e2e


def _accept_many(path: str, worker: int, count: int, key: bytes) -> None:
    async def main() -> None:
        journal = await SqliteJournal.open(Path(path), Keyring({"k1": key}, "k1"))
        try:
            await asyncio.gather(
                *(
                    journal.accept(
                        Submission(
                            "ehbox-publication",
                            "sendMessage",
                            "1",
                            None,
                            f"w{worker}-{n}",
                            None,
                            b"m",
                        )
                    )
                    for n in range(count)
                )
            )
        finally:
            await journal.close()

    asyncio.run(main())


def test_worker_processes_share_the_file_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    ring = keyring("k1")

    async def create() -> None:
        journal = await SqliteJournal.open(path, ring)
        await journal.close()

    run(create())
    key = (("k1" * 32).encode())[:32]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_accept_many, args=(str(path), w, 400, key)) for w in range(3)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0

    async def check() -> None:
        journal = await SqliteJournal.open(path, ring)
        try:
            assert await journal.depth("ehbox-publication") == 1200
            views = [v async for v in journal.export()]
            assert sorted(v.idempotency_key for v in views) == sorted(
                f"w{w}-{n}" for w in range(3) for n in range(400)
            )
            assert all(v.problem is None for v in views)
        finally:
            await journal.close()

    run(check())
