"""The part of a journal backend that does not depend on the database.

A backend only says how to run a read and a write transaction (``_read``/``_write``); this
class turns the shared transactions of ``ops`` into the async ``JournalStore`` API, builds
receipts, and tells listeners (webhooks, metrics) about every change of state.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from garde.errors import UsageError
from garde.journal import ops, sql
from garde.journal.base import (
    AuditRecord,
    Backlog,
    CallerToken,
    Delivery,
    Describe,
    EntryView,
    Leased,
    Outcome,
    Receipt,
    RekeyReport,
    State,
    Submission,
)
from garde.journal.records import (
    Row,
    clip,
    receipt_of,
    reseal,
    reseal_answer,
    seal_answer,
    subject_digest,
    view_of,
)
from garde.journal.sealing import Keyring, SealError
from garde.masking import mask

log = logging.getLogger("garde.journal")
T = TypeVar("T")
Listener = Callable[[Receipt], None]
Clock = Callable[[], float]


class StoreBase(ABC):
    """Implements ``JournalStore`` on top of ``_read``/``_write``."""

    def __init__(self, keyring: Keyring, clock: Clock = time.time) -> None:
        self.keyring = keyring
        self.clock = clock
        self.listeners: list[Listener] = []
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        """Run first by ``close`` (webhooks flush their queue)."""
        self._salt = b""

    async def _before_close(self) -> None:
        hooks, self.on_close = self.on_close, []
        for hook in hooks:
            try:
                await hook()
            except Exception:
                log.exception("journal close hook failed")

    @abstractmethod
    async def _read(self, fn: Callable[[ops.Tx], T]) -> T: ...

    @abstractmethod
    async def _write(self, fn: Callable[[ops.Tx], T]) -> T: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def _write_accept(self, values: tuple[Any, ...]) -> Row | None:
        return await self._write(lambda tx: ops.accept(tx, values))

    async def _write_settle(self, outcome: Outcome, params: tuple[Any, ...]) -> bool:
        """Run one ``ops.SETTLE_SQL`` update; whether the lease still held."""
        query = ops.SETTLE_SQL[outcome]
        return await self._write(lambda tx: bool(tx.run(query, params)))

    def _tell(self, rows: Sequence[Row]) -> None:
        for row in rows:
            if row.state is State.QUARANTINED:
                log.error(
                    "journal entry %s (%s.%s) quarantined, it will not be delivered: %s",
                    row.id,
                    row.service,
                    row.operation,
                    row.reason,
                )
            if self.listeners:
                self._announce(receipt_of(row, self.keyring))

    async def accept(self, submission: Submission) -> Receipt:
        now = self.clock()
        values = ops.prepare(submission, now, self.keyring, self._salt)
        existing = await self._write_accept(values)
        if existing is not None:
            return receipt_of(existing, self.keyring)
        receipt = Receipt(
            id=values[0],
            state=State.JOURNALED,
            service=submission.service,
            operation=submission.operation,
            created_at=now,
            updated_at=now,
            deadline=submission.deadline,
            extra={"target_group": submission.target_group} if submission.target_group else {},
        )
        self._announce(receipt)
        return receipt

    def _announce(self, receipt: Receipt) -> None:
        for listener in self.listeners:
            try:
                listener(receipt)
            except Exception:  # a listener must never break the journal
                log.exception("journal listener failed")

    async def receipt(self, entry_id: str) -> Receipt:
        row = await self._read(lambda tx: ops._one(tx, entry_id))
        return receipt_of(row, self.keyring)

    async def depth(self, service: str | None = None) -> int:
        if service is None:
            found = await self._read(lambda tx: tx.rows(sql.DEPTH))
        else:
            found = await self._read(lambda tx: tx.rows(sql.DEPTH_OF, (service, service)))
        return int(found[0][0])

    async def receipts(
        self,
        state: State | None = None,
        service: str | None = None,
        limit: int = 100,
        after: int = 0,
    ) -> list[Receipt]:
        rows = await self._read(lambda tx: ops.listing(tx, state, service, limit, after))
        return [receipt_of(r, self.keyring) for r in rows]

    async def counts(self) -> dict[tuple[str, State], int]:
        return await self._read(ops.counts)

    async def pending_services(self) -> list[str]:
        found = await self._read(lambda tx: tx.rows(sql.PENDING_SERVICES))
        return sorted(str(r[0]) for r in found)

    async def backlog(self) -> Backlog:
        return await self._read(ops.backlog)

    def subject_key(self, subject: str) -> str:
        return subject_digest(self._salt, subject)

    async def waiting_subjects(self) -> set[str]:
        return await self._read(ops.waiting_subjects)

    async def release(self, subject: str, caller: CallerToken) -> list[Receipt]:
        now = self.clock()
        key = self.subject_key(subject)
        receipts = []
        while True:
            rows = await self._write(lambda tx: ops.release(tx, key, caller, now, self.keyring))
            self._tell(rows)
            receipts += [receipt_of(r, self.keyring) for r in rows if r.state is State.JOURNALED]
            if len(rows) < ops.RELEASE_CHUNK:
                return receipts

    async def lease(
        self,
        owner: str,
        services: Sequence[str],
        limit: int,
        lease_seconds: float,
        backoff: bool = True,
    ) -> list[Leased]:
        now = self.clock()
        leased, quarantined = await self._write(
            lambda tx: ops.lease(
                tx, owner, services, limit, lease_seconds, now, self.keyring, self._lock, backoff
            )
        )
        self._tell(quarantined)
        if self.listeners:
            for entry in leased:
                self._announce(_receipt(entry, State.DELIVERING, now))
        return leased

    _lock = ""
    """What a backend appends to the lease query to lock rows (PostgreSQL: SKIP LOCKED)."""

    async def settle(
        self, leased: Leased, delivery: Delivery, retry_at: float | None = None
    ) -> Receipt | None:
        now = self.clock()
        answer: tuple[int | None, str | None, bytes | None] = (None, None, None)
        if delivery.answer is not None and delivery.outcome in (
            Outcome.DELIVERED,
            Outcome.CONFLICT,
        ):
            answer = seal_answer(delivery.answer, leased.id, self.keyring)
        params = ops.settle_params(leased, delivery, answer, retry_at, now)
        if not await self._write_settle(delivery.outcome, params):
            return None
        s = leased.submission
        state = {
            Outcome.DELIVERED: State.DELIVERED,
            Outcome.CONFLICT: State.CONFLICT,
            Outcome.RETRY_LATER: State.JOURNALED,
            Outcome.NEEDS_TOKEN: State.NEEDS_TOKEN,
        }[delivery.outcome]
        failed = delivery.outcome in (Outcome.RETRY_LATER, Outcome.NEEDS_TOKEN)
        receipt = _receipt(
            leased,
            state,
            now,
            last_error=clip(delivery.reason or "the service could not take it") if failed else None,
            answer=None if failed else delivery.answer,
            reason=clip(delivery.reason or "the service refused it (no reason given)")
            if state is State.CONFLICT
            else None,
            extra={"target_group": s.target_group} if s.target_group else {},
        )
        self._announce(receipt)
        return receipt

    async def expire(self, describe: Describe) -> list[Receipt]:
        now = self.clock()
        # Looked up in a read first: the writer (every accept waits for it) is taken only
        # when something is due, which during an outage is almost never.
        if not await self._read(lambda tx: tx.rows(sql.ANY_DUE, (now,))):
            return []
        rows = await self._write(lambda tx: ops.expire(tx, now, describe))
        self._tell(rows)
        return [receipt_of(r, self.keyring) for r in rows]

    async def retry(self, entry_id: str, who: str) -> Receipt:
        now = self.clock()
        row = await self._write(lambda tx: ops.retry(tx, entry_id, who, now, self.keyring))
        self._tell([row])
        return receipt_of(row, self.keyring)

    async def discard(self, entry_id: str, reason: str, who: str) -> Receipt:
        now = self.clock()
        row = await self._write(lambda tx: ops.discard(tx, entry_id, reason, who, now))
        self._tell([row])
        return receipt_of(row, self.keyring)

    async def entry(self, entry_id: str, reveal_by: str | None = None) -> EntryView:
        row = await self._read(lambda tx: ops._one(tx, entry_id))
        if reveal_by is not None:
            await self.record_audit(reveal_by, "reveal", entry_id, "show --reveal")
        return view_of(row, self.keyring)

    async def export(self, reveal_by: str | None = None) -> AsyncIterator[EntryView]:
        if reveal_by is not None:
            await self.record_audit(reveal_by, "reveal", None, "export --reveal")
        after = 0
        while True:
            page = await self._read(_page(after))
            if not page:
                return
            for row in page:
                yield view_of(row, self.keyring)
            after = page[-1].seq

    async def rekey(self, who: str) -> RekeyReport:
        """Seal every entry's payload and answer again with the current key (after a new key
        was added), so older keys can leave the ring. Entries that cannot be opened are left
        as they are and reported. Audited. Safe beside a running gateway: a row is only
        rewritten if it did not change since it was read."""
        current = self.keyring.current
        if current is None:
            raise UsageError(
                "rekey seals entries with the current key, and there is none: give"
                " --journal-key-file FILE (or GARDE_JOURNAL_KEYS) whose last key is the new one"
            )
        report = RekeyReport(key_id=current)
        after = 0
        while True:
            page = await self._read(_page(after))
            if not page:
                break
            after = page[-1].seq
            payloads: list[tuple[str | None, bytes, str, int, str]] = []
            answers: list[tuple[bytes, int, bytes]] = []
            for row in page:
                try:
                    if Keyring.blob_key_id(row.sealed) != current:
                        key_id, sealed, total = reseal(row, self.keyring)
                        payloads.append((key_id, sealed, total, row.seq, row.checksum))
                    body = row.answer_body
                    if body and Keyring.blob_key_id(body) != current:
                        answers.append((reseal_answer(body, row.id, self.keyring), row.seq, body))
                except SealError as exc:
                    report.unreadable.append((row.id, str(exc)))
                    continue
            if payloads or answers:
                report.resealed += await self._write(_rekey(payloads, answers))
            report.seen += len(page)
        await self.record_audit(
            who,
            "rekey",
            None,
            f"{report.resealed} entries sealed again with key {current};"
            f" {len(report.unreadable)} could not be opened",
        )
        return report

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        return await self._read(lambda tx: ops.audit_log(tx, limit))

    async def record_audit(self, who: str, action: str, entry_id: str | None, detail: str) -> None:
        now = self.clock()
        await self._write(lambda tx: ops.audit(tx, who, action, entry_id, detail, now))


def _rekey(
    payloads: list[tuple[str | None, bytes, str, int, str]],
    answers: list[tuple[bytes, int, bytes]],
) -> Callable[[ops.Tx], int]:
    return lambda tx: ops.rekey(tx, payloads, answers)


def _page(after: int) -> Callable[[ops.Tx], list[Row]]:
    def read(tx: ops.Tx) -> list[Row]:
        return [Row.of(r) for r in tx.rows(sql.PAGE_OF, (after, 500))]

    return read


def masked_identity(view: EntryView) -> str:
    return mask(view.submission.identity) if view.submission else "?"


def _receipt(leased: Leased, state: State, now: float, **detail: Any) -> Receipt:
    """The receipt of a leased entry in ``state``, built from what the lease holds (not read
    back: leasing and settling are the replayer's hot path)."""
    s = leased.submission
    return Receipt(
        id=leased.id,
        state=state,
        service=s.service,
        operation=s.operation,
        created_at=leased.created_at,
        updated_at=now,
        deadline=s.deadline,
        attempts=leased.attempts,
        **detail,
    )
