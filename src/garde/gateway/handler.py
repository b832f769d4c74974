"""The gateway: from a parsed request to a reply, through routing, tokens, forwarding and the
continuity policy. ``app.py`` feeds it from sockets; tests call ``handle`` directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Protocol

from garde.catalog import Catalog, Continuity, Kind, WireProtocol
from garde.errors import RequestRejected, TokenUnavailable, UpstreamUnavailable
from garde.gateway.admin import Admin
from garde.gateway.board import WorkerBoard
from garde.gateway.budget import RetryBudget
from garde.gateway.cache import StaleCache
from garde.gateway.callers import CallerTokens, sighted
from garde.gateway.config import GatewayConfig
from garde.gateway.contracts import ContractCache, is_contract_request
from garde.gateway.events import EventHub
from garde.gateway.forwarding import Forwarder
from garde.gateway.hedging import HedgeBudget, HedgeDelays
from garde.gateway.metrics import Metrics
from garde.gateway.policy import ContinuityPolicy, ForwardFailure
from garde.gateway.refusals import rejection_fault, rejection_problem
from garde.gateway.routing import OperationRoute, Router
from garde.gateway.tokens import Credential, Token, TokenManager, parse_token_response
from garde.gateway.transport import Headers, Transport
from garde.gateway.upstreams import ServiceUpstreams
from garde.gateway.wire import HOP_BY_HOP, RESPONSE_SKIP, Reply, Request
from garde.journal import Journal, JournalStore, new_idempotency_key
from garde.soap import (
    REQUEST_SECURE_TOKEN,
    Envelope,
    check_charset,
    check_envelope,
    first_body_child,
    parse_envelope,
    read_fault,
    session_credentials,
    token_request,
    with_token,
)

log = logging.getLogger("garde.gateway")

TOKEN_FAULTS = ("InvalidSecurityToken", "MessageExpired")


def parse_deadline(value: bytes | None, default: float, now: float) -> float:
    """Seconds left for this request: ``Garde-Deadline`` (seconds, or RFC 3339) or default."""
    if value is None:
        return default
    text = value.decode("latin-1").strip()
    seconds = _number(text)
    if seconds is None:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RequestRejected(
                400,
                f"Garde-Deadline {text!r} is neither seconds from now (2.5) nor an RFC 3339"
                " time (2026-01-27T10:00:00Z)",
            ) from None
        if moment.tzinfo is None:
            raise RequestRejected(400, "Garde-Deadline as a time needs a zone: add Z or +01:00")
        return moment.timestamp() - now
    if seconds != seconds or seconds <= 0:  # NaN or not in the future
        raise RequestRejected(400, f"Garde-Deadline must be a positive number of seconds: {text}")
    return seconds


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class Gateway:
    def __init__(
        self,
        catalog: Catalog,
        transport: Transport,
        config: GatewayConfig | None = None,
        journal: Journal | None = None,
        *,
        admin: bool = False,
        board: WorkerBoard | None = None,
    ) -> None:
        """``admin``: answer ``/_garde/`` and ``/metrics`` (a gateway that only sends, as
        ``garde journal replay``'s, has none); ``board``: this is one of several workers, and
        they share counters and modes there."""
        self.catalog = catalog
        self.config = config or GatewayConfig()
        self.transport = transport
        self.journal = journal
        self.router = Router(catalog)
        self.metrics = Metrics()
        self.events = EventHub()
        self.upstreams = {
            sid: ServiceUpstreams(service, self.config.outlier, on_change=self.events.mode_changed)
            for sid, service in catalog.services.items()
        }
        self.budget = RetryBudget(
            self.config.retry_ratio, min_per_second=self.config.retry_min_per_second
        )
        config = self.config
        self.hedge_delays = HedgeDelays(
            quantile=config.hedge_quantile,
            floor=config.hedge_min_delay,
            ceiling=config.hedge_max_delay,
        )
        """How long each operation usually takes on each data center: when to hedge."""
        self.hedge_budget = HedgeBudget(
            self.budget, config.hedge_ratio, min_per_second=config.hedge_min_per_second
        )
        self.forwarder = Forwarder(
            self.upstreams,
            transport,
            self.budget,
            self.metrics,
            connect_timeout=config.connect_timeout,
            min_try_timeout=config.min_try_timeout,
            try_timeout_factor=config.try_timeout_factor,
            hedge_delays=self.hedge_delays if config.hedge else None,
            hedge_budget=self.hedge_budget,
        )
        self.cache = StaleCache(self.config.cache_entries)
        self.contracts = ContractCache(self.router, self.forwarder, self.upstreams)
        """The services' WSDLs and schemas, passed on and kept (``contracts.py``)."""
        self.callers = CallerTokens(journal if isinstance(journal, JournalStore) else None)
        """Callers' own tokens: the freshest per subject, the subjects the journal waits for."""
        self.policy = ContinuityPolicy(
            catalog,
            self.upstreams,
            self.cache,
            journal,
            target_group=self.config.target_group,
            retry_after=self.config.retry_after,
            soap_fault_status=self.config.soap_fault_status,
            callers=self.callers,
        )
        self.tokens = TokenManager(self.config.identities, self._fetch_token)
        self.started = time.time()
        self.full_validation = self.config.xml_validation == "full"
        self.board = board
        self.data_plane: DataPlaneTap | None = None
        """The native data plane, while it serves this gateway's socket."""
        self.admin: Admin | None = Admin(self) if admin else None

    # -- the native data plane -----------------------------------------------------------------
    def attach_data_plane(self, plane: DataPlaneTap) -> None:
        """``plane`` serves requests beside this gateway from now on: reports drain it."""
        self.data_plane = plane

    def detach_data_plane(self, plane: DataPlaneTap) -> None:
        if self.data_plane is plane:
            self.data_plane = None

    def sync_reports(self) -> None:
        """Before a report (status, metrics): bring in what the native data plane counted,
        so that a report sees every request answered before it."""
        if self.data_plane is not None:
            self.data_plane.drain()

    # -- the hot path --------------------------------------------------------------------------
    async def handle(self, request: Request) -> Reply:
        path = request.path
        if path.startswith("/_garde/") or path == "/metrics":
            if self.admin is None:
                return self.reject(RequestRejected(404, "no admin endpoints here"), request)
            # A real Task: admin and journal code may use asyncio features needing one.
            return await asyncio.ensure_future(self.admin.handle(request))
        started = time.monotonic()
        try:
            entry = self.router.service(path)
            if b"%" in request.target or "/." in path or "//" in path or "\\" in path:
                _check_path(path, request.target)
            envelope: Envelope | None = None
            fields = request.fields
            if entry.soap and request.method == b"GET" and is_contract_request(request):
                reply, outcome = await self.contracts.serve(entry, request)
                self.metrics.requests[(f"{entry.service.id}.wsdl", outcome)] += 1
                return reply
            if entry.soap:
                if request.method != b"POST":
                    raise RequestRejected(
                        405, f"SOAP operations are called with POST, not {request.method.decode()}"
                    )
                check_charset(fields.get(b"content-type"))
                found = self.router.by_action(entry, fields.get(b"soapaction"))
                if (
                    found is None
                    or self.full_validation
                    or found.needs_envelope
                    or b"garde-identity" in fields
                    or self.callers.wanted  # entries wait for a token this call may carry
                ):
                    # No bound here: the body was bounded by max_body as it was read.
                    envelope = parse_envelope(request.body, max_bytes=None)
                    if found is None:
                        route = self.router.by_element(entry, envelope)
                    else:
                        self.router.check_action(entry, found, envelope)
                        route = found
                else:
                    # Identified by SOAPAction and nothing needed from the body: checked, not
                    # parsed (the parse would cost more than the rest of the request), unless
                    # its first element is not plainly the SOAPAction's operation's.
                    check_envelope(request.body)
                    if found.element is None or first_body_child(request.body) != found.element:
                        envelope = parse_envelope(request.body, max_bytes=None)
                        self.router.check_action(entry, found, envelope)
                    route = found
            else:
                route = self.router.by_rest(entry, request.method.decode(), path)
            deadline = fields.get(b"garde-deadline")
            seconds = (
                route.timeout
                if deadline is None
                else parse_deadline(deadline, route.timeout, time.time())
            )
        except RequestRejected as exc:
            return self.reject(exc, request)
        self.budget.deposit()
        reply, outcome = await self._serve(
            route, entry.prefix, request, envelope, started + seconds
        )
        self.metrics.requests[(route.label, outcome)] += 1
        self.metrics.observe(route.service_id, time.monotonic() - started)
        return reply

    async def _serve(
        self,
        route: OperationRoute,
        prefix: str,
        request: Request,
        envelope: Envelope | None,
        deadline: float,
    ) -> tuple[Reply, str]:
        fields = request.fields
        headers: Headers = [
            (name, value)
            for name, value in request.headers
            if name.lower() not in HOP_BY_HOP and name[:6].lower() != b"garde-"
        ]
        idempotency_key = None
        if route.idempotency is not None:
            idempotency_key = route.idempotency.extract(fields, envelope)
            if idempotency_key is None and route.operation.kind is Kind.WRITE:
                # A write the gateway may journal gets a key now, so that a replay of an
                # attempt that did reach the service is applied once.
                idempotency_key = new_idempotency_key()
                if route.idempotency.header is not None:
                    headers.append((b"Idempotency-Key", idempotency_key.encode()))
        identity_header = fields.get(b"garde-identity")
        identity = identity_header.decode("latin-1") if identity_header else None
        body = request.body
        caller = None
        if identity is None and envelope is not None and b"Security" in body:
            caller = sighted(envelope)
            if caller is not None:
                self.callers.sight(caller)
        if identity is not None and envelope is not None:
            try:
                body = with_token(envelope, await self.tokens.token(identity))
            except RequestRejected as exc:
                return self.reject(exc, request), "rejected"
            except TokenUnavailable as exc:
                sts = self.catalog.token_service.service if self.catalog.token_service else "sts"
                failure = ForwardFailure(sts, str(exc))
                return await self._degrade(
                    route, request, envelope, identity, idempotency_key, failure
                )
        suffix = request.target[len(prefix) :]
        outcome = await self.forwarder.forward(
            route, request.method, suffix, headers, body, deadline
        )
        response = outcome.response
        if response is None:
            retry_after = None
            error = outcome.last_error_response
            if error is not None:
                value = error.header(b"retry-after")
                if value is not None and value.isdigit():
                    retry_after = int(value)
            failure = ForwardFailure(
                route.service_id, outcome.failure or "unavailable", outcome.sent, retry_after
            )
            return await self._degrade(route, request, envelope, identity, idempotency_key, failure)
        link = outcome.link
        assert link is not None
        out = [(n, v) for n, v in response.headers if n.lower() not in RESPONSE_SKIP]
        if response.status >= 500 and (identity is not None or caller is not None):
            fault = read_fault(response.body, max_bytes=None)
            if fault is not None and any(t in fault.raw_code for t in TOKEN_FAULTS):
                if identity is not None:
                    self.tokens.invalidate(identity)
                elif caller is not None:
                    # The service does not take the caller's token (forged, revoked): it
                    # must not stand in for the subject's journaled writes.
                    self.callers.refused(caller)
        elif response.status == 200 and route.continuity is Continuity.CACHEABLE:
            self.policy.remember(route, request, envelope, identity, 200, out, response.body)
        upstreams = self.upstreams[route.service_id]
        out.append((b"Garde-Data-Center", link.dc.encode()))
        out.append((b"Garde-Mode", upstreams.mode.value.encode()))
        return Reply(response.status, out, response.body), "forwarded"

    async def _degrade(
        self,
        route: OperationRoute,
        request: Request,
        envelope: Envelope | None,
        identity: str | None,
        idempotency_key: str | None,
        failure: ForwardFailure,
    ) -> tuple[Reply, str]:
        if envelope is None and route.service.protocol is WireProtocol.SOAP:
            # Read now what the fast path did not: the journal and the cache need the body.
            try:
                envelope = parse_envelope(request.body, max_bytes=None)
            except RequestRejected as exc:
                return self.reject(exc, request), "rejected"
        # Driven like the rest of the request (no Task: its start and end cost two loop
        # hops per journaled write). Every journal backend awaits plain futures only (the
        # writer thread's, ``to_thread``'s): nothing on this path needs a current Task.
        return await self.policy.degrade(
            route, request, envelope, identity, idempotency_key, failure
        )

    def reject(self, error: RequestRejected, request: Request) -> Reply:
        self.metrics.rejected[error.status] += 1
        soapish = b"soapaction" in request.fields or b"xml" in (
            request.fields.get(b"content-type") or b""
        )
        if soapish:
            return Reply(
                error.status,
                [(b"Content-Type", b"text/xml; charset=utf-8")],
                rejection_fault(error.status, str(error)),
            )
        return Reply(
            error.status,
            [(b"Content-Type", b"application/problem+json")],
            rejection_problem(error.status, str(error)),
        )

    # -- tokens ----------------------------------------------------------------------------------
    async def _fetch_token(self, identity: str, credential: Credential) -> Token:
        token_service = self.catalog.token_service
        if token_service is None:
            raise UpstreamUnavailable("the catalog names no token_service")
        service = self.catalog.services[token_service.service]
        operation = service.operations[token_service.operation]
        route = next(r for r in self.router.services if r.service.id == service.id).by_element.get(
            service.body_element_of(operation) or ""
        )
        if route is None:
            raise UpstreamUnavailable("the token service's operation cannot be routed")
        headers: Headers = [
            (b"Content-Type", b"text/xml; charset=utf-8"),
            # The SOAPAction of the SAML 1.1 request, whatever the catalog names the operation.
            (b"SOAPAction", f'"{REQUEST_SECURE_TOKEN}"'.encode()),
        ]
        # RSA signing (and, the first time, making the session key) off the event loop.
        body = await asyncio.to_thread(
            lambda: token_request(identity, session_credentials(identity, credential.kind))
        )
        outcome = await self.forwarder.forward(
            route,
            b"POST",
            b"",
            headers,
            body,
            time.monotonic() + route.timeout,
        )
        if outcome.response is None:
            raise UpstreamUnavailable(f"STS unavailable: {outcome.failure}")
        if outcome.response.status != 200:
            fault = read_fault(outcome.response.body, max_bytes=None)
            why = fault.string if fault else f"HTTP {outcome.response.status}"
            raise UpstreamUnavailable(f"STS refused the {credential.kind} login: {why}")
        return parse_token_response(outcome.response.body)

    # -- lifecycle -------------------------------------------------------------------------------
    async def close(self) -> None:
        await self.transport.close()
        if self.journal is not None:
            await self.journal.close()


class DataPlaneTap(Protocol):
    """What the gateway needs of a data plane serving beside it (``native.NativePlane``)."""

    def drain(self) -> None:
        """Bring the requests it answered into the gateway's counters and modes."""

    def counters(self) -> dict[str, object]:
        """Its own counters, for ``/_garde/status``."""


def _check_path(path: str, target: bytes) -> None:
    lowered = target.lower()
    # A segment's matrix parameters (";x") are cut off first: some servers read "..;" as "..".
    segments = [segment.split(";", 1)[0] for segment in path.split("/")]
    if (
        ".." in segments
        or "." in segments
        or "//" in path
        or "\\" in path  # some servers read a backslash as a slash: ..\ is ..
        or b"%2e" in lowered
        or (b"%2f" in lowered or b"%5c" in lowered)
        or b"%25" in lowered.split(b"?", 1)[0]  # double encoding: "%252e" decodes to "%2e"
    ):
        raise RequestRejected(
            400,
            "dot segments (also as ..;/ or ..\\), empty segments, backslashes and encoded"
            " slashes, dots or percent signs are refused in paths: call the operation's path"
            " as the catalog gives it",
        )
