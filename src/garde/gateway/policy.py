"""Continuity decisions: what the caller gets when no data center can serve.

By the operation's continuity class: ``cacheable`` reads get the last good answer marked
stale; ``deferrable`` and ``async`` writes go to the journal and the caller gets a receipt
(202) only once it is durable; ``online`` operations (and anything the first two cannot
cover) get a refusal naming the failing service and the caller's fallback procedure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from garde.catalog import Catalog, Continuity
from garde.errors import JournalUnavailable
from garde.gateway.cache import StaleCache
from garde.gateway.callers import CallerTokens, CannotJournal, caller_token
from garde.gateway.journaled import SOAP_TYPE, journaled_reply
from garde.gateway.refusals import Refusal, language_of, procedure_for
from garde.gateway.routing import OperationRoute
from garde.gateway.upstreams import Mode, ServiceUpstreams
from garde.gateway.wire import Reply, Request
from garde.journal import CallerToken, Journal, Submission, new_idempotency_key
from garde.signals import Signal
from garde.soap import Envelope, body_bytes, without_security

log = logging.getLogger("garde.gateway")

JSON_PROBLEM = (b"Content-Type", b"application/problem+json")


@dataclass(slots=True)
class ForwardFailure:
    """Why forwarding gave no usable answer."""

    service: str
    """The failing service: the operation's own, or the STS when no token could be had."""
    reason: str
    sent: bool = False
    retry_after: int | None = None


def cache_key(
    route: OperationRoute, request: Request, envelope: Envelope | None, identity: str | None
) -> tuple[str, ...]:
    key: str | None = None
    if route.cache is not None:
        key = route.cache.extract(request.fields, envelope)
    if key is None:
        key = (
            body_bytes(envelope).decode("utf-8", "replace")
            if envelope is not None
            else request.target.decode("latin-1")
        )
    parts = (route.label, key)
    return (*parts, identity or "") if route.per_caller else parts


def journal_deadline(route: OperationRoute, now: float) -> float | None:
    deadline = route.deadline
    if deadline is None:
        return None
    if deadline == "same_day":
        local = datetime.fromtimestamp(now).astimezone()
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.timestamp()
    assert isinstance(deadline, float)
    return now + deadline


