"""Recovery: no attempts wasted on a service that answers nothing, and no waiting once it is
back (the journal drained minutes late after an outage: every entry had backed off)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from garde.journal.replayer import Replayer, ReplayPolicy

from .conftest import Backend, run
from .fakes import FakeUpstream
from .test_replayer import quiet, sub


def test_a_silent_service_is_held_and_everything_goes_once_it_answers(tmp_path: Path) -> None:
    """During a long outage the replayer tries one entry now and then, not every entry with a
    doubling back-off; when the service answers again all 300 go at once, each exactly once."""

    async def body(backend: Backend) -> None:
        upstream = FakeUpstream(down={"recipe-executor"})
        policy = ReplayPolicy(poll_interval=0.02, backoff=0.02, probe_max=0.1, backoff_max=300)
        async with backend.open() as journal:
            for n in range(300):
                await journal.accept(sub(n, f"K{n}"))
            replayer = Replayer(journal, upstream, lambda s: True, quiet, policy=policy)
            task = asyncio.create_task(replayer.run())
            await asyncio.sleep(1.5)  # the outage goes on: 15 holds of 0.1 s at most
            during = upstream.sends
            # One round of the slots in flight, then one trial per hold (0.02, 0.04, 0.08,
            # then 0.1 s): not 300 entries each tried with a back-off of its own.
            assert during <= policy.concurrency + 20, during
            upstream.down.clear()
            back = time.monotonic()
            while await journal.depth() and time.monotonic() - back < 10:
                await asyncio.sleep(0.02)
            drained = time.monotonic() - back
            replayer.stop()
            await task
            assert await journal.depth() == 0
            # Nothing waited out an entry back-off earned during the outage (which would be
            # seconds to minutes after 1.5 s of doubling): the next trial found it back.
            assert drained < 2.0, drained
        assert len(upstream.effects) == 300
        assert upstream.duplicates() == []

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_a_service_the_health_view_says_is_down_gets_no_attempt(tmp_path: Path) -> None:
    """Not one attempt while the gateway's health view says no data center can serve; the
    moment it says one can, the entries go."""

    async def body(backend: Backend) -> None:
        upstream = FakeUpstream()
        ready = {"recipe-executor": False}
        policy = ReplayPolicy(poll_interval=0.02, backoff=0.02)
        async with backend.open() as journal:
            for n in range(50):
                await journal.accept(sub(n, f"K{n}"))
            replayer = Replayer(journal, upstream, ready.__getitem__, quiet, policy=policy)
            task = asyncio.create_task(replayer.run())
            await asyncio.sleep(0.5)
            assert upstream.sends == 0
            ready["recipe-executor"] = True
            back = time.monotonic()
            while await journal.depth() and time.monotonic() - back < 10:
                await asyncio.sleep(0.02)
            replayer.stop()
            await task
            assert await journal.depth() == 0
        assert upstream.sends == 50

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))
