"""How an entry is laid out in a row, shared by both backends.

A row keeps in clear only what the journal must query (service, operation, state, times,
the idempotency key, a digest of the ordering key); who the write is for, the ordering key
itself, the headers and the payload are sealed together, and the upstream's answer is sealed
too. The checksum covers every field that never changes after the entry was accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from garde.journal.base import Answer, CallerToken, EntryView, Receipt, State, Submission
from garde.journal.sealing import Keyring, SealError, checksum, order_digest, unique

COLUMNS = (
    "seq",
    "id",
    "service",
    "operation",
    "target_group",
    "order_key",
    "idem_key",
    "created_at",
    "updated_at",
    "deadline",
    "state",
    "attempts",
    "not_before",
    "lease_owner",
    "lease_token",
    "lease_until",
    "last_error",
    "reason",
    "key_id",
    "sealed",
    "checksum",
    "answer_status",
    "answer_type",
    "answer_body",
    "subject_key",
)
SELECT = ", ".join(COLUMNS)
INSERT_COLUMNS = (*COLUMNS[1:12], "not_before", "key_id", "sealed", "checksum", "subject_key")
MAX_ERROR = 500
"""Longest last_error/reason kept: an upstream can answer with megabytes of HTML."""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    id: str
    service: str
    operation: str
    target_group: str | None
    order_key: str | None
    idem_key: str
    created_at: float
    updated_at: float
    deadline: float | None
    state: State
    attempts: int
    not_before: float
    lease_owner: str | None
    lease_token: str | None
    lease_until: float | None
    last_error: str | None
    reason: str | None
    key_id: str | None
    sealed: bytes
    checksum: str
    answer_status: int | None
    answer_type: str | None
    answer_body: bytes | None
    subject_key: str | None
    """Keyed digest of the caller token's subject (None: the gateway signs at send time)."""

    @classmethod
    def of(cls, values: tuple[Any, ...] | list[Any]) -> Row:
        # Positional, with a dict for the state: every leased entry passes here, and keyword
        # construction through a dict (and the Enum call) cost four times as much.
        if len(values) != len(COLUMNS):
            raise ValueError(f"a journal row has {len(COLUMNS)} columns, not {len(values)}")
        row = list(values)
        row[_STATE] = _STATES.get(row[_STATE]) or State(row[_STATE])
        row[_SEALED] = bytes(row[_SEALED])
        if row[_ANSWER] is not None:
            row[_ANSWER] = bytes(row[_ANSWER])
        return cls(*row)


_STATE, _SEALED, _ANSWER = (COLUMNS.index(c) for c in ("state", "sealed", "answer_body"))
_STATES = {state.value: state for state in State}


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps`` with separators builds an encoder per call; one accept in three of its cost."""


def new_id() -> str:
    """A receipt id: time-ordered then random (80 bits: the receipt endpoint must not be
    enumerable), URL-safe. Ordered, so that the journal's index of ids grows at its end."""
    return "r" + unique.sortable(10)


def new_idempotency_key() -> str:
    """The key the gateway gives a write whose caller sent none: 32 hex digits, like a UUID,
    time-ordered (as UUIDv7) for the same reason as ``new_id``."""
    return unique.sortable(10)


def _aad(entry_id: str, service: str, operation: str, idem_key: str) -> bytes:
    # Binding the ciphertext to its entry: a payload copied onto another row fails to open.
    return "\x00".join((entry_id, service, operation, idem_key)).encode()


def _sum(
    entry_id: str,
    service: str,
    operation: str,
    target_group: str | None,
    order_key: str | None,
    idem_key: str,
    created_at: float,
    deadline: float | None,
    sealed: bytes,
) -> str:
    return checksum(
        entry_id,
        service,
        operation,
        target_group,
        order_key,
        idem_key,
        created_at,
        deadline,
        sealed,
    )


def new_row(
    submission: Submission, entry_id: str, now: float, keyring: Keyring, salt: bytes
) -> tuple[Any, ...]:
    """The values of ``INSERT_COLUMNS`` for a new entry."""
    s = submission
    key_id, sealed = keyring.seal(
        _inner(s), _aad(entry_id, s.service, s.operation, s.idempotency_key)
    )
    order_key = order_digest(salt, s.service, s.ordering_key)
    total = _sum(
        entry_id,
        s.service,
        s.operation,
        s.target_group,
        order_key,
        s.idempotency_key,
        now,
        s.deadline,
        sealed,
    )
    return (
        entry_id,
        s.service,
        s.operation,
        s.target_group,
        order_key,
        s.idempotency_key,
        now,
        now,
        s.deadline,
        State.JOURNALED.value,
        0,
        0.0,
        key_id,
        sealed,
        total,
        subject_digest(salt, s.caller.subject) if s.caller is not None else None,
    )


def subject_digest(salt: bytes, subject: str) -> str:
    """A token subject as stored in clear: a keyed digest, as for ordering keys."""
    digest = order_digest(salt, "\x00caller-subject", subject)
    assert digest is not None
    return digest