class ContinuityPolicy:
    def __init__(
        self,
        catalog: Catalog,
        upstreams: dict[str, ServiceUpstreams],
        cache: StaleCache,
        journal: Journal | None,
        *,
        target_group: str | None,
        retry_after: int,
        soap_fault_status: int = 503,
        callers: CallerTokens | None = None,
    ) -> None:
        self.catalog = catalog
        self.upstreams = upstreams
        self.cache = cache
        self.journal = journal
        self.target_group = target_group
        self.retry_after = retry_after
        self.soap_fault_status = soap_fault_status
        """503, or 500 for SOAP stacks that read a Fault only from a 500 (WS-I BP R1126)."""
        self.callers = callers
        """Callers' own tokens seen, for the entries that carry one."""
        self.entry_journaled: Signal[[str]] = Signal("entry journaled")
        """Fired after each accepted write, with its service (the replayer wakes up)."""
        self.stale_served = 0
        self._journal_failure_logged = float("-inf")
        self.journaled = 0
        self.refused = 0

    def remember(
        self,
        route: OperationRoute,
        request: Request,
        envelope: Envelope | None,
        identity: str | None,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        """Keep a good answer of a cacheable read for when no data center can serve."""
        self.cache.store(cache_key(route, request, envelope, identity), status, headers, body)

    async def degrade(
        self,
        route: OperationRoute,
        request: Request,
        envelope: Envelope | None,
        identity: str | None,
        idempotency_key: str | None,
        failure: ForwardFailure,
    ) -> tuple[Reply, str]:
        """The reply when forwarding failed, and the outcome label for metrics."""
        continuity = route.continuity
        if continuity is Continuity.CACHEABLE:
            found = self.cache.get(cache_key(route, request, envelope, identity), route.max_stale)
            if found is not None:
                entry, age = found
                self.stale_served += 1
                seconds = str(int(age)).encode()
                headers = [
                    *entry.headers,
                    (b"Age", seconds),
                    (b"Garde-Stale", seconds),
                    (b"Garde-Mode", Mode.DEGRADED.value.encode()),
                ]
                return Reply(entry.status, headers, entry.body), "stale"
        elif continuity in (Continuity.DEFERRABLE, Continuity.ASYNC) and self.journal is not None:
            caller = None
            if identity is None:
                try:
                    caller = self._caller(route, envelope)
                except CannotJournal as exc:
                    # Acknowledging a write that can never be sent would break the promise
                    # of the receipt: the caller follows the procedure now instead.
                    why = f"{failure.reason}; not journaled: {exc}"
                    unjournaled = ForwardFailure(failure.service, why)
                    return self.refuse(route, request, envelope, unjournaled), "refused"
            try:
                return await self._journal(
                    route, request, envelope, identity, idempotency_key, caller
                )
            except JournalUnavailable as exc:
                now = time.monotonic()
                if now - self._journal_failure_logged >= 10.0:
                    self._journal_failure_logged = now
                    log.error(
                        "the journal cannot keep writes (%s): callers of %s get 503 with the"
                        " procedure instead of a receipt",
                        exc,
                        route.label,
                    )
                failure = ForwardFailure(
                    failure.service, f"{failure.reason}; journal: {exc}", failure.sent
                )
        return self.refuse(route, request, envelope, failure), "refused"

    def _caller(self, route: OperationRoute, envelope: Envelope | None) -> CallerToken | None:
        """The caller's own token for a write to journal without ``Garde-Identity``;
        ``CannotJournal`` when the write could not be sent later as it is."""
        token = caller_token(envelope) if envelope is not None else None
        if token is not None:
            if self.callers is not None:
                self.callers.sight(token)
            return token
        sts = self.catalog.token_service
        if sts is not None and sts.service in route.service.depends_on:
            raise CannotJournal(
                f"{route.service_id} needs an STS token and the request carries none (no"
                " Garde-Identity, no wsse:Security): the write could never be sent; send your"
                " token, or Garde-Identity to let the gateway attach one"
            )
        return None

    async def _journal(
        self,
        route: OperationRoute,
        request: Request,
        envelope: Envelope | None,
        identity: str | None,
        idempotency_key: str | None,
        caller: CallerToken | None = None,
    ) -> tuple[Reply, str]:
        assert self.journal is not None
        now = time.time()
        payload = without_security(envelope) if envelope is not None else request.body
        forwarded = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers
            if name.lower() in (b"content-type", b"soapaction")
        )
        ordering = route.ordering.extract(request.fields, envelope) if route.ordering else None
        group = request.header(b"garde-target-group")
        submission = Submission(
            service=route.service_id,
            operation=route.operation_id,
            identity=identity or "",
            target_group=group.decode("latin-1") if group else self.target_group,
            idempotency_key=idempotency_key or new_idempotency_key(),
            ordering_key=ordering,
            payload=payload,
            headers=forwarded,
            deadline=journal_deadline(route, now),
            caller=caller,
        )
        receipt = await self.journal.accept(submission)
        self.journaled += 1
        self.entry_journaled.emit(route.service_id)
        soap_namespace = envelope.soap_namespace if envelope is not None else None
        return journaled_reply(route, request, receipt, soap_namespace), "journaled"

    def refuse(
        self,
        route: OperationRoute,
        request: Request,
        envelope: Envelope | None,
        failure: ForwardFailure,
    ) -> Reply:
        self.refused += 1
        group_header = request.header(b"garde-target-group")
        group = group_header.decode("latin-1") if group_header else self.target_group
        language = language_of(request.header(b"accept-language"))
        upstreams = self.upstreams.get(failure.service)
        since = (
            upstreams.mode_since
            if upstreams is not None and upstreams.mode is not Mode.NORMAL
            else time.time()
        )
        retry_after = failure.retry_after or self.retry_after
        if failure.service == route.service_id:
            procedure = procedure_for(
                self.catalog, route.service_id, route.operation_id, group, language
            )
        else:
            token = self.catalog.token_service
            op = token.operation if token is not None else ""
            procedure = procedure_for(self.catalog, failure.service, op, group, language)
        refusal = Refusal(
            status=503,
            kind="service-unavailable",
            title=f"{failure.service} is unavailable",
            detail=failure.reason,
            service=failure.service,
            operation=route.operation_id,
            since=since,
            retry_after=retry_after,
            target_group=group,
            language=language,
            procedure=procedure,
            outcome="unknown"
            if failure.sent and route.operation.kind.value == "write"
            else "not_sent",
        )
        headers = [
            (b"Retry-After", str(retry_after).encode()),
            (b"Garde-Mode", (upstreams.mode.value if upstreams else "offline").encode()),
            (b"Content-Language", language.encode()),
        ]
        if envelope is not None or route.service.protocol.value == "soap":
            return Reply(self.soap_fault_status, [*headers, SOAP_TYPE], refusal.soap_body())
        return Reply(503, [*headers, JSON_PROBLEM], refusal.json_body())
