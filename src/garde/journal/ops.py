"""The journal's transactions, written once for both backends.

Each function runs inside one transaction of a ``Tx`` (a thin wrapper over a sqlite3 or a
psycopg connection) and must check everything before it writes: a caller's mistake raises
before the first change, so it never half-applies. Backends decide *how* transactions are
run (SQLite: one writer thread with group commit; PostgreSQL: a pool, leases locked with
``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

from garde.errors import EntryNotFound, UsageError
from garde.journal import sql
from garde.journal.base import (
    AuditRecord,
    Backlog,
    BacklogGroup,
    CallerToken,
    Delivery,
    Describe,
    Leased,
    Outcome,
    State,
    Submission,
)
from garde.journal.records import (
    INSERT_COLUMNS,
    SELECT,
    Row,
    check_transition,
    clip,
    new_id,
    new_row,
    open_submission,
    with_caller,
)
from garde.journal.sealing import Keyring, SealError, unique

T = TypeVar("T")


class Tx(Protocol):
    """One open transaction; ``?`` placeholders (translated by the PostgreSQL wrapper)."""

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, query: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""
        ...

    def many(self, query: str, params: Sequence[Sequence[Any]]) -> None:
        """Execute once per parameter set."""
        ...

    def insert(self, query: str, params: Sequence[Any]) -> int | None:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING``; the new row's seq, None if none."""
        ...


def _one(tx: Tx, entry_id: str) -> Row:
    found = tx.rows(sql.BY_ID, (entry_id,))
    if not found:
        raise EntryNotFound(f"no journal entry {entry_id!r} (see `garde journal ls`)")
    return Row.of(found[0])


def prepare(submission: Submission, now: float, keyring: Keyring, salt: bytes) -> tuple[Any, ...]:
    """The values of a new entry, sealed and summed: done by the caller, outside the
    transaction, so the single writer spends its time writing."""
    return new_row(submission, new_id(), now, keyring, salt)


def accept(tx: Tx, values: tuple[Any, ...]) -> Row | None:
    """Insert prepared ``values``: None if new, the existing row if its idempotency key was
    already journaled for that service and operation."""
    seq = tx.insert(sql.INSERT, values)
    if seq is None:
        data = dict(zip(INSERT_COLUMNS, values, strict=True))
        existing = tx.rows(sql.BY_IDEM, (data["service"], data["operation"], data["idem_key"]))
        return Row.of(existing[0])
    return None


def lease(
    tx: Tx,
    owner: str,
    services: Sequence[str],
    limit: int,
    lease_seconds: float,
    now: float,
    keyring: Keyring,
    lock: str = "",
    backoff: bool = True,
) -> tuple[list[Leased], list[Row]]:
    """``(leased, quarantined)``: deliverable heads taken for ``owner``; damaged ones set aside.
    ``backoff=False`` also takes entries waiting out a back-off (an operator's replay now)."""
    if not services or limit <= 0:
        return [], []
    query = (
        f"SELECT {', '.join('e.' + c for c in SELECT.split(', '))} FROM entries e"
        f" WHERE {sql.deliverable(len(services))} ORDER BY e.seq LIMIT ?{lock}"
    )
    not_after = now if backoff else float("inf")
    found = [Row.of(r) for r in tx.rows(query, (*services, now, not_after, limit))]
    leased: list[Leased] = []
    quarantined: list[Row] = []
    until = now + lease_seconds
    # One token per lease, told apart per entry by its seq: the entries are marked with one
    # statement per chunk instead of one per entry.
    base = unique.token(8) + "."
    marks: list[int] = []
    for row in found:
        try:
            submission = open_submission(row, keyring)
        except SealError as exc:
            tx.run(sql.QUARANTINE, (now, clip(str(exc)), row.seq))
            quarantined.append(_replace(row, state=State.QUARANTINED, reason=str(exc)))
            continue
        token = base + str(row.seq)
        marks.append(row.seq)
        leased.append(
            Leased(row.id, row.seq, submission, row.attempts + 1, row.created_at, token, until)
        )
    for size, chunk in chunks(marks):
        tx.run(sql.mark_leased(size), (now, owner, base, until, *chunk))
    return leased, quarantined


CHUNKS = (256, 64, 16, 4, 1)
"""Sizes of multi-row statements: a few fixed shapes, so prepared statements are reused."""