def _inner(s: Submission) -> bytes:
    """What is sealed: a small JSON head, a newline, then the payload's raw bytes (no
    base64: it is the bulk). The caller's own token, when there is one, is a fourth item."""
    items: list[object] = [s.identity, s.ordering_key, [list(h) for h in s.headers]]
    if s.caller is not None:
        c = s.caller
        items.append([c.security.decode("utf-8"), c.subject, c.not_on_or_after])
    return _COMPACT.encode(items).encode() + b"\n" + s.payload


def with_caller(row: Row, keyring: Keyring, caller: CallerToken) -> tuple[str | None, bytes, str]:
    """``(key_id, sealed, checksum)`` of ``row`` carrying ``caller`` as its token instead;
    ``SealError`` if the row cannot be opened."""
    from dataclasses import replace

    submission = replace(open_submission(row, keyring), caller=caller)
    aad = _aad(row.id, row.service, row.operation, row.idem_key)
    key_id, sealed = keyring.seal(_inner(submission), aad)
    return key_id, sealed, _row_sum(row, sealed)


def _row_sum(row: Row, sealed: bytes) -> str:
    """The checksum of ``row`` holding ``sealed`` as its sealed content."""
    return _sum(
        row.id,
        row.service,
        row.operation,
        row.target_group,
        row.order_key,
        row.idem_key,
        row.created_at,
        row.deadline,
        sealed,
    )


def _check(row: Row) -> None:
    if _row_sum(row, row.sealed) != row.checksum:
        raise SealError("checksum mismatch: the stored entry was altered or damaged")


def open_submission(row: Row, keyring: Keyring) -> Submission:
    """The submission stored in ``row``; ``SealError`` if the row is damaged or unreadable."""
    _check(row)
    inner = keyring.open(row.sealed, _aad(row.id, row.service, row.operation, row.idem_key))
    try:
        head, _, payload = inner.partition(b"\n")
        identity, ordering_key, headers, *more = json.loads(head)
        caller = None
        if more:
            security, subject, until = more[0]
            caller = CallerToken(security.encode("utf-8"), str(subject), float(until))
        return Submission(
            service=row.service,
            operation=row.operation,
            identity=identity,
            target_group=row.target_group,
            idempotency_key=row.idem_key,
            ordering_key=ordering_key,
            payload=payload,
            headers=tuple((str(k), str(v)) for k, v in headers),
            deadline=row.deadline,
            caller=caller,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SealError(f"sealed content is not a journal entry ({exc})") from None


def reseal(row: Row, keyring: Keyring) -> tuple[str | None, bytes, str]:
    """``(key_id, sealed, checksum)``: the row's content sealed again with the current key;
    ``SealError`` if it cannot be opened (damaged, or its key is not in the ring)."""
    _check(row)
    aad = _aad(row.id, row.service, row.operation, row.idem_key)
    key_id, sealed = keyring.seal(keyring.open(row.sealed, aad), aad)
    return key_id, sealed, _row_sum(row, sealed)


def reseal_answer(body: bytes, entry_id: str, keyring: Keyring) -> bytes:
    """A stored answer sealed again with the current key (``SealError`` if unreadable)."""
    aad = ("answer\x00" + entry_id).encode()
    return keyring.seal(keyring.open(body, aad), aad)[1]


def seal_answer(answer: Answer, entry_id: str, keyring: Keyring) -> tuple[int, str, bytes]:
    _, blob = keyring.seal(answer.body, ("answer\x00" + entry_id).encode())
    return answer.status, answer.content_type, blob


def receipt_of(row: Row, keyring: Keyring) -> Receipt:
    answer = None
    extra: dict[str, str] = {}
    if row.answer_status is not None and row.answer_body is not None:
        try:
            body = keyring.open(row.answer_body, ("answer\x00" + row.id).encode())
        except SealError as exc:
            body = b""
            if keyring.without_keys:
                extra["answer_sealed"] = "sealed: give the journal's keys to read the answer"
            else:
                extra["answer_problem"] = str(exc)
        answer = Answer(row.answer_status, body, row.answer_type or "application/octet-stream")
    if row.target_group:
        extra["target_group"] = row.target_group
    return Receipt(
        id=row.id,
        state=row.state,
        service=row.service,
        operation=row.operation,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deadline=row.deadline,
        attempts=row.attempts,
        last_error=row.last_error,
        answer=answer,
        reason=row.reason,
        extra=extra,
    )


def view_of(row: Row, keyring: Keyring) -> EntryView:
    submission = None
    problem = None
    try:
        submission = open_submission(row, keyring)
    except SealError as exc:
        problem = str(exc)
    return EntryView(
        receipt=receipt_of(row, keyring),
        seq=row.seq,
        target_group=row.target_group,
        idempotency_key=row.idem_key,
        key_id=row.key_id,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        not_before=row.not_before,
        submission=submission,
        problem=problem,
    )


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_ERROR:
        return text
    return text[: MAX_ERROR - 1] + "…"


def check_transition(entry_id: str, state: State, allowed: tuple[State, ...], action: str) -> None:
    from garde.errors import UsageError

    if state not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise UsageError(
            f"cannot {action} entry {entry_id}: it is {state.value}; only an entry that is"
            f" {names} can be"
        )
