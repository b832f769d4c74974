"""Send one request to the best data center, failing over only where it cannot do harm.

A connection that failed before a byte was sent is retried on the next data center for any
operation; a failure after sending only for retry-safe operations. Every retry is taken from
the retry budget, and every attempt fits in what is left of the caller's deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from garde.errors import AttemptFailed
from garde.gateway.budget import RetryBudget
from garde.gateway.metrics import Metrics
from garde.gateway.routing import OperationRoute
from garde.gateway.transport import Headers, Response, Transport
from garde.gateway.upstreams import Link, ServiceUpstreams

FAILING_STATUSES = frozenset((502, 503, 504))


@dataclass(slots=True)
class Forwarded:
    """What forwarding got: a usable answer, or why there is none."""

    response: Response | None = None
    link: Link | None = None
    failure: str | None = None
    sent: bool = False
    """An attempt may have reached a service (its effect is unknown)."""
    last_error_response: Response | None = None
    attempts: int = 0


def is_server_failure(response: Response) -> bool:
    """A response that says the data center, not the request, is the problem.

    A SOAP Fault travels as HTTP 500 and is the service answering (a business or security
    fault): it is passed to the caller, and the data center counts as healthy.
    """
    status = response.status
    if status in FAILING_STATUSES:
        return True
    if status >= 500:
        body = response.body
        return b"Fault>" not in body and b"Fault " not in body
    return False


class Forwarder:
    def __init__(
        self,
        upstreams: dict[str, ServiceUpstreams],
        transport: Transport,
        budget: RetryBudget,
        metrics: Metrics,
        *,
        connect_timeout: float = 1.0,
        min_try_timeout: float = 0.25,
        try_timeout_factor: float = 10.0,
    ) -> None:
        self.upstreams = upstreams
        self.transport = transport
        self.budget = budget
        self.metrics = metrics
        self.connect_timeout = connect_timeout
        self.min_try_timeout = min_try_timeout
        self.try_timeout_factor = try_timeout_factor

    async def forward(
        self,
        route: OperationRoute,
        method: bytes,
        suffix: bytes,
        headers: Headers,
        body: bytes,
        deadline: float,
    ) -> Forwarded:
        """Try the service's data centers in order; ``deadline`` is ``time.monotonic()`` based."""
        service = route.service.id
        upstreams = self.upstreams[service]
        outcome = Forwarded()
        plan = upstreams.plan()
        if not plan:
            outcome.failure = "no data center available (all circuit breakers open)"
            return outcome
        attempts = self.metrics.attempts
        last = len(plan) - 1
        for index, link in enumerate(plan):
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                outcome.failure = outcome.failure or "deadline passed"
                return outcome
            if outcome.attempts and outcome.sent and not route.retry_safe:
                return outcome
            if not upstreams.claim(link):
                continue  # a half-open data center whose one trial is already out
            if outcome.attempts:
                if not self.budget.withdraw():
                    upstreams.release(link)
                    self.metrics.budget_refusals += 1
                    outcome.failure = f"{outcome.failure}; retry budget spent"
                    return outcome
                self.metrics.retries += 1
            outcome.attempts += 1
            timeout = min(route.timeout, remaining)
            if route.retry_safe and index < last and link.latency:
                # A blackholed data center answers nothing: rather than spend the whole
                # deadline on it, give up well past its usual answer time and ask the next.
                timeout = min(
                    timeout, max(self.min_try_timeout, self.try_timeout_factor * link.latency)
                )
            try:
                response = await self.transport.request(
                    link.endpoint,
                    method,
                    link.endpoint.base_target + suffix,
                    headers,
                    body,
                    connect_timeout=min(self.connect_timeout, remaining),
                    timeout=timeout,
                )
            except AttemptFailed as exc:
                attempts[(service, link.dc, exc.reason)] += 1
                upstreams.failed(link, exc.reason)
                outcome.failure = f"{link.dc}: {exc}"
                outcome.sent = outcome.sent or exc.sent
                continue
            if is_server_failure(response):
                attempts[(service, link.dc, f"http_{response.status}")] += 1
                upstreams.failed(link, f"HTTP {response.status}")
                outcome.failure = f"{link.dc}: HTTP {response.status}"
                outcome.sent = True
                outcome.last_error_response = response
                continue
            attempts[(service, link.dc, "ok")] += 1
            elapsed = time.monotonic() - now
            link.latency = (
                elapsed if not link.latency else link.latency + 0.1 * (elapsed - link.latency)
            )
            upstreams.succeeded(link)
            outcome.response = response
            outcome.link = link
            return outcome
        if outcome.failure is None:
            outcome.failure = "no data center could be tried"
        return outcome
