"""The journal's seam: what the gateway hands over, what it gets back, what a backend does.

The gateway calls ``Journal.accept`` when no data center can take a deferrable or async write,
and answers 202 with the receipt only after ``accept`` returned (the entry is durable by
then). The replayer hands entries back to the gateway's upstream side through ``Sender``.
Backends (SQLite, PostgreSQL) implement ``Journal``; one test suite runs against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from garde.locales import moment


class State(StrEnum):
    """Where an entry stands; the receipt shows it to the care software."""

    JOURNALED = "journaled"
    """Durable, waiting for the service."""
    DELIVERING = "delivering"
    """Leased by a replayer, being sent."""
    DELIVERED = "delivered"
    """The service answered; its answer is on the receipt."""
    CONFLICT = "conflict"
    """The service refused it for a business reason (revoked, delivered elsewhere...)."""
    EXPIRED = "expired"
    """Its deadline passed before it could be delivered: the fallback procedure applies."""
    DISCARDED = "discarded"
    """An operator removed it, with a reason (audited)."""
    QUARANTINED = "quarantined"
    """Its checksum does not match: never delivered, reported to the operator."""
    NEEDS_TOKEN = "needs_token"  # noqa: S105 - a state name, not a secret
    """Sent with the caller's own token, which expired (or the service refused it), and no
    valid token of the same subject was seen since: released by that subject's next call."""


@dataclass(frozen=True, slots=True)
class CallerToken:
    """The caller's own WS-Security header, kept to send the write as its caller would.

    Care software that signs its own calls sends no ``Garde-Identity``: the gateway has no
    credentials for it and must send the journaled write with the caller's token, or with a
    newer token of the same subject seen since (``subject`` is the identity inside the token,
    not the connection). Sealed with the payload, never logged.
    """

    security: bytes
    """The ``wsse:Security`` element as the caller sent it (namespaces declared in it)."""
    subject: str
    """Whom the token was issued to (the token's subject)."""
    not_on_or_after: float
    """Unix time from which the token is no longer valid."""

    def usable(self, now: float, margin: float = 1.0) -> bool:
        """Still valid ``margin`` seconds from now (the time a send takes, about)."""
        return self.not_on_or_after - now > margin


