"""Send one request to the best data center, failing over only where it cannot do harm.

A connection that failed before a byte was sent is retried on the next data center for any
operation; a failure after sending only for retry-safe operations. Every retry is taken from
the retry budget, and every attempt fits in what is left of the caller's deadline.

A retry-safe call still unanswered past its operation's usual answer time on that data
center is *hedged* (``hedging.py``): sent to the next data center too, within the hedge
budget, and the first usable answer wins. A call that is not retry-safe is sent where the
latest news is good: a data center whose last attempt failed, or went silent past its per-try
time, or which is on its one half-open trial, gets it only when no other might answer; and
such a call that is still unanswered at its per-try time marks its data center silent (it
cannot be sent elsewhere, but the next ones are), which ejects it as timeouts do.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from garde.errors import AttemptFailed
from garde.gateway.budget import RetryBudget
from garde.gateway.hedging import HedgeBudget, HedgeDelays
from garde.gateway.metrics import Metrics
from garde.gateway.routing import OperationRoute
from garde.gateway.transport import Headers, Response, Transport
from garde.gateway.upstreams import OUTRUN, Link, ServiceUpstreams

FAILING_STATUSES = frozenset((502, 503, 504))

SUSPECT_FOR = 5.0
"""Seconds a failure (or silence) is the latest news of a data center that a call not
retry-safe avoids, as the journal's sender does (``sender.FAILURE_EVIDENCE``)."""


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
    hedged: bool = False
    """A second data center was asked while the first had not answered yet."""


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


