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
from collections.abc import Callable

from garde.errors import AttemptFailed, RequestRejected
from garde.gateway.forwarding import is_server_failure
from garde.gateway.handler import Gateway
from garde.gateway.routing import OperationRoute
from garde.gateway.soapxml import check_envelope
from garde.gateway.transport import HttpTransport, Waiter, render
from garde.gateway.upstreams import Link, ServiceUpstreams
from garde.gateway.wire import HOP_BY_HOP, RESPONSE_SKIP, Reply, Request

Done = Callable[[Reply | None], None]
Fallback = Callable[[], None]


class FastPath:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        transport = gateway.transport
        self.transport: HttpTransport | None = None
        if gateway.config.fast_path and isinstance(transport, HttpTransport):
            self.transport = transport
        self.services = {entry.prefix: entry for entry in gateway.router.services if entry.soap}

    def try_serve(self, request: Request, done: Done, fallback: Fallback) -> bool:
        """Start serving ``request``; False if it must take the general path instead."""
        gateway = self.gateway
        transport = self.transport
        fields = request.fields
        if (
            transport is None
            or request.method != b"POST"
            or gateway.full_validation
            or b"garde-identity" in fields
            or b"garde-deadline" in fields
        ):
            return False
        entry = self.services.get(request.path)
        if entry is None:
            return False
        route = gateway.router.by_action(entry, fields.get(b"soapaction"))
        if route is None or not route.retry_safe or route.needs_envelope:
            return False
        try:
            check_envelope(request.body)
        except RequestRejected:
            return False  # the general path refuses it, with the explanation
        upstreams = gateway.upstreams[route.service.id]
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
        headers = [
            (name, value)
            for name, value in request.headers
            if name.lower() not in HOP_BY_HOP and name[:6].lower() != b"garde-"
        ]
        endpoint = link.endpoint
        target = endpoint.base_target + request.target[len(entry.prefix) :]
        started = time.monotonic()
        waiter = transport.send_now(
            endpoint, render(endpoint, b"POST", target, headers, request.body), timeout
        )
        if waiter is None:
            return False
        gateway.budget.deposit()
        waiter.hook = lambda: self._answered(
            waiter, route, upstreams, link, started, done, fallback
        )
        return True

    def _answered(
        self,
        waiter: Waiter,
        route: OperationRoute,
        upstreams: ServiceUpstreams,
        link: Link,
        started: float,
        done: Done,
        fallback: Fallback,
    ) -> None:
        gateway = self.gateway
        attempts = gateway.metrics.attempts
        service = route.service.id
        error = waiter.exception()
        if error is not None:
            reason = error.reason if isinstance(error, AttemptFailed) else "error"
            attempts[(service, link.dc, reason)] += 1
            upstreams.failed(link, reason)
            fallback()  # retry-safe: the general path starts over, with every rule
            return
        response = waiter.result()
        if is_server_failure(response):
            attempts[(service, link.dc, f"http_{response.status}")] += 1
            upstreams.failed(link, f"HTTP {response.status}")
            fallback()
            return
        elapsed = time.monotonic() - started
        link.latency = link.latency + 0.1 * (elapsed - link.latency) if link.latency else elapsed
        attempts[(service, link.dc, "ok")] += 1
        upstreams.succeeded(link)
        out = [(n, v) for n, v in response.headers if n.lower() not in RESPONSE_SKIP]
        out.append((b"Garde-Data-Center", link.dc.encode()))
        out.append((b"Garde-Mode", upstreams.mode.value.encode()))
        gateway.metrics.requests[(route.label, "forwarded")] += 1
        gateway.metrics.observe(service, elapsed)
        done(Reply(response.status, out, response.body))
