"""A simulated service's capacity, and the load it was offered.

A (service, data center) given a capacity admits at most ``rate`` requests in any second
(a sliding window of one second); beyond, it answers as an overloaded service does: HTTP 503
with ``Retry-After`` (whole seconds) and a ``soap:Server`` fault saying so, so that a SOAP
client reads a fault and an HTTP-aware one (garde's replayer) reads the status and the pause
asked for. The refused request never reaches the simulator: nothing is applied.

The meter counts, per wall-clock second, the requests offered (admitted or not) and those
refused: the load a mass recovery put on the service, judged against its limit. It counts
from the moment a capacity is first set; a proxy never given one counts nothing (its fast
path stays a plain relay).
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any

from garde import soap
from garde.catalog import format_duration, parse_duration
from garde.errors import UsageError


@dataclass(frozen=True, slots=True)
class Capacity:
    rate: float
    """Requests admitted in any one second."""
    retry_after: float = 1.0
    """Seconds asked for in ``Retry-After`` (sent rounded up to whole seconds)."""

    def as_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "retry_after": format_duration(self.retry_after)}

    def answer(self) -> bytes:
        """The overloaded service's answer: 503, Retry-After, a SOAP fault."""
        seconds = max(1, math.ceil(self.retry_after))
        body = soap.build_fault(
            "soap:Server", f"service overloaded: more than {self.rate:g} requests per second;"
            f" retry after {seconds} s",
        )  # fmt: skip
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Retry-After: {seconds}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def make_capacity(options: dict[str, Any]) -> Capacity:
    """A validated capacity from ``{"rate": n, "retry_after": "1s"}``; ``UsageError`` says
    what is wrong."""
    unknown = sorted(set(options) - {"rate", "retry_after"})
    if unknown:
        raise UsageError(
            f"capacity does not take {', '.join(unknown)}; it takes: rate, retry_after"
        )
    rate = options.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1:
        raise UsageError(
            f"capacity: rate must be a number of requests per second, at least 1, got {rate!r}"
        )
    try:
        retry_after = parse_duration(options.get("retry_after", 1))
    except ValueError as exc:
        raise UsageError(f"capacity: retry_after: {exc}") from None
    if retry_after <= 0 or retry_after > 3600:
        raise UsageError("capacity: retry_after must be between 1s and 1h")
    return Capacity(float(rate), retry_after)


@dataclass
class LoadMeter:
    """Offered and refused requests per wall-clock second, and the admission window."""

    offered: dict[int, int] = field(default_factory=dict)
    refused: dict[int, int] = field(default_factory=dict)
    _admitted: collections.deque[float] = field(default_factory=collections.deque)

    def admit(self, capacity: Capacity | None) -> bool:
        """Count one request; whether ``capacity`` lets it through."""
        second = int(time.time())
        self.offered[second] = self.offered.get(second, 0) + 1
        if capacity is None:
            return True
        now = time.monotonic()
        window = self._admitted
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) < capacity.rate:
            window.append(now)
            return True
        self.refused[second] = self.refused.get(second, 0) + 1
        return False

    def as_json(self) -> dict[str, Any]:
        peak = max(self.offered.values(), default=0)
        admitted = {s: n - self.refused.get(s, 0) for s, n in self.offered.items()}
        return {
            "peak_offered": peak,
            "peak_admitted": max(admitted.values(), default=0),
            "offered_total": sum(self.offered.values()),
            "refused_total": sum(self.refused.values()),
            "offered": sorted(self.offered.items()),
            "refused": sorted(self.refused.items()),
        }