class _Tried:
    """One attempt's result, as the forwarding loop reads it."""

    __slots__ = ("error", "link", "response", "started")

    def __init__(self, link: Link, started: float) -> None:
        self.link = link
        self.started = started
        self.response: Response | None = None
        self.error: AttemptFailed | None = None


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
        hedge_delays: HedgeDelays | None = None,
        hedge_budget: HedgeBudget | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.transport = transport
        self.budget = budget
        self.metrics = metrics
        self.connect_timeout = connect_timeout
        self.min_try_timeout = min_try_timeout
        self.try_timeout_factor = try_timeout_factor
        self.hedge_delays = hedge_delays
        """None: no hedging."""
        self.hedge_budget = hedge_budget
        self._losers: set[asyncio.Task[Response]] = set()
        """Attempts whose call was answered by another: they run to their end, counted."""

    def per_try(self, link: Link) -> float:
        """How long an attempt on ``link`` waits before the next data center is asked."""
        return max(self.min_try_timeout, self.try_timeout_factor * link.latency)

    def _order(self, route: OperationRoute, upstreams: ServiceUpstreams) -> list[Link]:
        plan = upstreams.plan()
        if route.retry_safe or len(plan) < 2:
            return plan
        # Sent once, wherever it goes: where the latest news is good, if anywhere.
        now = upstreams.clock()
        good = [link for link in plan if not link.suspect(now, SUSPECT_FOR)]
        if len(good) == len(plan):
            return plan
        return good + [link for link in plan if link not in good]

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
        plan = self._order(route, upstreams)
        if not plan:
            outcome.failure = "no data center available (all circuit breakers open)"
            return outcome
        hedging = self.hedge_delays is not None and route.retry_safe and len(plan) > 1
        last = len(plan) - 1
        index = 0
        while index <= last:
            link = plan[index]
            index += 1
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
            if route.retry_safe and index <= last and link.latency:
                # A blackholed data center answers nothing: rather than spend the whole
                # deadline on it, give up well past its usual answer time and ask the next.
                timeout = min(timeout, self.per_try(link))
            if hedging and index <= last:
                answer, hedged = await self._hedged(
                    route,
                    upstreams,
                    plan,
                    index,
                    link,
                    method,
                    suffix,
                    headers,
                    body,
                    deadline,
                    timeout,
                    outcome,
                )
                if answer is not None:
                    return outcome
                if hedged:
                    index += 1  # the hedge used the next data center
                continue
            tried_one = _Tried(link, now)
            silenced: list[bool] = []
            silence = None
            if not route.retry_safe and link.latency and timeout > self.per_try(link):
                # Cannot be sent again; but if it is still unanswered when a read would have
                # left, the next calls should not follow it there.
                def went_silent(on: Link = link, marks: list[bool] = silenced) -> None:
                    marks.append(True)
                    upstreams.silent(on)

                silence = asyncio.get_running_loop().call_later(self.per_try(link), went_silent)
            try:
                tried_one.response = await self._send(
                    link, method, suffix, headers, body, remaining, timeout
                )
            except AttemptFailed as exc:
                tried_one.error = exc
            finally:
                if silence is not None:
                    silence.cancel()
            if self._settle(route, upstreams, tried_one, outcome, silenced=bool(silenced)):
                return outcome
        if outcome.failure is None:
            outcome.failure = "no data center could be tried"
        return outcome

    async def _send(
        self,
        link: Link,
        method: bytes,
        suffix: bytes,
        headers: Headers,
        body: bytes,
        remaining: float,
        timeout: float,
    ) -> Response:
        return await self.transport.request(
            link.endpoint,
            method,
            link.endpoint.base_target + suffix,
            headers,
            body,
            connect_timeout=min(self.connect_timeout, remaining),
            timeout=timeout,
        )

    def _settle(
        self,
        route: OperationRoute,
        upstreams: ServiceUpstreams,
        tried: _Tried,
        outcome: Forwarded | None,
        *,
        silenced: bool = False,
    ) -> bool:
        """Count one attempt's result against its data center; True (and ``outcome``
        filled) if it is the answer. ``outcome`` None: a loser, counted only."""
        service = route.service.id
        link = tried.link
        attempts = self.metrics.attempts
        exc = tried.error
        if exc is not None:
            attempts[(service, link.dc, exc.reason)] += 1
            if not (silenced and exc.reason == "timeout"):  # counted when it went silent
                upstreams.failed(link, exc.reason)
            if outcome is not None:
                outcome.failure = f"{link.dc}: {exc}"
                outcome.sent = outcome.sent or exc.sent
            return False
        response = tried.response
        assert response is not None
        if is_server_failure(response):
            attempts[(service, link.dc, f"http_{response.status}")] += 1
            upstreams.failed(link, f"HTTP {response.status}")
            if outcome is not None:
                outcome.failure = f"{link.dc}: HTTP {response.status}"
                outcome.sent = True
                outcome.last_error_response = response
            return False
        attempts[(service, link.dc, "ok")] += 1
        elapsed = time.monotonic() - tried.started
        link.latency = (
            elapsed if not link.latency else link.latency + 0.1 * (elapsed - link.latency)
        )
        if self.hedge_delays is not None and route.retry_safe:
            self.hedge_delays.observe(route.label, link.dc, elapsed)
        upstreams.succeeded(link)
        if outcome is None:
            return False
        outcome.response = response
        outcome.link = link
        return True

    async def _hedged(
        self,
        route: OperationRoute,
        upstreams: ServiceUpstreams,
        plan: list[Link],
        index: int,
        link: Link,
        method: bytes,
        suffix: bytes,
        headers: Headers,
        body: bytes,
        deadline: float,
        timeout: float,
        outcome: Forwarded,
    ) -> tuple[Response | None, bool]:
        """One attempt on ``link``, hedged on ``plan[index]`` if it is slow. Returns (the
        answer or None, whether the hedge was sent); ``outcome`` filled as for one attempt."""
        assert self.hedge_delays is not None
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        remaining = deadline - started
        after = min(self.hedge_delays.delay(route.label, link.dc), timeout)
        running: dict[asyncio.Task[Response], _Tried] = {}
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        def start(on: Link, now: float, left: float, limit: float) -> None:
            task = loop.create_task(self._send(on, method, suffix, headers, body, left, limit))
            task.add_done_callback(wake)
            running[task] = _Tried(on, now)

        start(link, started, remaining, timeout)
        timer: asyncio.TimerHandle | None = loop.call_later(after, wake)
        hedged = False
        try:
            while running:
                await woken
                woken = loop.create_future()
                for task in [t for t in running if t.done()]:
                    tried = running.pop(task)
                    try:
                        tried.response = task.result()
                    except AttemptFailed as exc:
                        tried.error = exc
                    if self._settle(route, upstreams, tried, outcome):
                        for other, left_running in running.items():
                            if tried.link is not link and left_running.link is link:
                                upstreams.failed(link, OUTRUN)  # outrun by its hedge
                            self._lose(route, upstreams, other, left_running)
                        running.clear()
                        outcome.hedged = hedged
                        return tried.response, hedged
                    if tried.error is not None and not tried.error.sent and not hedged:
                        # Nothing was sent there: no need to hedge, fail over at once.
                        return None, False
                if timer is not None and time.monotonic() >= started + after - 0.001:
                    timer = None
                    hedge = plan[index] if index < len(plan) else None
                    now = time.monotonic()
                    if (
                        not hedged
                        and running
                        and hedge is not None
                        and deadline - now > 0
                        and self.hedge_budget is not None
                        and upstreams.claim(hedge)
                    ):
                        if self.hedge_budget.withdraw():
                            hedged = True
                            self.metrics.hedges += 1
                            outcome.attempts += 1
                            hedge_timeout = min(route.timeout, deadline - now)
                            start(hedge, now, deadline - now, hedge_timeout)
                        else:
                            self.metrics.hedge_refusals += 1
                            upstreams.release(hedge)
        finally:
            if timer is not None:
                timer.cancel()
            for task, tried in running.items():
                self._lose(route, upstreams, task, tried)
        outcome.hedged = hedged
        return None, hedged

    def _lose(
        self,
        route: OperationRoute,
        upstreams: ServiceUpstreams,
        task: asyncio.Task[Response],
        tried: _Tried,
    ) -> None:
        """``task`` lost the race: it runs to its own end and is counted, nothing more."""

        def settle(done: asyncio.Task[Response]) -> None:
            if done.cancelled():
                return
            try:
                tried.response = done.result()
            except AttemptFailed as exc:
                tried.error = exc
            except Exception:
                return
            self._settle(route, upstreams, tried, None)

        task.add_done_callback(settle)
        self._losers.add(task)
        task.add_done_callback(self._losers.discard)

    @property
    def losers(self) -> int:
        """Attempts still running whose call another data center answered."""
        return len(self._losers)