@dataclass(frozen=True, slots=True)
class Submission:
    """A write the gateway could not deliver now: the business payload, not signed bytes.

    WS-Security tokens and timestamps expire, so the journal keeps what the caller meant and
    the gateway authenticates again at send time.
    """

    service: str
    operation: str
    identity: str
    """Who the write is made for (a token is obtained for this identity at send time)."""
    target_group: str | None
    idempotency_key: str
    ordering_key: str | None
    payload: bytes
    headers: tuple[tuple[str, str], ...] = ()
    """The request headers that matter upstream (Content-Type, SOAPAction)."""
    deadline: float | None = None
    """Unix time after which the write must not be delivered; None: no deadline."""
    caller: CallerToken | None = None
    """The caller's own token, when it sent one and no ``Garde-Identity``."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the service answered when the entry was finally delivered."""

    status: int
    body: bytes
    content_type: str = "text/xml; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Receipt:
    """The public view of an entry (``GET /_garde/receipts/<id>``)."""

    id: str
    state: State
    service: str
    operation: str
    created_at: float
    updated_at: float
    deadline: float | None = None
    attempts: int = 0
    last_error: str | None = None
    answer: Answer | None = None
    reason: str | None = None
    """Why it ended in conflict, expired or discarded (and by whom, for discarded)."""
    extra: dict[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The receipt's own fields as JSON values (callers add the answer their way)."""
        return {
            "id": self.id,
            "state": self.state.value,
            "service": self.service,
            "operation": self.operation,
            **moment("created_at", self.created_at),
            **moment("updated_at", self.updated_at),
            **moment("deadline", self.deadline),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "reason": self.reason,
        }


class Outcome(StrEnum):
    DELIVERED = "delivered"
    CONFLICT = "conflict"
    RETRY_LATER = "retry_later"
    NEEDS_TOKEN = "needs_token"  # noqa: S105 - a state name, not a secret
    """The caller's token can no longer be used and no newer one of its subject is known."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of one attempt to send a journaled entry upstream."""

    outcome: Outcome
    answer: Answer | None = None
    reason: str | None = None
    retry_after: float | None = None
    """Seconds the service asked us to wait (429/503 Retry-After)."""
    unreachable: bool = False
    """No data center answered at all: the service is down, not this entry's problem."""


@runtime_checkable
class Journal(Protocol):
    """What the gateway needs from a journal backend. Backends may offer more (leases...)."""

    async def accept(self, submission: Submission) -> Receipt:
        """Persist ``submission`` durably, then return its receipt.

        Raises ``JournalUnavailable`` if it cannot persist: the caller must not acknowledge.
        An idempotency key already journaled for the same service and operation returns the
        existing receipt instead of a second entry.
        """
        ...

    async def receipt(self, entry_id: str) -> Receipt:
        """The receipt of an entry; ``EntryNotFound`` if there is none."""
        ...

    async def depth(self, service: str | None = None) -> int:
        """How many entries wait (journaled or delivering), for one service or all."""
        ...

    async def close(self) -> None: ...


class Sender(Protocol):
    """The gateway's upstream side, as the replayer sees it: send one entry now."""

    async def send(self, submission: Submission) -> Delivery: ...


ServiceReady = Callable[[str], bool]
"""Tells the replayer whether a service is healthy enough to be replayed to."""

WAITING = (State.JOURNALED, State.DELIVERING)
"""States a replayer may lease from (a lapsed lease is taken over)."""
UNSETTLED = (State.JOURNALED, State.DELIVERING, State.NEEDS_TOKEN)
"""States that count in the journal's depth: not yet settled, still to be delivered."""
HOLDING = (
    State.JOURNALED,
    State.DELIVERING,
    State.NEEDS_TOKEN,
    State.CONFLICT,
    State.QUARANTINED,
)
"""States that hold back the later entries of the same ordering key (held, never skipped)."""
FINAL = (State.DELIVERED, State.EXPIRED, State.DISCARDED)


@dataclass(frozen=True, slots=True)
class Leased:
    """An entry handed to one replayer, which must settle it before ``lease_until``."""

    id: str
    seq: int
    submission: Submission
    attempts: int
    created_at: float
    lease_token: str
    lease_until: float


@dataclass(frozen=True, slots=True)
class EntryView:
    """Everything an operator may see of an entry (``garde journal show``)."""

    receipt: Receipt
    seq: int
    target_group: str | None
    idempotency_key: str
    key_id: str | None
    """Id of the key that encrypts the payload; None when stored in clear (opt-out)."""
    lease_owner: str | None
    lease_until: float | None
    not_before: float
    submission: Submission | None
    """Decrypted content; None when it cannot be read (corrupted, key missing)."""
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class BacklogGroup:
    """Entries of one operation in one state that still hold their key (the metrics)."""

    service: str
    operation: str
    state: State
    count: int
    oldest: float
    """Unix time the oldest of them was accepted."""
    attempts: int
    """Attempts spent on them so far."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the journal still has to deliver, or waits on a decision for."""

    groups: list[BacklogGroup]
    last_errors: dict[str, tuple[float, str]]
    """Per service, the most recent failure of an entry still waiting: (when, why)."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: float
    who: str
    action: str
    entry_id: str | None
    detail: str


@dataclass(slots=True)
class RekeyReport:
    """What ``garde journal rekey`` did."""

    key_id: str
    """The current key: everything readable is sealed with it now."""
    seen: int = 0
    resealed: int = 0
    """Entries whose payload or answer was sealed with another key (or stored in clear)."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """``(entry id, why)``: damaged, or sealed with a key the ring no longer holds."""


Describe = Callable[[str, str, "str | None"], str]
"""``(service, operation, target_group) -> text``: the fallback procedure of an expired entry."""


@runtime_checkable
class JournalStore(Journal, Protocol):
    """The whole backend: what the gateway needs, plus the replayer's and the operator's side.

    Both backends implement it and ``tests/journal/test_backends.py`` runs against both.
    """

    async def receipts(
        self,
        state: State | None = None,
        service: str | None = None,
        limit: int = 100,
        after: int = 0,
    ) -> list[Receipt]:
        """Receipts in journal order, filtered by state and service (the list endpoint)."""
        ...

    async def counts(self) -> dict[tuple[str, State], int]:
        """How many entries per (service, state)."""
        ...

    async def pending_services(self) -> list[str]:
        """Services that have entries waiting (journaled or delivering)."""
        ...

    async def backlog(self) -> Backlog:
        """Entries that still hold their key, grouped for metrics and alerts."""
        ...

    def subject_key(self, subject: str) -> str:
        """The keyed digest under which entries of a token subject are found."""
        ...

    async def waiting_subjects(self) -> set[str]:
        """Subject keys of the entries in ``needs_token``."""
        ...

    async def release(self, subject: str, caller: CallerToken) -> list[Receipt]:
        """Entries of ``subject`` waiting for a token take ``caller`` and are journaled again
        (the replayer delivers them with it); their receipts."""
        ...

    async def lease(
        self,
        owner: str,
        services: Sequence[str],
        limit: int,
        lease_seconds: float,
        backoff: bool = True,
    ) -> list[Leased]:
        """Take up to ``limit`` deliverable entries: the head of their ordering key, not
        waiting out a back-off (unless ``backoff=False``: an operator's "replay now"), not
        leased by a live replayer. A corrupted entry found on the way is quarantined, never
        returned."""
        ...

    async def settle(
        self, leased: Leased, delivery: Delivery, retry_at: float | None = None
    ) -> Receipt | None:
        """Record the outcome of sending ``leased``; None if the lease was lost meanwhile."""
        ...

    async def expire(self, describe: Describe) -> list[Receipt]:
        """Move waiting entries past their deadline to ``expired`` with their procedure."""
        ...

    async def retry(self, entry_id: str, who: str) -> Receipt:
        """Operator: send a conflicting/quarantined entry again, or now instead of later."""
        ...

    async def discard(self, entry_id: str, reason: str, who: str) -> Receipt:
        """Operator: give up on an entry, with a reason (audited)."""
        ...

    async def entry(self, entry_id: str, reveal_by: str | None = None) -> EntryView:
        """The operator's view; ``reveal_by`` names who asked to see it unmasked (audited)."""
        ...

    def export(self, reveal_by: str | None = None) -> AsyncIterator[EntryView]:
        """Every entry in journal order (``garde journal export``)."""
        ...

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]: ...

    async def rekey(self, who: str) -> RekeyReport:
        """Seal every readable entry again with the current key (audited)."""
        ...

    async def record_audit(
        self, who: str, action: str, entry_id: str | None, detail: str
    ) -> None: ...
