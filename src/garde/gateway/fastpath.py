"""The common case without coroutines: a retry-safe SOAP call, identified by its SOAPAction,
passed through on an idle keep-alive connection to the first data center of the plan.

Profiles showed each microsecond of Python per request costing about two in throughput (the
write system calls get dearer as the process holds the CPU longer), so this case runs as
plain callbacks: look up, write upstream; on the answer, book-keep and write back. Anything
else (a write, a token to attach, a deadline header, no idle connection, a half-open
breaker, a failure) goes to the general path in ``handler.py``, which applies every rule.
Only retry-safe operations take this path, so when its one attempt fails the general path
may simply start over.
"""

from __future__ import annotations

import time
from typing import Protocol

from garde.errors import AttemptFailed, RequestRejected
from garde.gateway.forwarding import FAILING_STATUSES, is_server_failure
from garde.gateway.handler import Gateway
from garde.gateway.routing import OperationRoute
from garde.gateway.transport import RawTransport, Response
from garde.gateway.upstreams import Link, Mode, ServiceUpstreams
from garde.gateway.wire import RESPONSE_SKIP, Request, status_line
from garde.soap import check_charset, check_envelope, first_body_child, parse_envelope

Servable = tuple[OperationRoute, ServiceUpstreams]
"""An operation this path may serve, with its data centers."""


_CONTENT_LENGTHS: dict[int, bytes] = {}


def content_length(size: int) -> bytes:
    """The ``Content-Length`` header line for ``size``: formatting bytes costs more than a
    look-up, and a service's requests and answers come in few sizes."""
    line = _CONTENT_LENGTHS.get(size)
    if line is None:
        line = b"Content-Length: %d\r\n" % size
        if len(_CONTENT_LENGTHS) < 4096:  # bounded: callers choose what they send
            _CONTENT_LENGTHS[size] = line
    return line


class Client(Protocol):
    """The caller's connection, as the fast path answers it."""

    def answer(self, request: Request, data: bytes) -> None:
        """Write ``data`` (a whole HTTP response) and go on with the next request."""

    def general(self, request: Request) -> None:
        """Serve ``request`` on the general path instead."""


class FastPath:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        transport = gateway.transport
        self.transport: RawTransport | None = None
        if gateway.config.fast_path_mode() != "off" and isinstance(transport, RawTransport):
            self.transport = transport
        self.services = {entry.prefix: entry for entry in gateway.router.services if entry.soap}
        self.routes: dict[tuple[str, bytes | None], Servable | None] = {}
        """(path, SOAPAction as sent) -> the route and its data centers, if this path may serve
        it (retry-safe, body not needed): one look-up instead of decoding the header."""
        self.tails: dict[Link, tuple[Mode, bytes, tuple[str, str, str]]] = {}
        """Per data center: the reply headers the gateway adds (rebuilt when the mode changes)
        and the metrics key of a good attempt, made once rather than per request."""

    def route(self, path: str, action: bytes | None) -> Servable | None:
        key = (path, action)
        try:
            return self.routes[key]
        except KeyError:
            pass
        entry = self.services.get(path)
        route = None if entry is None else self.gateway.router.by_action(entry, action)
        found = None
        if (
            route is not None
            and route.retry_safe
            and not route.needs_envelope
            and route.element is not None
        ):
            found = (route, self.gateway.upstreams[route.service.id])
        if len(self.routes) < 4096:  # bounded: callers choose what they send
            self.routes[key] = found
        return found

    def tail(
        self, upstreams: ServiceUpstreams, link: Link
    ) -> tuple[Mode, bytes, tuple[str, str, str]]:
        mode = upstreams.mode
        cached = self.tails.get(link)
        if cached is None or cached[0] is not mode:
            text = f"Garde-Data-Center: {link.dc}\r\nGarde-Mode: {mode.value}\r\n"
            ok = (upstreams.service.id, link.dc, "ok")
            cached = self.tails[link] = (mode, text.encode("latin-1"), ok)
        return cached

    def try_serve(self, request: Request, client: Client) -> bool:
        """Start serving ``request``; False if it must take the general path instead."""
        gateway = self.gateway
        transport = self.transport
        fields = request.fields
        if (
            transport is None
            or request.method != b"POST"
            or b"garde-identity" in fields
            or b"garde-deadline" in fields
            or gateway.callers.wanted  # the general path reads tokens journaled writes wait for
        ):
            return False
        found = self.route(request.path, fields.get(b"soapaction"))
        if found is None:
            return False
        route, upstreams = found
        try:
            check_charset(fields.get(b"content-type"))
            if gateway.full_validation:
                # Well-formed, or refused (the tree is dropped).
                parse_envelope(request.body, max_bytes=None)
            else:
                check_envelope(request.body)
        except RequestRejected:
            return False  # the general path refuses it, with the explanation
        if first_body_child(request.body) != route.element:
            return False  # another operation's body, maybe: the general path parses it
        plan = upstreams.plan()
        if not plan or plan[0].probation:
            return False  # nothing to try, or a half-open trial: the general path decides
        link = plan[0]
        config = gateway.config
        timeout = route.timeout
        if len(plan) > 1 and link.latency:
            timeout = min(
                timeout, max(config.min_try_timeout, config.try_timeout_factor * link.latency)
            )
        endpoint = link.endpoint
        body = request.body
        data = b"".join(
            (
                b"POST ",
                endpoint.base_target,
                request.target[len(request.path) :],
                b" HTTP/1.1\r\nHost: ",
                endpoint.host_header,
                b"\r\n",
                content_length(len(body)),
                *request.forwarded(),
                b"\r\n",
                body,
            )
        )  # as ``transport.render`` writes it, from the headers rendered while parsing
        exchange = _Exchange(self, client, request, route, upstreams, link)
        if not transport.send_now(endpoint, data, timeout, exchange):
            return False
        gateway.budget.deposit()
        return True


