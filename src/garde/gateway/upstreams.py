"""Data centers per service: priority, active health, passive ejection, circuit breaker.

One ``Link`` is one (service, data center). Passive outlier detection and the circuit
breaker are one state machine: enough consecutive failures, or a failure rate over a window
with enough requests, *ejects* the link (breaker open) for a time that grows with each
ejection and is jittered so three gateways do not knock together. When that time ends the
breaker is half-open and admits exactly one trial request; its success closes the breaker,
its failure ejects again for longer.

Three data centers are a small cluster, which changes the rules (Envoy's users met these):
statistical success-rate detection needs many hosts and is not used, and a burst of errors
never ejects the last data center that still passes its active health check ("the last one
that might answer"): it keeps being tried, and the continuity policy takes over per request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from garde.catalog import Service
from garde.gateway.transport import Endpoint
from garde.locales import moment
from garde.signals import Signal

log = logging.getLogger("garde.gateway")

TIMEOUTS = frozenset(("timeout",))
"""Failure reasons that mean silence: sent, and no answer within the attempt's time."""
OUTRUN = "slow: a hedge on another data center answered first"
"""The failure a hedged call's first attempt counts when its hedge won: ``consecutive_failures``
of them in a row (no answer from it in between) eject it, long before its per-try timeout
would have said so."""


