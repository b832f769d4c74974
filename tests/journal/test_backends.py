"""One suite, both backends: what every journal must do (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garde.errors import EntryNotFound, JournalUnavailable, UsageError
from garde.journal.base import (
    Answer,
    CallerToken,
    Delivery,
    Journal,
    JournalStore,
    Outcome,
    State,
    Submission,
)
from garde.journal.sealing import Keyring

from .conftest import Backend, FakeClock, keyring, run


def sub(n: int, key: str | None = "RID000000001", service: str = "recipe-executor", **kw: Any):
    return Submission(
        service=service,
        operation=kw.pop("operation", "markAsDelivered"),
        identity=kw.pop("identity", "12345678901"),
        target_group=kw.pop("target_group", "pharmacist"),
        idempotency_key=kw.pop("idempotency_key", f"idem-{n}"),
        ordering_key=key,
        payload=kw.pop("payload", f"<MarkAsDeliveredRequest n='{n}'/>".encode()),
        headers=(("Content-Type", "text/xml"),),
        **kw,
    )


OK = Delivery(Outcome.DELIVERED, Answer(200, b"<ok/>"))


def test_backends_implement_the_seams(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            assert isinstance(journal, Journal)
            assert isinstance(journal, JournalStore)

    run(body())


def test_accept_is_durable_and_answers_a_receipt(backend: Backend) -> None:
    """An accepted entry survives closing the journal and has a journaled receipt."""

    async def body() -> None:
        async with backend.open() as journal:
            receipt = await journal.accept(sub(1))
            assert receipt.state is State.JOURNALED
            assert await journal.depth() == 1
            assert await journal.depth("recipe-executor") == 1
            assert await journal.depth("eattest") == 0
        async with backend.open() as journal:
            again = await journal.receipt(receipt.id)
            assert again.state is State.JOURNALED
            assert again.extra["target_group"] == "pharmacist"
            with pytest.raises(EntryNotFound):
                await journal.receipt("r-unknown")

    run(body())


def test_same_idempotency_key_is_one_entry(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            first, second = await asyncio.gather(journal.accept(sub(1)), journal.accept(sub(1)))
            third = await journal.accept(sub(1))
            assert first.id == second.id == third.id
            assert await journal.depth() == 1
            other_op = await journal.accept(sub(1, operation="markAsUnDelivered"))
            assert other_op.id != first.id

    run(body())


def test_many_concurrent_accepts_all_land_readable_in_order(backend: Backend) -> None:
    """Hundreds of accepts at once (one group commit, inserted in multi-row chunks on
    SQLite), one repeated key among them: each stored once and readable. (Concurrent
    accepts have no order among themselves; the journal's order is the order listed.)"""

    async def body() -> None:
        async with backend.open() as journal:
            subs = [sub(n, f"K{n % 7}") for n in range(347)]
            receipts = await asyncio.gather(*(journal.accept(s) for s in [*subs, subs[100]]))
            assert receipts[-1].id == receipts[100].id
            assert len({r.id for r in receipts}) == 347
            assert await journal.depth() == 347
            listed = await journal.receipts(limit=1000)
            assert sorted(r.id for r in listed) == sorted(r.id for r in receipts[:347])
            views = [v async for v in journal.export()]
            assert [v.receipt.id for v in views] == [r.id for r in listed]
            assert sorted(v.submission.payload for v in views if v.submission) == sorted(
                s.payload for s in subs
            )

    run(body())


def test_two_instances_accepting_the_same_keys_at_once_make_one_entry_each(
    backend: Backend,
) -> None:
    """Two gateways on one journal (group commits racing): one entry per idempotency key,
    and both are told the same receipt."""

    async def body() -> None:
        async with backend.open() as one, backend.open() as two:
            for round_ in range(5):
                subs = [sub(n, f"K{n % 5}", idempotency_key=f"{round_}-{n}") for n in range(300)]
                mine, theirs = await asyncio.gather(
                    asyncio.gather(*(one.accept(s) for s in subs)),
                    asyncio.gather(*(two.accept(s) for s in reversed(subs))),
                )
                assert [r.id for r in mine] == [r.id for r in reversed(theirs)]
            assert await one.depth() == 1500

    run(body())


def test_only_the_head_of_each_key_is_leased(backend: Backend) -> None:
    """Order per key: the second entry of a key waits until the first is settled."""

    async def body() -> None:
        async with backend.open() as journal:
            a1 = await journal.accept(sub(1, "A"))
            a2 = await journal.accept(sub(2, "A"))
            b1 = await journal.accept(sub(3, "B"))
            free = await journal.accept(sub(4, None))
            leased = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert [e.id for e in leased] == [a1.id, b1.id, free.id]
            assert all(e.attempts == 1 for e in leased)
            assert await journal.lease("me", ["recipe-executor"], 10, 30) == []
            delivered = await journal.settle(leased[0], OK)
            assert delivered is not None
            assert delivered.state is State.DELIVERED
            assert delivered.answer == Answer(200, b"<ok/>")
            nxt = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert [e.id for e in nxt] == [a2.id]
            assert nxt[0].submission == sub(2, "A")
            assert await journal.lease("me", ["eattest"], 10, 30) == []

    run(body())


def test_a_conflict_holds_its_key_until_an_operator_decides(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            a1 = await journal.accept(sub(1, "A"))
            a2 = await journal.accept(sub(2, "A"))
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            refused = Delivery(Outcome.CONFLICT, Answer(500, b"<fault/>"), "RID_REVOKED: revoked")
            conflict = await journal.settle(head, refused)
            assert conflict is not None
            assert conflict.state is State.CONFLICT
            assert conflict.reason == "RID_REVOKED: revoked"
            assert await journal.lease("me", ["recipe-executor"], 10, 30) == []
            again = await journal.retry(a1.id, who="ops@site")
            assert again.state is State.JOURNALED
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert head.id == a1.id
            assert head.attempts == 2
            await journal.settle(head, refused)
            with pytest.raises(UsageError, match="reason"):
                await journal.discard(a1.id, "  ", who="ops@site")
            gone = await journal.discard(a1.id, "delivered on paper", who="ops@site")
            assert gone.state is State.DISCARDED
            assert gone.reason == "discarded by ops@site: delivered on paper"
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert head.id == a2.id
            log = await journal.audit_log()
            assert [(r.action, r.who, r.entry_id) for r in log][:2] == [
                ("discard", "ops@site", a1.id),
                ("retry", "ops@site", a1.id),
            ] or sorted(r.action for r in log) == ["discard", "retry"]

    run(body())


def test_operator_actions_refuse_the_wrong_state(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            a1 = await journal.accept(sub(1))
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            with pytest.raises(UsageError, match="delivering"):
                await journal.discard(a1.id, "why", who="ops")
            await journal.settle(head, OK)
            with pytest.raises(UsageError, match="delivered"):
                await journal.retry(a1.id, who="ops")
            with pytest.raises(EntryNotFound):
                await journal.discard("r-nope", "why", who="ops")
            assert (await journal.receipt(a1.id)).state is State.DELIVERED

    run(body())


def test_retry_later_waits_for_its_time(backend: Backend) -> None:
    async def body() -> None:
        clock = FakeClock()
        async with backend.open(clock=clock) as journal:
            await journal.accept(sub(1))
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            later = Delivery(Outcome.RETRY_LATER, reason="503 Service Unavailable")
            receipt = await journal.settle(head, later, retry_at=clock.now + 60)
            assert receipt is not None
            assert receipt.state is State.JOURNALED
            assert receipt.last_error == "503 Service Unavailable"
            assert await journal.lease("me", ["recipe-executor"], 10, 30) == []
            clock.advance(61)
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert head.attempts == 2

    run(body())


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_settle(backend: Backend) -> None:
    async def body() -> None:
        clock = FakeClock()
        async with backend.open(clock=clock) as one, backend.open(clock=clock) as two:
            await one.accept(sub(1))
            (mine,) = await one.lease("one", ["recipe-executor"], 10, 30)
            assert await two.lease("two", ["recipe-executor"], 10, 30) == []
            clock.advance(31)
            (theirs,) = await two.lease("two", ["recipe-executor"], 10, 30)
            assert theirs.id == mine.id
            assert await one.settle(mine, OK) is None
            done = await two.settle(theirs, OK)
            assert done is not None
            assert done.state is State.DELIVERED
            assert done.attempts == 2

    run(body())


def test_many_settles_at_once_each_learn_whether_their_lease_held(backend: Backend) -> None:
    """Settles that meet in one commit (one update per outcome on SQLite), two of them on
    leases taken over meanwhile: those two change nothing and learn it, the others land."""

    async def body() -> None:
        clock = FakeClock()
        async with backend.open(clock=clock) as journal:
            for n in range(12):
                await journal.accept(sub(n, f"K{n}"))
            mine = await journal.lease("one", ["recipe-executor"], 12, 30)
            assert len(mine) == 12
            assert len({e.lease_token for e in mine}) == 12
            clock.advance(31)
            theirs = await journal.lease("two", ["recipe-executor"], 2, 30)
            assert [e.id for e in theirs] == [e.id for e in mine[:2]]
            conflict = Delivery(Outcome.CONFLICT, Answer(500, b"<f/>"), reason="revoked")
            later = Delivery(Outcome.RETRY_LATER, reason="HTTP 503", retry_after=5)
            outcomes = [OK] * 4 + [conflict] * 4 + [later] * 4
            done = await asyncio.gather(
                *(journal.settle(e, d, clock() + 5) for e, d in zip(mine, outcomes, strict=True))
            )
            assert done[:2] == [None, None]
            states = [r.state if r else None for r in done]
            assert (
                states[2:] == [State.DELIVERED] * 2 + [State.CONFLICT] * 4 + [State.JOURNALED] * 4
            )
            stored = [await journal.receipt(e.id) for e in mine]
            assert [r.state for r in stored] == [State.DELIVERING] * 2 + states[2:]
            assert stored[2].answer == OK.answer
            assert stored[4].reason == "revoked"
            assert stored[4].answer is not None and stored[4].answer.body == b"<f/>"
            assert stored[8].last_error == "HTTP 503"
            assert stored[8].attempts == 1
            assert [e.id for e in await journal.lease("one", ["recipe-executor"], 12, 30)] == []
            clock.advance(5)
            again = await journal.lease("one", ["recipe-executor"], 12, 30)
            assert sorted(e.id for e in again) == sorted(e.id for e in mine[8:])
            assert await journal.settle(theirs[0], OK) is not None

    run(body())


def test_concurrent_replayers_never_take_the_same_entry(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as one, backend.open() as two:
            for n in range(60):
                await one.accept(sub(n, f"K{n % 20}"))
            seen: list[str] = []
            while True:
                a, b = await asyncio.gather(
                    one.lease("one", ["recipe-executor"], 7, 30),
                    two.lease("two", ["recipe-executor"], 7, 30),
                )
                if not a and not b:
                    break
                ids = [e.id for e in a + b]
                assert len(set(ids)) == len(ids)
                seen += ids
                await asyncio.gather(*(one.settle(e, OK) for e in a + b))
            assert len(seen) == len(set(seen)) == 60

    run(body())


def test_entries_past_their_deadline_expire_with_the_procedure(backend: Backend) -> None:
    async def body() -> None:
        clock = FakeClock()
        async with backend.open(clock=clock) as journal:
            late = await journal.accept(sub(1, "A", deadline=clock.now + 10))
            ok = await journal.accept(sub(2, "B", deadline=clock.now + 1000))
            clock.advance(11)
            expired = await journal.expire(lambda s, o, g: f"{s}.{o} for {g}: paper")
            assert [r.id for r in expired] == [late.id]
            receipt = await journal.receipt(late.id)
            assert receipt.state is State.EXPIRED
            assert receipt.reason == "recipe-executor.markAsDelivered for pharmacist: paper"
            assert (await journal.receipt(ok.id)).state is State.JOURNALED

    run(body())


def _corrupt(journal: Any, entry_id: str) -> Any:
    return journal._write(
        lambda tx: tx.run("UPDATE entries SET deadline = ? WHERE id = ?", (123.0, entry_id))
    )


def test_a_corrupted_entry_is_quarantined_never_delivered(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            a1 = await journal.accept(sub(1, "A"))
            a2 = await journal.accept(sub(2, "A"))
            await _corrupt(journal, a1.id)
            seen: list[Any] = []
            journal.listeners.append(seen.append)
            assert await journal.lease("me", ["recipe-executor"], 10, 30) == []
            receipt = await journal.receipt(a1.id)
            assert receipt.state is State.QUARANTINED
            assert "checksum" in (receipt.reason or "")
            assert [r.state for r in seen] == [State.QUARANTINED]
            with pytest.raises(UsageError, match="unreadable"):
                await journal.retry(a1.id, who="ops")
            await journal.discard(a1.id, "damaged on disk, re-sent by hand", who="ops")
            (head,) = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert head.id == a2.id

    run(body())


def test_payloads_are_encrypted_at_rest_and_keys_rotate(backend: Backend) -> None:
    async def body() -> None:
        secret = b"<Ssin>85073003328</Ssin>"
        async with backend.open(ring=keyring("k1")) as journal:
            old = await journal.accept(sub(1, "A", payload=secret))
            raw = await journal._write(lambda tx: tx.rows("SELECT sealed, key_id FROM entries"))
            assert secret not in bytes(raw[0][0])
            assert raw[0][1] == "k1"
        async with backend.open(ring=keyring("k1", "k2")) as journal:
            new = await journal.accept(sub(2, "B", payload=secret))
            view = await journal.entry(new.id)
            assert view.key_id == "k2"
            assert (await journal.entry(old.id)).submission == sub(1, "A", payload=secret)
        async with backend.open(ring=keyring("k2")) as journal:
            leased = await journal.lease("me", ["recipe-executor"], 10, 30)
            assert [e.id for e in leased] == [new.id]
            receipt = await journal.receipt(old.id)
            assert receipt.state is State.QUARANTINED
            assert "'k1'" in (receipt.reason or "")
        async with backend.open(ring=keyring("k1", "k2")) as journal:
            assert (await journal.retry(old.id, who="ops")).state is State.JOURNALED

    run(body())


def test_clear_storage_is_an_explicit_opt_out(backend: Backend, caplog: Any) -> None:
    async def body() -> None:
        async with backend.open(ring=Keyring.clear()) as journal:
            entry = await journal.accept(sub(1, payload=b"<plain/>"))
            view = await journal.entry(entry.id)
            assert view.key_id is None
            assert view.submission is not None
            assert view.submission.payload == b"<plain/>"

    run(body())
    assert "ENCRYPTION IS OFF" in caplog.text


def test_receipts_list_by_state_and_service(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            await journal.accept(sub(1, "A"))
            await journal.accept(sub(2, "B", service="eattest", operation="sendAttestation"))
            await journal.accept(sub(3, "C"))
            (first, *_) = await journal.lease("me", ["recipe-executor"], 1, 30)
            await journal.settle(first, OK)
            everything = await journal.receipts()
            assert len(everything) == 3
            waiting = await journal.receipts(state=State.JOURNALED)
            assert [r.service for r in waiting] == ["eattest", "recipe-executor"]
            assert len(await journal.receipts(service="eattest")) == 1
            assert len(await journal.receipts(state=State.DELIVERED, service="eattest")) == 0
            page = await journal.receipts(limit=2)
            assert len(page) == 2
            counts = await journal.counts()
            assert counts[("recipe-executor", State.DELIVERED)] == 1
            assert await journal.pending_services() == ["eattest", "recipe-executor"]

    run(body())


def test_export_and_reveal_are_audited(backend: Backend) -> None:
    async def body() -> None:
        async with backend.open() as journal:
            for n in range(3):
                await journal.accept(sub(n))
            views = [v async for v in journal.export()]
            assert [v.idempotency_key for v in views] == ["idem-0", "idem-1", "idem-2"]
            assert await journal.audit_log() == []
            _ = [v async for v in journal.export(reveal_by="ops")]
            await journal.entry(views[0].receipt.id, reveal_by="ops")
            actions = sorted(r.detail for r in await journal.audit_log())
            assert actions == ["export --reveal", "show --reveal"]

    run(body())


def test_the_journal_refuses_when_it_cannot_persist(tmp_path: Any) -> None:
    """Disk full: accept raises JournalUnavailable, so the gateway never acknowledges."""
    from garde.journal.sqlite import SqliteJournal

    async def body() -> None:
        journal = await SqliteJournal.open(tmp_path / "small.db", keyring("k1"), max_pages=16)
        try:
            accepted = 0
            refused: JournalUnavailable | None = None
            for n in range(1000):
                try:
                    await journal.accept(sub(n, payload=b"x" * 2000))
                except JournalUnavailable as exc:
                    refused = exc
                    break
                accepted += 1
            assert refused is not None
            assert "full" in str(refused)
            assert await journal.depth() == accepted
        finally:
            await journal.close()

    run(body())


def test_an_unreachable_database_is_unavailable_not_a_crash() -> None:
    from garde.journal.postgres import PostgresJournal

    async def body() -> None:
        with pytest.raises(JournalUnavailable, match="PostgreSQL"):
            await PostgresJournal.open(
                "postgresql://postgres@127.0.0.1:1/none", keyring("k1"), connect_timeout=1
            )

    run(body())


def test_close_drains_queued_writes(tmp_path: Any) -> None:
    from garde.journal.sqlite import SqliteJournal

    async def body() -> None:
        journal = await SqliteJournal.open(tmp_path / "j.db", keyring("k1"))
        pending = [asyncio.ensure_future(journal.accept(sub(n))) for n in range(200)]
        await asyncio.sleep(0)
        await journal.close()
        results = await asyncio.gather(*pending, return_exceptions=True)
        accepted = [r for r in results if not isinstance(r, BaseException)]
        reopened = await SqliteJournal.open(tmp_path / "j.db", keyring("k1"))
        try:
            assert await reopened.depth() == len(accepted) == 200
        finally:
            await reopened.close()

    run(body())


def test_rekey_seals_everything_with_the_current_key(backend: Backend) -> None:
    """Entries sealed with an old key, or stored in clear, are sealed again with the current
    key (answers too); then the old key can leave the ring. Unreadable ones are reported."""

    async def body() -> None:
        async with backend.open(keyring("k1")) as journal:
            old = await journal.accept(sub(1, "A"))
            (entry,) = await journal.lease("me", ["recipe-executor"], 1, 30)
            await journal.settle(entry, OK)
        async with backend.open(Keyring({}, None)) as journal:
            clear = await journal.accept(sub(2, "B"))
        async with backend.open(keyring("k0")) as journal:
            lost = await journal.accept(sub(3, "C"))
        async with backend.open(keyring("k1", "k2")) as journal:
            report = await journal.rekey("ann")
            assert (report.key_id, report.seen, report.resealed) == ("k2", 3, 2)
            assert [i for i, _ in report.unreadable] == [lost.id]
            assert "'k0'" in report.unreadable[0][1]
            assert (await journal.rekey("ann")).resealed == 0
            audit = await journal.audit_log()
            assert [(a.action, a.who) for a in audit[:2]] == [("rekey", "ann")] * 2
        async with backend.open(keyring("k2")) as journal:
            for receipt in (old, clear):
                view = await journal.entry(receipt.id)
                assert view.problem is None
                assert view.key_id == "k2"
                assert view.submission is not None
            assert (await journal.receipt(old.id)).answer == OK.answer
            (again,) = await journal.lease("me", ["recipe-executor"], 5, 30)
            assert again.id == clear.id
            assert again.submission.payload == sub(2).payload

    run(body())


def test_workers_opening_a_new_journal_at_once_all_start(tmp_path: Any) -> None:
    """SQLite may refuse the switch to WAL at once ("database is locked", no busy wait) when
    several connections make it together on a new file: a gateway worker died at start-up.
    Four opens race on each of many new files; every one must succeed."""
    from garde.journal.sqlite import SqliteJournal

    async def body() -> None:
        for n in range(60):
            path = tmp_path / f"race-{n}.db"
            journals = await asyncio.gather(
                *(SqliteJournal.open(path, keyring("k1")) for _ in range(4))
            )
            for journal in journals:
                await journal.close()

    run(body())


def _caller(subject: str, until: float, mark: str) -> CallerToken:
    security = (
        '<wsse:Security xmlns:wsse="urn:wsse"><wsse:BinarySecurityToken>'
        f"{mark}</wsse:BinarySecurityToken></wsse:Security>"
    ).encode()
    return CallerToken(security, subject, until)


def test_an_entry_waiting_for_a_token_holds_its_key_and_is_released_by_its_subject(
    backend: Backend,
) -> None:
    """needs_token: counted in the depth and the backlog, holds later entries of its key, is
    found by its subject's key only, and a release reseals it with the newer token."""

    async def body() -> None:
        async with backend.open() as journal:
            old = _caller("19012345001", 1000.0, "OLD")
            await journal.accept(sub(1, identity="", caller=old))
            await journal.accept(sub(2, identity="", caller=old))  # same RID: held behind
            await journal.accept(
                sub(3, key="RID-OTHER", identity="", caller=_caller("x", 1.0, "X"))
            )
            leased = await journal.lease("r", ["recipe-executor"], 10, 30)
            assert {e.submission.idempotency_key for e in leased} == {"idem-1", "idem-3"}
            first = next(e for e in leased if e.submission.idempotency_key == "idem-1")
            assert first.submission.caller == old, "the caller's header comes back as sent"
            for entry in leased:
                why = "the caller's own token expired"
                receipt = await journal.settle(entry, Delivery(Outcome.NEEDS_TOKEN, reason=why))
                assert receipt is not None
                assert receipt.state is State.NEEDS_TOKEN
            assert await journal.depth() == 3
            assert await journal.lease("r", ["recipe-executor"], 10, 30) == []
            waiting = await journal.waiting_subjects()
            assert waiting == {journal.subject_key("19012345001"), journal.subject_key("x")}
            backlog = await journal.backlog()
            counts = {g.state: g.count for g in backlog.groups}
            assert counts == {State.NEEDS_TOKEN: 2, State.JOURNALED: 1}
            assert "expired" in backlog.last_errors["recipe-executor"][1]
            new = _caller("19012345001", 2000.0, "NEW")
            released = await journal.release("19012345001", new)
            assert [r.state for r in released] == [State.JOURNALED]
            assert await journal.release("nobody", new) == []
            again = await journal.lease("r", ["recipe-executor"], 10, 30)
            assert [e.submission.idempotency_key for e in again] == ["idem-1"]
            assert again[0].submission.caller == new
            assert await journal.waiting_subjects() == {journal.subject_key("x")}

    run(body())


def test_a_release_goes_in_chunks_and_leaves_nothing_behind(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subject with more waiting entries than one transaction releases gets them all."""
    from garde.journal import ops

    monkeypatch.setattr(ops, "RELEASE_CHUNK", 2)

    async def body() -> None:
        async with backend.open() as journal:
            old = _caller("19012345001", 1000.0, "OLD")
            for n in range(5):
                await journal.accept(sub(n, key=f"RID-{n}", identity="", caller=old))
            for entry in await journal.lease("r", ["recipe-executor"], 10, 30):
                await journal.settle(entry, Delivery(Outcome.NEEDS_TOKEN, reason="expired"))
            released = await journal.release("19012345001", _caller("19012345001", 2e9, "NEW"))
            assert len(released) == 5
            assert await journal.waiting_subjects() == set()

    run(body())


def test_an_older_journal_is_brought_up_to_date_and_a_current_one_is_left_alone(
    backend: Backend,
) -> None:
    """An upgrade opens a journal written before ``subject_key`` existed: the column is
    added and its entries stay deliverable. On PostgreSQL a journal already current runs no
    DDL at start, so a worker starting beside a long write transaction does not wait for it
    (nor make every other writer wait behind its lock request)."""
    if backend.kind == "postgres":
        import psycopg

        from .conftest import PG_URL

        def downgrade() -> None:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'SET search_path = "{backend.location}"')
                conn.execute("DROP INDEX entries_needs_token")
                conn.execute("ALTER TABLE entries DROP COLUMN subject_key")
                conn.execute("DELETE FROM meta WHERE name = 'schema_version'")
    else:
        import sqlite3

        def downgrade() -> None:
            with sqlite3.connect(backend.location) as conn:
                conn.execute("DROP INDEX IF EXISTS entries_needs_token")
                conn.execute("ALTER TABLE entries DROP COLUMN subject_key")

    async def body() -> None:
        async with backend.open() as journal:
            await journal.accept(sub(1))
        downgrade()
        async with backend.open() as journal:
            leased = await journal.lease("r", ["recipe-executor"], 10, 30)
            assert [e.submission.idempotency_key for e in leased] == ["idem-1"]
            assert await journal.waiting_subjects() == set()
        if backend.kind != "postgres":
            return
        import psycopg

        from .conftest import PG_URL

        async def start_and_count() -> int:
            async with backend.open() as journal:
                return await journal.depth()

        with psycopg.connect(PG_URL) as writer:
            writer.execute(f'LOCK TABLE "{backend.location}".entries IN ROW EXCLUSIVE MODE')
            try:
                assert await asyncio.wait_for(start_and_count(), 10) == 1
            finally:
                writer.rollback()  # releases a start that waits, so that the test ends

    run(body())


def test_the_backlog_counts_each_group_with_its_oldest_entry_and_attempts(
    backend: Backend,
) -> None:
    """What the RPO watch and the status page read: per service, operation and state, how
    many entries, since when the oldest waits, how many attempts were spent, the last error."""

    async def body() -> None:
        clock = FakeClock()
        async with backend.open(clock=clock) as journal:
            for n in range(6):
                await journal.accept(sub(n, key=f"RID{n:09d}"))
                clock.now += 10
            await journal.accept(sub(9, key="RIDX", operation="markAsUnDelivered"))
            leased = await journal.lease("r", ["recipe-executor"], 2, 30)
            assert len(leased) == 2
            for entry in leased:
                failed = Delivery(Outcome.RETRY_LATER, reason="dc1 refused the connection")
                await journal.settle(entry, failed, retry_at=clock.now + 60)
            again = await journal.lease("r", ["recipe-executor"], 1, 30, backoff=False)
            assert len(again) == 1
            backlog = await journal.backlog()
            groups = {
                (g.operation, g.state): (g.count, g.oldest, g.attempts) for g in backlog.groups
            }
            start = FakeClock().now
            # idem-0 was tried, failed, and is being sent again; idem-1 was tried once.
            assert again[0].submission.idempotency_key == "idem-0"
            assert groups == {
                ("markAsDelivered", State.JOURNALED): (5, start + 10, 1),
                ("markAsDelivered", State.DELIVERING): (1, start, 2),
                ("markAsUnDelivered", State.JOURNALED): (1, start + 60, 0),
            }
            assert "refused" in backlog.last_errors["recipe-executor"][1]

    run(body())


def test_the_backlog_reads_indexes_only_however_large_the_journal(tmp_path: Any) -> None:
    """The RPO watch reads the backlog every 10 s: on a million entries, reading their rows
    cost seconds of CPU each time. Every query it makes is answered from an index (SQLite's
    plan says so); the attempts and last errors from indexes of tried entries only."""
    import sqlite3

    from garde.journal import sql

    async def create() -> None:
        async with Backend("sqlite", str(tmp_path / "j.db")).open() as journal:
            await journal.accept(sub(1))

    run(create())
    conn = sqlite3.connect(tmp_path / "j.db")
    params: dict[str, tuple[Any, ...]] = {
        "OLDEST_OF": ("recipe-executor", "markAsDelivered", "journaled"),
        "LAST_ERROR_OF": ("recipe-executor", 1.0),
    }
    for name in ("BACKLOG", "OLDEST_OF", "TRIED", "LAST_FAILED", "LAST_ERROR_OF"):
        plan = conn.execute(f"EXPLAIN QUERY PLAN {getattr(sql, name)}", params.get(name, ()))
        steps = [str(row[-1]) for row in plan]
        assert all("INDEX" in step for step in steps if "entries" in step), (name, steps)
        if name != "LAST_ERROR_OF":
            assert any("COVERING INDEX" in s or "entries_failed" in s for s in steps), steps
    conn.close()
