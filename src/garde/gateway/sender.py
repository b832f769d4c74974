"""The gateway's upstream side for the replayer: send one journaled write now.

Same data-center choice, breaker and retry rules as live traffic, with a fresh token for the
entry's identity. The answer is classified for the journal: delivered (2xx), conflict (the
service refused it for a business reason: replaying again cannot help), or retry later
(unreachable, throttled, token trouble) with the service's Retry-After when it gave one.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from garde.errors import RequestRejected, TokenUnavailable
from garde.gateway.handler import TOKEN_FAULTS, Gateway
from garde.gateway.routing import OperationRoute
from garde.gateway.transport import Headers
from garde.journal import Answer, CallerToken, Delivery, Outcome, Submission
from garde.soap import (
    SOAP12_ENV_NS,
    SOAP_ENV_NS,
    TOKEN_VALUE_TYPE,
    WSSE_NS,
    parse_envelope,
    read_fault,
    with_security,
    with_token,
)

DEFAULT_RETRY = 30.0
FAILURE_EVIDENCE = 5.0
"""Seconds a failed request keeps the journal away from a data center (unless a request or
a health check succeeds there before): then one replay attempt finds out again."""
LIVE_EVIDENCE = 30.0
"""Seconds a request answered by a data center counts as proof that it serves, whatever
its health check says."""

# A journaled payload as the gateway stored it (lxml's serialization of the envelope without
# its WS-Security header): an XML declaration, the Envelope start tag, then the Body or the
# empty Header the stripping left.
_HEADLESS = re.compile(
    rb"\A(?P<head><\?xml[^>]*\?>\s*<(?:(?P<p>[A-Za-z_][\w.-]*):)?Envelope\b(?P<attrs>[^>]*)>)"
    rb"(?P<header><(?:(?P<hp>[A-Za-z_][\w.-]*):)?Header/>)?"
    rb"(?P<body><(?:(?P<bp>[A-Za-z_][\w.-]*):)?Body>)"
)
_XMLNS = re.compile(rb"""\sxmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*["']([^"']*)["']""")
_SOAP = (SOAP_ENV_NS.encode(), SOAP12_ENV_NS.encode())
_SECURITY = (
    b'<wsse:Security xmlns:wsse="%s"><wsse:BinarySecurityToken ValueType="%s">%%s'
    b"</wsse:BinarySecurityToken></wsse:Security>" % (WSSE_NS.encode(), TOKEN_VALUE_TYPE.encode())
)

_SECURITY_OPEN = b'<wsse:Security xmlns:wsse="%s">' % WSSE_NS.encode()
_SECURITY_CLOSE = b"</wsse:Security>"


@functools.lru_cache(maxsize=256)
def _declared(attributes: bytes) -> dict[bytes | None, bytes]:
    """Namespace prefixes declared by an Envelope start tag (few distinct ones: cached)."""
    return {m.group(1): m.group(2) for m in _XMLNS.finditer(attributes)}


@functools.lru_cache(maxsize=256)
def _wire_headers(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """A journaled entry's headers as sent, without any idempotency key of its own (the
    entry's is added); few distinct sets (one per operation): cached."""
    return tuple(
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in headers
        if name.lower() != "idempotency-key"
    )


def add_token(payload: bytes, token: str) -> bytes:
    """``payload`` with a WS-Security header carrying the gateway's ``token``.

    The same bytes as ``with_token(parse_envelope(payload), token)``, spliced in without a
    parse when the payload has the shape the gateway journals (no header, or the empty one
    that stripping the token left), which is every entry the replayer sends; anything else
    goes through the parser.
    """
    security = (
        _SECURITY_OPEN + token.encode() + _SECURITY_CLOSE
        if token.startswith("<")  # an STS assertion, as XML
        else _SECURITY % escape(token).encode()
    )
    spliced = _splice(payload, security)
    return (
        spliced
        if spliced is not None
        else with_token(parse_envelope(payload, max_bytes=None), token)
    )


def add_security(payload: bytes, security: bytes) -> bytes:
    """``payload`` with ``security`` (a caller's whole ``wsse:Security`` element) as its
    WS-Security header: spliced as ``add_token`` does, else through the parser."""
    spliced = _splice(payload, security)
    return (
        spliced
        if spliced is not None
        else with_security(parse_envelope(payload, max_bytes=None), security)
    )


def _splice(payload: bytes, security: bytes) -> bytes | None:
    found = _HEADLESS.match(payload)
    if found is None:
        return None
    prefix = found["p"]
    if (
        found["bp"] != prefix
        or (found["header"] is not None and found["hp"] != prefix)
        or _declared(found["attrs"]).get(prefix) not in _SOAP
    ):
        return None
    tag = prefix + b":Header" if prefix else b"Header"
    header = b"<" + tag + b">" + security + b"</" + tag + b">"
    return payload[: found.end("head")] + header + payload[found.start("body") :]


def _needs_token(own: CallerToken) -> str:
    expired = datetime.fromtimestamp(own.not_on_or_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"the caller's own token expired at {expired} and no newer token of the same subject"
        " has reached this gateway since: the subject's next call with a valid token"
        " releases it"
    )