def chunks(items: Sequence[T]) -> Iterator[tuple[int, Sequence[T]]]:
    """``items`` cut into runs of the sizes of ``CHUNKS``: ``(size, run)``."""
    at = 0
    for size in CHUNKS:
        while len(items) - at >= size:
            yield size, items[at : at + size]
            at += size


SETTLE_SQL = {
    Outcome.DELIVERED: sql.SETTLE_DELIVERED,
    Outcome.CONFLICT: sql.SETTLE_CONFLICT,
    Outcome.RETRY_LATER: sql.SETTLE_RETRY,
    Outcome.NEEDS_TOKEN: sql.SETTLE_NEEDS_TOKEN,
}


def settle_params(
    leased: Leased,
    delivery: Delivery,
    answer: tuple[int | None, str | None, bytes | None],
    retry_at: float | None,
    now: float,
) -> tuple[Any, ...]:
    """The parameters of ``SETTLE_SQL[delivery.outcome]`` for one attempt's outcome."""
    key = (leased.id, leased.lease_token)
    if delivery.outcome is Outcome.DELIVERED:
        return (now, *answer, *key)
    if delivery.outcome is Outcome.CONFLICT:
        reason = clip(delivery.reason or "the service refused it (no reason given)")
        return (now, reason, *answer, *key)
    error = clip(delivery.reason or "the service could not take it")
    return (now, error, retry_at or now, *key)


def settle(
    tx: Tx,
    leased: Leased,
    delivery: Delivery,
    answer: tuple[int | None, str | None, bytes | None],
    retry_at: float | None,
    now: float,
) -> bool:
    """Record one attempt's outcome (``answer`` already sealed); False when the lease was
    lost meanwhile (another replayer owns the entry now)."""
    params = settle_params(leased, delivery, answer, retry_at, now)
    return bool(tx.run(SETTLE_SQL[delivery.outcome], params))


def expire(tx: Tx, now: float, describe: Describe) -> list[Row]:
    """Waiting entries past their deadline become ``expired``, with their procedure."""
    done = []
    for values in tx.rows(sql.DUE_TO_EXPIRE, (now, now)):
        row = Row.of(values)
        reason = clip(describe(row.service, row.operation, row.target_group))
        if tx.run(sql.EXPIRE, (now, reason, row.seq)):
            done.append(_replace(row, state=State.EXPIRED, reason=reason, updated_at=now))
    return done


def retry(tx: Tx, entry_id: str, who: str, now: float, keyring: Keyring) -> Row:
    row = _one(tx, entry_id)
    check_transition(
        entry_id,
        row.state,
        (State.CONFLICT, State.QUARANTINED, State.JOURNALED, State.NEEDS_TOKEN),
        "retry",
    )
    if row.state is State.QUARANTINED:
        try:
            open_submission(row, keyring)
        except SealError as exc:
            raise UsageError(
                f"entry {entry_id} is still unreadable ({exc}); discard it with a reason"
            ) from None
    last_error = f"was {row.state.value}: {row.reason}" if row.reason else row.last_error
    tx.run(sql.SET_STATE, (State.JOURNALED.value, now, None, clip(last_error), 0.0, entry_id))
    tx.run(sql.AUDIT, (now, who, "retry", entry_id, f"from {row.state.value}"))
    return _one(tx, entry_id)


def discard(tx: Tx, entry_id: str, reason: str, who: str, now: float) -> Row:
    if not reason.strip():
        raise UsageError("discarding an entry needs a reason (--reason 'why'); it is audited")
    row = _one(tx, entry_id)
    allowed: tuple[State, ...] = (
        State.JOURNALED,
        State.NEEDS_TOKEN,
        State.CONFLICT,
        State.QUARANTINED,
        State.EXPIRED,
    )
    if row.state is State.DELIVERING and (row.lease_until or 0) < now:
        allowed = (State.DELIVERING,)
    check_transition(entry_id, row.state, allowed, "discard")
    text = clip(f"discarded by {who}: {reason.strip()}")
    tx.run(sql.SET_STATE, (State.DISCARDED.value, now, text, row.last_error, 0.0, entry_id))
    tx.run(sql.AUDIT, (now, who, "discard", entry_id, clip(reason.strip())))
    return _one(tx, entry_id)