class _Exchange:
    """One fast-path request in flight, settled by the upstream connection's callback.

    A plain object rather than a future and a closure: the answer arrives in the upstream's
    read callback and is written back from there, with nothing scheduled in between.
    """

    __slots__ = ("client", "fast", "link", "request", "route", "started", "upstreams")

    def __init__(
        self,
        fast: FastPath,
        client: Client,
        request: Request,
        route: OperationRoute,
        upstreams: ServiceUpstreams,
        link: Link,
    ) -> None:
        self.fast = fast
        self.client = client
        self.request = request
        self.route = route
        self.upstreams = upstreams
        self.link = link
        self.started = time.monotonic()

    def settle(self, response: Response | None, error: BaseException | None = None) -> None:
        gateway = self.fast.gateway
        attempts = gateway.metrics.attempts
        route = self.route
        service = route.service.id
        link = self.link
        upstreams = self.upstreams
        if response is None or error is not None:
            reason = error.reason if isinstance(error, AttemptFailed) else "error"
            attempts[(service, link.dc, reason)] += 1
            upstreams.failed(link, reason)
            self.client.general(self.request)  # retry-safe: start over, with every rule
            return
        status = response.status
        if (status >= 500 or status in FAILING_STATUSES) and is_server_failure(response):
            attempts[(service, link.dc, f"http_{status}")] += 1
            upstreams.failed(link, f"HTTP {status}")
            self.client.general(self.request)
            return
        elapsed = time.monotonic() - self.started
        link.latency = link.latency + 0.1 * (elapsed - link.latency) if link.latency else elapsed
        _, tail, ok = self.fast.tail(upstreams, link)
        attempts[ok] += 1
        upstreams.succeeded(link)
        gateway.metrics.requests[(route.label, "forwarded")] += 1
        gateway.metrics.observe(service, elapsed)
        gateway.hedge_delays.observe(route.label, link.dc, elapsed)
        # The reply written as one buffer, in the order ``wire.serialize`` uses.
        body = response.body
        out = [status_line(status)]
        for name, value in response.headers:
            if name.lower() not in RESPONSE_SKIP:
                out += (name, b": ", value, b"\r\n")
        out += (tail, content_length(len(body)))
        if not self.request.keep_alive:
            out.append(b"Connection: close\r\n")
        out += (b"\r\n", body)
        self.client.answer(self.request, b"".join(out))