class Breaker(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Mode(StrEnum):
    NORMAL = "normal"
    """The first data center in priority order serves."""
    DEGRADED = "degraded"
    """Another data center serves, or the continuity policy answers for some requests."""
    OFFLINE = "offline"
    """No data center can serve: the continuity policy answers every request."""


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    consecutive_failures: int = 5
    consecutive_timeouts: int = 2
    """Eject sooner on silence: this many attempts in a row that got no answer within their
    per-try time (a blackholed data center accepts and never answers, and every request
    sent there meanwhile waits)."""
    failure_rate: float = 0.5
    """Eject when this share of requests fails within ``window`` ..."""
    min_requests: int = 20
    """... once at least this many requests were seen in it."""
    window: float = 10.0
    base_ejection: float = 5.0
    max_ejection: float = 300.0
    jitter: float = 0.2
    health_failures: int = 2
    health_successes: int = 1


class Link:
    """One service in one data center, as this gateway has seen it."""

    __slots__ = (
        "answered_at",
        "checked_at",
        "consecutive_failures",
        "consecutive_timeouts",
        "dc",
        "ejected_until",
        "ejections",
        "endpoint",
        "failed_at",
        "health_failures",
        "health_successes",
        "healthy",
        "last_ejected_at",
        "last_error",
        "latency",
        "priority",
        "probation",
        "trial_in_flight",
        "window_failures",
        "window_requests",
        "window_start",
    )

    def __init__(self, dc: str, endpoint: Endpoint, priority: int) -> None:
        self.dc = dc
        self.endpoint = endpoint
        self.priority = priority
        self.healthy = True
        self.health_failures = 0
        self.health_successes = 0
        self.consecutive_failures = 0
        self.consecutive_timeouts = 0
        self.window_start = 0.0
        self.window_requests = 0
        self.window_failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        self.last_ejected_at = 0.0
        self.probation = False
        self.trial_in_flight = False
        self.last_error: str | None = None
        self.latency = 0.0
        """Moving average of this data center's answer time; 0 until it answered once."""
        self.answered_at = float("-inf")
        """When a request last succeeded here (live traffic or replay), by ``clock``."""
        self.failed_at = float("-inf")
        """When a request last failed here, by ``clock``."""
        self.checked_at = float("-inf")
        """When its health check last passed, by ``clock``."""

    def failed_last(self, now: float, within: float) -> bool:
        """Its latest news, under ``within`` seconds old, is a failed request: no request
        succeeded and no health check passed since."""
        return now - self.failed_at < within and self.failed_at > max(
            self.answered_at, self.checked_at
        )

    def suspect(self, now: float, within: float) -> bool:
        """Not to be given a call that cannot be sent twice: a half-open trial, or its
        latest news is a failure (or silence past its per-try time) under ``within`` s old."""
        return self.probation or self.failed_last(now, within)

    def breaker(self, now: float) -> Breaker:
        if self.ejected_until > now:
            return Breaker.OPEN
        return Breaker.HALF_OPEN if self.probation else Breaker.CLOSED

    def available(self, now: float) -> bool:
        return self.healthy and self.ejected_until <= now and not self.probation

    def as_json(self, now: float) -> dict[str, object]:
        return {
            "breaker": self.breaker(now).value,
            "healthy": self.healthy,
            "ejections": self.ejections,
            "ejected_for": round(max(0.0, self.ejected_until - now), 3),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "latency_ms": round(self.latency * 1000, 3),
        }


class ServiceUpstreams:
    """The links of one service, in the catalog's priority order."""

    def __init__(
        self,
        service: Service,
        settings: OutlierSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_change: Callable[[ServiceUpstreams], None] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.on_change = on_change
        self.links = [
            Link(dc, Endpoint.parse(url), i)
            for i, (dc, url) in enumerate(service.endpoints.items())
        ]
        self._plan: list[Link] | None = None
        self._plan_until = 0.0
        self.mode = Mode.NORMAL
        self.mode_since = wall()
        self.in_use: str | None = self.links[0].dc
        self.plan_changed: Signal[[ServiceUpstreams]] = Signal("plan changed")
        """Fired whenever the plan may have changed (the native data plane republishes)."""

    # -- choosing --------------------------------------------------------------------------
    def plan(self) -> list[Link]:
        """The links to try for one request, best first.

        Available links in priority order; then half-open links (each admits one trial,
        claimed when the attempt starts); last, links whose active check fails but whose
        breaker is closed (they might still answer). Open breakers are never tried.
        """
        now = self.clock()
        if self._plan is not None and now < self._plan_until:
            return self._plan  # unchanged since last time: the hot path's common case
        first: list[Link] = []
        trials: list[Link] = []
        last: list[Link] = []
        for link in self.links:
            if link.ejected_until > now:
                continue
            if link.probation:
                if not link.trial_in_flight:
                    trials.append(link)
            elif link.healthy:
                first.append(link)
            else:
                last.append(link)
        self._plan = first + trials + last
        self._plan_until = min(
            (link.ejected_until for link in self.links if link.ejected_until > now),
            default=float("inf"),
        )
        return self._plan

    def claim(self, link: Link) -> bool:
        """Whether ``link`` may be tried now; takes the half-open trial slot if it is one."""
        if link.probation:
            if link.trial_in_flight or link.ejected_until > self.clock():
                return False
            link.trial_in_flight = True
            self._plan = None
        return True

    def release(self, link: Link) -> None:
        """Give back a claimed trial that was not used after all."""
        if link.probation and link.trial_in_flight:
            link.trial_in_flight = False
            self._plan = None

    # -- outcomes ----------------------------------------------------------------------------
    @property
    def plan_until(self) -> float:
        """When the current ``plan()`` ends by the clock (an ejection running out)."""
        self.plan()
        return self._plan_until

    def succeeded(self, link: Link, count: int = 1) -> None:
        """``count`` successful attempts on ``link`` (the native data plane reports several
        at a time)."""
        link.consecutive_failures = 0
        link.consecutive_timeouts = 0
        link.answered_at = self.clock()
        self._count(link, failed=False, count=count)
        if link.probation:
            link.probation = False
            link.trial_in_flight = False
            link.last_error = None
            log.info("%s %s restored: its trial request was answered", self.service.id, link.dc)
            self._changed()
        elif self.in_use != link.dc:
            self._changed()

    def failed(self, link: Link, reason: str) -> None:
        now = self.clock()
        link.failed_at = now
        link.last_error = reason
        if link.ejected_until > now:
            # An attempt started before the ejection (a hedge's loser, a call in flight):
            # old news. Only the half-open trial's own failure ejects again, for longer.
            return
        link.consecutive_failures += 1
        if reason in TIMEOUTS:
            link.consecutive_timeouts += 1
        elif reason != OUTRUN:  # outrun: silent so far, which does not break a run of silence
            link.consecutive_timeouts = 0
        self._count(link, failed=True)
        if link.probation:
            link.trial_in_flight = False
            self._eject(link, now)
            return
        s = self.settings
        rate_tripped = (
            link.window_requests >= s.min_requests
            and link.window_failures >= s.failure_rate * link.window_requests
        )
        if (
            link.consecutive_failures >= s.consecutive_failures
            or link.consecutive_timeouts >= s.consecutive_timeouts
            or rate_tripped
        ):
            others = any(other is not link and other.available(now) for other in self.links)
            if others or not link.healthy:
                self._eject(link, now)
            # else: the last data center that might answer stays in rotation.

    def silent(self, link: Link) -> None:
        """An attempt that cannot be given up (a call not retry-safe) is still unanswered at
        its per-try time: counted as a timeout, so that the next such calls go elsewhere and
        the data center is ejected as soon as reads would have found it out."""
        if link.probation:
            return  # its trial's own outcome decides
        self.failed(link, "timeout")

    def _count(self, link: Link, *, failed: bool, count: int = 1) -> None:
        now = self.clock()
        if now - link.window_start > self.settings.window:
            link.window_start = now
            link.window_requests = 0
            link.window_failures = 0
        link.window_requests += count
        if failed:
            link.window_failures += 1

    def _eject(self, link: Link, now: float) -> None:
        s = self.settings
        if now - link.last_ejected_at > 10 * s.max_ejection:
            link.ejections = 0  # a long clean record forgives old ejections
        link.ejections += 1
        link.last_ejected_at = now
        duration = min(s.max_ejection, s.base_ejection * (2 ** (link.ejections - 1)))
        duration *= 1 + self.rng.uniform(-s.jitter, s.jitter)
        link.ejected_until = now + duration
        log.warning(
            "%s %s ejected for %.1f s (%s)", self.service.id, link.dc, duration, link.last_error
        )
        link.probation = True
        link.trial_in_flight = False
        link.consecutive_failures = 0
        link.consecutive_timeouts = 0
        link.window_requests = link.window_failures = 0
        self._changed()

    # -- active health ---------------------------------------------------------------------
    def health_result(self, link: Link, ok: bool, reason: str | None = None) -> None:
        s = self.settings
        if ok:
            link.checked_at = self.clock()
            link.health_failures = 0
            link.health_successes += 1
            if not link.healthy and link.health_successes >= s.health_successes:
                link.healthy = True
                log.info("%s %s passes its health check again", self.service.id, link.dc)
                self._changed()
            now = self.clock()
            if link.ejected_until > now:
                # The data center answers its health check again: go half-open now and let
                # one trial request prove it, rather than waiting out the ejection.
                link.ejected_until = now
                self._changed()
        else:
            link.health_successes = 0
            link.health_failures += 1
            link.last_error = reason
            if link.healthy and link.health_failures >= s.health_failures:
                link.healthy = False
                log.warning("%s %s fails its health check (%s)", self.service.id, link.dc, reason)
                self._changed()

    # -- mode --------------------------------------------------------------------------------
    def current(self) -> tuple[Mode, str | None]:
        now = self.clock()
        for link in self.links:
            if link.available(now):
                return (Mode.NORMAL if link.priority == 0 else Mode.DEGRADED), link.dc
        if any(link.breaker(now) is not Breaker.OPEN for link in self.links):
            # Only half-open or unhealthy links are left: some requests may still get through.
            return Mode.DEGRADED, None
        return Mode.OFFLINE, None

    def _changed(self) -> None:
        self._plan = None
        self.plan_changed.emit(self)
        mode, in_use = self.current()
        if mode is not self.mode or in_use != self.in_use:
            if mode is not self.mode:
                self.mode_since = self.wall()
            self.mode = mode
            self.in_use = in_use
            if self.on_change is not None:
                self.on_change(self)

    def refresh(self) -> None:
        """Re-evaluate the mode (ejections end by the clock, not by an event)."""
        self._changed()

    def as_json(self) -> dict[str, object]:
        now = self.clock()
        return {
            "mode": self.mode.value,
            **moment("since", self.mode_since),
            "data_center": self.in_use,
            "data_centers": {link.dc: link.as_json(now) for link in self.links},
        }
