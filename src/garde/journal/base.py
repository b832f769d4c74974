"""The journal's seam: what the gateway hands over, what it gets back, what a backend does.

The gateway calls ``Journal.accept`` when no data center can take a deferrable or async write,
and answers 202 with the receipt only after ``accept`` returned (the entry is durable by
then). The replayer hands entries back to the gateway's upstream side through ``Sender``.
Backends (SQLite, PostgreSQL) implement ``Journal``; one test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


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


class Outcome(StrEnum):
    DELIVERED = "delivered"
    CONFLICT = "conflict"
    RETRY_LATER = "retry_later"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of one attempt to send a journaled entry upstream."""

    outcome: Outcome
    answer: Answer | None = None
    reason: str | None = None
    retry_after: float | None = None
    """Seconds the service asked us to wait (429/503 Retry-After)."""


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
