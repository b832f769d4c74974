"""The replayer against an in-process upstream: order, idempotency, pacing, deadlines."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from garde.catalog import Catalog
from garde.journal.base import Delivery, State, Submission
from garde.journal.replayer import Replayer, ReplayPolicy, TokenBucket, describer

from .conftest import Backend, FakeClock, run
from .fakes import FakeUpstream


def sub(n: int, key: str | None, service: str = "recipe-executor", **kw: Any) -> Submission:
    return Submission(
        service=service,
        operation=kw.pop("operation", "markAsDelivered"),
        identity="12345678901",
        target_group=kw.pop("target_group", "pharmacist"),
        idempotency_key=f"idem-{n}",
        ordering_key=key,
        payload=b"<x/>",
        **kw,
    )


def quiet(_: str, __: str, ___: str | None) -> str:
    return "expired"


def test_replay_delivers_everything_once_in_order_per_key(backend: Backend) -> None:
    async def body() -> None:
        upstream = FakeUpstream()
        async with backend.open() as journal:
            for n in range(120):
                await journal.accept(sub(n, f"K{n % 12}"))
            policy = ReplayPolicy(concurrency=5)
            stats = await Replayer(journal, upstream, lambda s: True, quiet, policy=policy).drain()
            assert stats.delivered == 120
            assert await journal.depth() == 0
        assert upstream.duplicates() == []
        assert len(upstream.effects) == 120
        for k in range(12):
            expected = [f"idem-{n}" for n in range(120) if n % 12 == k]
            assert upstream.by_key[f"K{k}"] == expected
        assert 1 < upstream.max_in_flight <= 5

    run(body())


def test_nothing_is_sent_to_a_service_that_is_not_ready(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        upstream = FakeUpstream()
        ready = {"recipe-executor": False, "eattest": True}
        async with backend.open() as journal:
            await journal.accept(sub(1, "A"))
            await journal.accept(sub(2, "B", service="eattest", operation="sendAttestation"))
            replayer = Replayer(journal, upstream, ready.__getitem__, quiet)
            await replayer.drain()
            assert [s.service for s in upstream.effects] == ["eattest"]
            ready["recipe-executor"] = True
            replayer.poke()
            await replayer.drain()
            assert len(upstream.effects) == 2

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_a_conflict_holds_its_key_and_not_the_others(backend: Backend) -> None:
    async def body() -> None:
        upstream = FakeUpstream(refuse={"idem-0": "RID_REVOKED: the prescription was revoked"})
        async with backend.open() as journal:
            for n in range(6):
                await journal.accept(sub(n, "A" if n % 2 == 0 else "B"))
            stats = await Replayer(journal, upstream, lambda s: True, quiet).drain()
            assert stats.conflicts == 1
            assert upstream.by_key["B"] == ["idem-1", "idem-3", "idem-5"]
            assert upstream.by_key["A"] == []
            conflicts = await journal.receipts(state=State.CONFLICT)
            assert [r.reason for r in conflicts] == ["RID_REVOKED: the prescription was revoked"]
            assert await journal.depth() == 2
            # The operator discards the refused one: the rest of its key goes, in order.
            await journal.discard(conflicts[0].id, "revoked by the GP", who="ops")
            await Replayer(journal, upstream, lambda s: True, quiet).drain()
            assert upstream.by_key["A"] == ["idem-2", "idem-4"]

    run(body())


def test_retry_after_pauses_the_whole_service_then_paces_it(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        clock = FakeClock()
        upstream = FakeUpstream(down={"recipe-executor"}, retry_after=30)
        async with backend.open(clock=clock) as journal:
            for n in range(20):
                await journal.accept(sub(n, f"K{n}"))
            policy = ReplayPolicy(concurrency=4)
            replayer = Replayer(
                journal, upstream, lambda s: True, quiet, policy=policy, clock=clock
            )
            await replayer.drain()
            assert upstream.sends <= 4  # one round, then the service asked for room
            waiting = await journal.receipts(state=State.JOURNALED)
            assert len(waiting) == 20
            assert {r.last_error for r in waiting if r.attempts} == {"429"}
            upstream.down.clear()
            clock.advance(29)
            await replayer.drain()
            assert upstream.effects == [], "Retry-After is a minimum"
            clock.advance(17)  # past the pause, spread by up to half as much again
            # Then paced, as an overloaded service should be: one entry a second at first,
            # more each second as deliveries succeed, until the pace is lifted.
            per_second = []
            while len(upstream.effects) < 20 and len(per_second) < 30:
                before = len(upstream.effects)
                await replayer.drain()
                per_second.append(len(upstream.effects) - before)
                clock.advance(1)
            assert per_second[:2] == [1, 1], per_second
            assert len(upstream.effects) == 20 and max(per_second) >= 3, per_second

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_a_recovering_service_is_replayed_after_a_random_delay(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        clock = FakeClock()
        upstream = FakeUpstream()
        ready = {"recipe-executor": False}
        async with backend.open(clock=clock) as journal:
            await journal.accept(sub(1, "A"))
            policy = ReplayPolicy(start_jitter=60)
            replayer = Replayer(
                journal,
                upstream,
                ready.__getitem__,
                quiet,
                policy=policy,
                clock=clock,
                rng=random.Random(7),
            )
            await replayer.drain()
            ready["recipe-executor"] = True
            await replayer.drain()
            assert upstream.sends == 0
            clock.advance(61)
            replayer.poke()
            await replayer.drain()
            assert upstream.sends == 1

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_an_eattest_past_its_day_expires_with_the_paper_certificate(
    backend: Backend, belgium: Catalog
) -> None:
    async def body() -> None:
        clock = FakeClock()
        upstream = FakeUpstream()
        async with backend.open(clock=clock) as journal:
            entry = await journal.accept(
                sub(
                    1,
                    "85073003328",
                    service="eattest",
                    operation="sendAttestation",
                    target_group="gp",
                    deadline=clock.now + 3600,
                )
            )
            clock.advance(3601)
            replayer = Replayer(journal, upstream, lambda s: True, describer(belgium), clock=clock)
            stats = await replayer.drain()
            assert stats.expired == 1
            assert upstream.sends == 0
            receipt = await journal.receipt(entry.id)
            assert receipt.state is State.EXPIRED
            assert receipt.reason is not None
            assert "paper certificate of care" in receipt.reason

    run(body())


def test_token_bucket_paces_and_saves_up_to_its_burst() -> None:
    clock = FakeClock(0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert bucket.take(100) == 5
    assert bucket.take(1) == 0
    assert round(bucket.wait_time(), 3) == 0.1
    clock.advance(0.35)
    assert bucket.take(100) == 3
    clock.advance(100)
    assert bucket.take(100) == 5


def test_paced_replay_sends_no_more_than_the_rate_allows(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        upstream = FakeUpstream()
        async with backend.open() as journal:
            for n in range(50):
                await journal.accept(sub(n, None))
            policy = ReplayPolicy(rate=0.001, burst=10, concurrency=50)
            await Replayer(journal, upstream, lambda s: True, quiet, policy=policy).drain()
            assert len(upstream.effects) == 10
            assert await journal.depth() == 40

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_a_sender_that_hangs_does_not_hold_the_lease_forever(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        upstream = FakeUpstream(gate=asyncio.Event())
        async with backend.open() as journal:
            entry = await journal.accept(sub(1, "A"))
            policy = ReplayPolicy(send_timeout=0.05, backoff=1000)
            stats = await Replayer(journal, upstream, lambda s: True, quiet, policy=policy).drain()
            assert stats.retried == 1
            receipt = await journal.receipt(entry.id)
            assert receipt.state is State.JOURNALED
            assert receipt.last_error == "no answer in time"

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


class _Stubborn(FakeUpstream):
    """A sender that ignores being cancelled and answers anyway, a little later."""

    async def send(self, submission: Submission) -> Delivery:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
        return self._apply(submission)


def test_a_sender_that_ignores_the_guard_is_recorded_as_it_answered(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        upstream = _Stubborn()
        async with backend.open() as journal:
            entry = await journal.accept(sub(1, "A"))
            policy = ReplayPolicy(send_timeout=0.05)
            stats = await Replayer(journal, upstream, lambda s: True, quiet, policy=policy).drain()
            # Its answer stands, and the settle after it is not cancelled in turn.
            assert (stats.delivered, stats.retried) == (1, 0)
            assert (await journal.receipt(entry.id)).state is State.DELIVERED

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_a_delivery_cancelled_from_outside_is_not_taken_for_a_slow_send(tmp_path: Path) -> None:
    async def body(backend: Backend) -> None:
        upstream = FakeUpstream(gate=asyncio.Event())
        async with backend.open() as journal:
            entry = await journal.accept(sub(1, "A"))
            replayer = Replayer(
                journal, upstream, lambda s: True, quiet, policy=ReplayPolicy(send_timeout=30)
            )
            drain = asyncio.create_task(replayer.drain())
            while not upstream.in_flight:
                await asyncio.sleep(0.001)
            (delivery,) = replayer._in_flight
            delivery.cancel()  # as a stopping gateway's cancellation reaches it
            stats = await drain
            assert delivery.cancelled()
            assert (stats.delivered, stats.retried) == (0, 0)
            # Not settled: the lease runs out and the entry is sent again, same key.
            assert (await journal.receipt(entry.id)).state is State.DELIVERING

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))


def test_accepted_writes_during_an_outage_cost_no_journal_read_each(tmp_path: Path) -> None:
    """The gateway tells the replayer of every accepted write: for a service already known
    to have work, that wakes the loop, and asks the journal nothing (it was a read and a
    thread hop per write while every data center was down). A write of a service the
    replayer did not know to have work is still seen at once, and so is a known one that
    may be sent now, without waiting for the next poll."""

    async def body(backend: Backend) -> None:
        upstream = FakeUpstream()
        ready = {"recipe-executor": False, "eattest": True}
        async with backend.open() as journal:
            looks = 0
            pending = journal.pending_services

            async def counted() -> list[str]:
                nonlocal looks
                looks += 1
                return await pending()

            journal.pending_services = counted  # type: ignore[method-assign]
            await journal.accept(sub(0, "K0"))
            policy = ReplayPolicy(poll_interval=30.0)  # no poll during the test
            replayer = Replayer(journal, upstream, ready.__getitem__, quiet, policy=policy)
            task = asyncio.create_task(replayer.run())
            for n in range(1, 301):
                await journal.accept(sub(n, f"K{n % 7}"))
                replayer.journaled("recipe-executor")
                await asyncio.sleep(0)
            assert looks == 1, "one look at which services have work, not one per write"
            assert upstream.effects == []

            await journal.accept(sub(301, "E", service="eattest", operation="sendAttestation"))
            replayer.journaled("eattest")
            for _ in range(200):
                if upstream.effects:
                    break
                await asyncio.sleep(0.01)
            assert [s.service for s in upstream.effects] == ["eattest"]

            ready["recipe-executor"] = True
            await journal.accept(sub(302, "K0"))
            replayer.journaled("recipe-executor")
            for _ in range(500):
                if len(upstream.effects) == 303:
                    break
                await asyncio.sleep(0.01)
            assert len(upstream.effects) == 303
            replayer.stop()
            await task

    run(body(Backend("sqlite", str(tmp_path / "j.db"))))