class GatewaySender:
    def __init__(self, gateway: Gateway, on_needs_token: Callable[[], None] | None = None) -> None:
        self.gateway = gateway
        self.on_needs_token = on_needs_token
        """Called when an entry must wait for a newer token of its caller (the gateway then
        reads the waiting subjects at once, not at its next round)."""
        self._routes: dict[tuple[str, str], OperationRoute] = {}

    def ready(self, service: str) -> bool:
        """``ServiceReady`` for the replayer: some data center of ``service`` is known to
        serve, or may be tried once (a half-open breaker's trial).

        Stricter than live traffic, which also tries a data center failing its health
        checks (it might still answer): a journaled write can wait, and attempts spent on a
        service known to be down only push its entries' next try further away. So a data
        center whose latest news is a failed request (the one that just journaled a write,
        most often) is not tried for ``FAILURE_EVIDENCE`` seconds, unless a request or a
        health check succeeds there first: the outage's first seconds, before the breakers
        and health checks agree, cost no replay attempts. Live answers outweigh the health
        check: a data center that served a request within ``LIVE_EVIDENCE`` seconds serves
        the journal too, so a broken health endpoint cannot hold writes back while the
        service works.
        """
        upstreams = self.gateway.upstreams.get(service)
        if upstreams is None:
            return False
        now = upstreams.clock()
        for link in upstreams.links:
            if link.ejected_until > now:
                continue
            if link.probation:  # half-open: one trial at a time
                if not link.trial_in_flight:
                    return True
                continue
            if link.failed_last(now, FAILURE_EVIDENCE):
                continue
            if link.healthy or now - link.answered_at < LIVE_EVIDENCE:
                return True
        return False

    def _route(self, submission: Submission) -> OperationRoute:
        key = (submission.service, submission.operation)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self._find_route(submission)
        return found

    def _find_route(self, submission: Submission) -> OperationRoute:
        for entry in self.gateway.router.services:
            if entry.service.id == submission.service:
                for route in entry.by_element.values():
                    if route.operation_id == submission.operation:
                        return route
                for route in entry.by_action.values():
                    if route.operation_id == submission.operation:
                        return route
        raise RequestRejected(404, f"{submission.service}.{submission.operation} is not routable")

    async def send(self, submission: Submission) -> Delivery:
        delivery = await self._send(submission)
        if delivery.outcome is Outcome.NEEDS_TOKEN and self.on_needs_token is not None:
            self.on_needs_token()
        return delivery

    async def _send(self, submission: Submission) -> Delivery:
        gateway = self.gateway
        try:
            route = self._route(submission)
        except RequestRejected as exc:
            return Delivery(Outcome.CONFLICT, reason=str(exc))
        body = submission.payload
        caller = None
        if submission.identity:
            try:
                body = add_token(body, await gateway.tokens.token(submission.identity))
            except TokenUnavailable as exc:
                return Delivery(Outcome.RETRY_LATER, reason=str(exc), retry_after=DEFAULT_RETRY)
            except RequestRejected as exc:
                return Delivery(Outcome.CONFLICT, reason=str(exc))
        elif submission.caller is not None:
            caller = gateway.callers.for_replay(submission.caller)
            if caller is None:
                return Delivery(Outcome.NEEDS_TOKEN, reason=_needs_token(submission.caller))
            body = add_security(body, caller.security)
        headers: Headers = [
            *_wire_headers(submission.headers),
            (b"Idempotency-Key", submission.idempotency_key.encode()),
        ]
        timeout = route.timeout
        if submission.deadline is not None:
            timeout = min(timeout, submission.deadline - time.time())
            if timeout <= 0:
                return Delivery(Outcome.CONFLICT, reason="deadline passed before delivery")
        outcome = await gateway.forwarder.forward(
            route, b"POST", b"", headers, body, time.monotonic() + timeout
        )
        response = outcome.response or outcome.last_error_response
        if response is None:
            # Nobody answered, so nobody asked for a pause: the replayer's own back-off per
            # entry applies, and the health checks keep it from trying while all are down.
            return Delivery(Outcome.RETRY_LATER, reason=outcome.failure, unreachable=True)
        answer = Answer(
            response.status,
            response.body,
            (response.header(b"content-type") or b"text/xml; charset=utf-8").decode("latin-1"),
        )
        status = response.status
        if 200 <= status < 300:
            return Delivery(Outcome.DELIVERED, answer=answer)
        if status in (429, 503):
            value = response.header(b"retry-after")
            retry = float(value) if value is not None and value.isdigit() else DEFAULT_RETRY
            return Delivery(
                Outcome.RETRY_LATER, answer=answer, reason=f"HTTP {status}", retry_after=retry
            )
        fault = read_fault(response.body, max_bytes=None)
        if fault is not None:
            code, text, business = fault.raw_code, fault.string, fault.business_code
            if any(t in code for t in TOKEN_FAULTS):
                if caller is not None:
                    # The caller's token (or its stand-in) was refused: only a newer one of
                    # the same subject can send it now.
                    gateway.callers.refused(caller)
                    reason = f"the service refused the caller's token ({code}: {text})"
                    return Delivery(Outcome.NEEDS_TOKEN, reason=reason)
                if submission.identity:
                    gateway.tokens.invalidate(submission.identity)
                return Delivery(Outcome.RETRY_LATER, answer=answer, reason=text, retry_after=1.0)
            if business is not None or "Client" in code:
                reason = f"{business or code}: {text}"
                return Delivery(Outcome.CONFLICT, answer=answer, reason=reason)
            return Delivery(
                Outcome.RETRY_LATER, answer=answer, reason=text, retry_after=DEFAULT_RETRY
            )
        if 400 <= status < 500:
            return Delivery(Outcome.CONFLICT, answer=answer, reason=f"HTTP {status}")
        return Delivery(
            Outcome.RETRY_LATER, answer=answer, reason=f"HTTP {status}", retry_after=DEFAULT_RETRY
        )
