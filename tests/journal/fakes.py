"""An in-process upstream that behaves like the lab's services where the journal cares:
it applies an idempotency key once per (service, operation) and answers a replay with the
first answer, can be down, can refuse for a business reason, can ask for room."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from garde.journal.base import Answer, Delivery, Outcome, Submission


@dataclass
class FakeUpstream:
    down: set[str] = field(default_factory=set)
    refuse: dict[str, str] = field(default_factory=dict)
    """idempotency key -> business reason of a conflict."""
    retry_after: float | None = None
    effects: list[Submission] = field(default_factory=list)
    """Each business effect, once, in the order it was applied (the ledger)."""
    answers: dict[tuple[str, str, str], Answer] = field(default_factory=dict)
    sends: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_key: dict[str | None, list[str]] = field(default_factory=lambda: defaultdict(list))
    gate: asyncio.Event | None = None

    async def send(self, submission: Submission) -> Delivery:
        self.sends += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            return self._apply(submission)
        finally:
            self.in_flight -= 1

    def _apply(self, submission: Submission) -> Delivery:
        if submission.service in self.down:
            if self.retry_after is not None:
                return Delivery(Outcome.RETRY_LATER, reason="429", retry_after=self.retry_after)
            return Delivery(Outcome.RETRY_LATER, reason="connection refused", unreachable=True)
        key = (submission.service, submission.operation, submission.idempotency_key)
        if key in self.answers:
            return Delivery(Outcome.DELIVERED, self.answers[key])
        reason = self.refuse.get(submission.idempotency_key)
        if reason is not None:
            return Delivery(Outcome.CONFLICT, Answer(500, b"<fault/>"), reason)
        answer = Answer(200, f"<ok n='{len(self.effects)}'/>".encode())
        self.answers[key] = answer
        self.effects.append(submission)
        self.by_key[submission.ordering_key].append(submission.idempotency_key)
        return Delivery(Outcome.DELIVERED, answer)

    def duplicates(self) -> list[str]:
        seen: set[tuple[str, str, str]] = set()
        doubled = []
        for s in self.effects:
            key = (s.service, s.operation, s.idempotency_key)
            if key in seen:
                doubled.append(s.idempotency_key)
            seen.add(key)
        return doubled
