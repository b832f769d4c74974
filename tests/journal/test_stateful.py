"""Any interleaving of accepts, leases, sends, crashes, restarts, lease expiry and upstream
failures keeps per-key order and applies each accepted entry at most once upstream; once the
upstream is healthy and the journal drained, exactly once.

Model of time: a replayer sends only while its lease is valid (the real replayer's
``send_timeout`` is well under ``lease_seconds``); a crash loses its leases and in-memory
state, never what was committed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from garde.journal.base import Delivery, JournalStore, Leased, Outcome, Submission
from garde.journal.replayer import Replayer, ReplayPolicy

from .conftest import PG_URL, FakeClock, keyring, postgres_reachable
from .fakes import FakeUpstream

SERVICE = "recipe-executor"
KEYS = ["A", "B", "C", None]
OWNERS = ["one", "two"]
LEASE = 30.0


class JournalMachine(RuleBasedStateMachine):
    kind = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.upstream = FakeUpstream()
        self.ring = keyring("k1")
        self.tmp = tempfile.mkdtemp(prefix="garde-stateful-")
        self.schema = f"garde_test_{secrets.token_hex(6)}"
        self.accepted: list[Submission] = []
        self.ids: dict[str, str] = {}
        self.journals: dict[str, JournalStore] = {}
        self.leases: dict[str, list[Leased]] = {o: [] for o in OWNERS}
        self.sent: dict[str, list[tuple[Leased, Delivery]]] = {o: [] for o in OWNERS}
        for owner in OWNERS:
            self.journals[owner] = self._open()

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _open(self) -> JournalStore:
        if self.kind == "sqlite":
            from garde.journal.sqlite import SqliteJournal

            opened: Any = SqliteJournal.open(Path(self.tmp) / "j.db", self.ring, clock=self.clock)
        else:
            from garde.journal.postgres import PostgresJournal

            opened = PostgresJournal.open(
                PG_URL, self.ring, schema=self.schema, clock=self.clock, max_size=2
            )
        journal: JournalStore = self._run(opened)
        return journal

    # -- rules ----------------------------------------------------------------------------

    @initialize(keys=st.lists(st.sampled_from(KEYS), min_size=2, max_size=8))
    def some_writes(self, keys: list[str | None]) -> None:
        for n, key in enumerate(keys):
            self.accept(key, OWNERS[n % 2])

    @rule(
        owner=st.sampled_from(OWNERS),
        limit=st.integers(1, 4),
        plan=st.lists(st.sampled_from(["ok", "unrecorded", "glitch", "hold"]), max_size=4),
    )
    def replay_step(self, owner: str, limit: int, plan: list[str]) -> None:
        """A replayer leases some heads; for each: sent and recorded, sent but the process
        stops before recording (``unrecorded``), lost on the way (``glitch``), or still in
        flight (``hold``: later rules send or settle it, possibly after its lease ran out)."""
        journal = self.journals[owner]
        got = self._run(journal.lease(owner, [SERVICE], limit, LEASE))
        for entry, action in zip(got, plan + ["ok"] * len(got), strict=False):
            if action == "hold":
                self.leases[owner].append(entry)
                continue
            if action == "glitch":
                delivery = Delivery(Outcome.RETRY_LATER, reason="connection reset")
            else:
                delivery = self._run(self.upstream.send(entry.submission))
            if action != "unrecorded":
                retry_at = self.clock.now + 5 if delivery.outcome is Outcome.RETRY_LATER else None
                self._run(journal.settle(entry, delivery, retry_at))

    @rule(key=st.sampled_from(KEYS), via=st.sampled_from(OWNERS))
    def accept(self, key: str | None, via: str) -> None:
        n = len(self.accepted)
        submission = Submission(
            SERVICE, "markAsDelivered", "12345678901", "pharmacist", f"i{n}", key, b"<x/>"
        )
        receipt = self._run(self.journals[via].accept(submission))
        self.accepted.append(submission)
        self.ids[submission.idempotency_key] = receipt.id

    @precondition(lambda self: bool(self.accepted))
    @rule(data=st.data(), via=st.sampled_from(OWNERS))
    def accept_again(self, data: st.DataObject, via: str) -> None:
        """The care software retries with the same Idempotency-Key: same receipt."""
        submission = data.draw(st.sampled_from(self.accepted))
        receipt = self._run(self.journals[via].accept(submission))
        assert receipt.id == self.ids[submission.idempotency_key]

    @rule(owner=st.sampled_from(OWNERS), limit=st.integers(1, 4))
    def lease(self, owner: str, limit: int) -> None:
        got = self._run(self.journals[owner].lease(owner, [SERVICE], limit, LEASE))
        self.leases[owner] += got

    @precondition(lambda self: any(self.leases.values()))
    @rule(data=st.data(), glitch=st.booleans())
    def send(self, data: st.DataObject, glitch: bool) -> None:
        """Send one leased entry (any of them: sends race); ``glitch``: that one request
        fails on the way (a reset), without reaching the service."""
        owner = data.draw(st.sampled_from([o for o in OWNERS if self.leases[o]]))
        entry = self.leases[owner].pop(data.draw(st.integers(0, len(self.leases[owner]) - 1)))
        if self.clock.now >= entry.lease_until:
            return  # the real replayer gave up on it (send_timeout < lease): not sent
        if glitch:
            delivery = Delivery(Outcome.RETRY_LATER, reason="connection reset")
        else:
            delivery = self._run(self.upstream.send(entry.submission))
        self.sent[owner].append((entry, delivery))

    @precondition(lambda self: any(self.sent.values()))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from([o for o in OWNERS if self.sent[o]]))
        entry, delivery = self.sent[owner].pop(data.draw(st.integers(0, len(self.sent[owner]) - 1)))
        retry_at = self.clock.now + 5 if delivery.outcome is Outcome.RETRY_LATER else None
        self._run(self.journals[owner].settle(entry, delivery, retry_at))

    @rule(owner=st.sampled_from(OWNERS))
    def crash_and_restart(self, owner: str) -> None:
        """Leases and sends in flight are lost with the process; the journal file is not."""
        self.leases[owner] = []
        self.sent[owner] = []
        self._run(self.journals[owner].close())
        self.journals[owner] = self._open()

    @rule(seconds=st.sampled_from([1.0, 6.0, 31.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(down=st.booleans())
    def upstream_fails_or_heals(self, down: bool) -> None:
        self.upstream.down = {SERVICE} if down else set()

    # -- what must always hold --------------------------------------------------------------

    @invariant()
    def applied_at_most_once_and_in_order(self) -> None:
        assert self.upstream.duplicates() == []
        order = {s.idempotency_key: n for n, s in enumerate(self.accepted)}
        for key, applied in self.upstream.by_key.items():
            if key is None:
                continue
            positions = [order[i] for i in applied]
            assert positions == sorted(positions), f"key {key} applied out of order: {applied}"
            expected = [s.idempotency_key for s in self.accepted if s.ordering_key == key]
            assert applied == expected[: len(applied)], f"key {key} skipped an entry"

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            for journal in self.journals.values():
                self._run(journal.close())
            if self.kind == "postgres":
                import psycopg

                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _drain_and_check(self) -> None:
        # The service comes back for good; leases of the dead run out; a replayer drains.
        self.upstream.down = set()
        self.clock.advance(LEASE + 300)
        replayer = Replayer(
            self.journals["one"],
            self.upstream,
            lambda s: True,
            lambda s, o, g: "expired",
            policy=ReplayPolicy(concurrency=3),
            clock=self.clock,
        )
        for _ in range(len(self.accepted) + 2):
            self._run(replayer.drain())
            if self._run(self.journals["one"].depth()) == 0:
                break
            self.clock.advance(400)
        assert self._run(self.journals["one"].depth()) == 0
        applied = sorted(s.idempotency_key for s in self.upstream.effects)
        assert applied == sorted(s.idempotency_key for s in self.accepted)
        assert self.upstream.duplicates() == []
        self.applied_at_most_once_and_in_order()


SETTINGS = settings(
    max_examples=int(os.environ.get("GARDE_STATEFUL_EXAMPLES", "40")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestJournalSqlite = JournalMachine.TestCase
TestJournalSqlite.settings = SETTINGS


class PostgresMachine(JournalMachine):
    kind = "postgres"


@pytest.mark.postgres
class TestJournalPostgres(PostgresMachine.TestCase):  # type: ignore[misc,valid-type]
    settings = settings(SETTINGS, max_examples=15)

    def setUp(self) -> None:
        problem = postgres_reachable()
        if problem is not None:
            if os.environ.get("GARDE_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"PostgreSQL required (GARDE_REQUIRE_POSTGRES=1) but: {problem}")
            pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({problem})")