def rekey(
    tx: Tx,
    payloads: Sequence[tuple[str | None, bytes, str, int, str]],
    answers: Sequence[tuple[bytes, int, bytes]],
) -> int:
    """Store re-sealed payloads ``(key_id, sealed, checksum, seq, old checksum)`` and answers
    ``(body, seq, old body)``, each only if unchanged since it was read; how many rows took
    a new payload or answer."""
    changed: set[int] = set()
    for values in payloads:
        if tx.run(sql.REKEY, values):
            changed.add(values[3])
    for body, seq, old in answers:
        if tx.run(sql.REKEY_ANSWER, (body, seq, old)):
            changed.add(seq)
    return len(changed)


def audit(tx: Tx, who: str, action: str, entry_id: str | None, detail: str, now: float) -> None:
    tx.run(sql.AUDIT, (now, who, action, entry_id, clip(detail)))


def audit_log(tx: Tx, limit: int) -> list[AuditRecord]:
    return [
        AuditRecord(float(at), str(who), str(action), entry_id, str(detail))
        for at, who, action, entry_id, detail in tx.rows(sql.AUDIT_LOG, (limit,))
    ]


def listing(tx: Tx, state: State | None, service: str | None, limit: int, after: int) -> list[Row]:
    params: list[Any] = [after]
    if state is not None:
        params.append(state.value)
    if service is not None:
        params.append(service)
    params.append(limit)
    query = sql.listing(state is not None, service is not None)
    return [Row.of(r) for r in tx.rows(query, params)]


RELEASE_CHUNK = 500
"""Entries released per transaction: a subject with thousands waiting does not hold the
journal's writer (and every acknowledgement behind it) for the whole lot at once."""


def release(
    tx: Tx, subject_key: str, caller: CallerToken, now: float, keyring: Keyring
) -> list[Row]:
    """Up to ``RELEASE_CHUNK`` entries of ``subject_key`` in ``needs_token`` take ``caller``
    and are journaled again (due at once), or are quarantined if they cannot be opened; the
    rows changed. The caller repeats while a full chunk comes back."""
    released = []
    for values in tx.rows(sql.NEEDS_TOKEN_OF, (subject_key, RELEASE_CHUNK)):
        row = Row.of(values)
        try:
            key_id, sealed, total = with_caller(row, keyring, caller)
        except SealError as exc:
            # Damaged, or sealed with a key gone from the ring: set aside for the operator
            # (it is never leased while it waits for a token, so nothing else would).
            tx.run(sql.QUARANTINE, (now, clip(str(exc)), row.seq))
            released.append(_replace(row, state=State.QUARANTINED, reason=str(exc)))
            continue
        note = "released by a newer token of the same subject"
        if tx.run(sql.RELEASE, (now, key_id, sealed, total, note, row.seq, row.checksum)):
            released.append(
                _replace(
                    row,
                    state=State.JOURNALED,
                    updated_at=now,
                    key_id=key_id,
                    sealed=sealed,
                    checksum=total,
                    last_error=note,
                    not_before=0.0,
                )
            )
    return released


def waiting_subjects(tx: Tx) -> set[str]:
    return {str(r[0]) for r in tx.rows(sql.WAITING_SUBJECTS)}


def backlog(tx: Tx) -> Backlog:
    tried = {(svc, op, st): int(n or 0) for svc, op, st, n in tx.rows(sql.TRIED)}
    groups = []
    for svc, op, st, n in tx.rows(sql.BACKLOG):
        oldest = tx.rows(sql.OLDEST_OF, (svc, op, st))[0][0]
        attempts = tried.get((svc, op, st), 0)
        groups.append(BacklogGroup(str(svc), str(op), State(st), int(n), float(oldest), attempts))
    errors: dict[str, tuple[float, str]] = {}
    for service, at in tx.rows(sql.LAST_FAILED):
        found = tx.rows(sql.LAST_ERROR_OF, (service, at))
        if found:
            errors[str(service)] = (float(at), str(found[0][0]))
    return Backlog(groups, errors)


def counts(tx: Tx) -> dict[tuple[str, State], int]:
    return {(svc, State(st)): int(n) for svc, st, n in tx.rows(sql.COUNTS)}


def _replace(row: Row, **changes: Any) -> Row:
    from dataclasses import replace

    return replace(row, **changes)
