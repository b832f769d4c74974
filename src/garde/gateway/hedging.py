"""Hedged requests: when a retry-safe call's data center is slower than it usually is, ask
the next one too and take whichever answers first ("The Tail at Scale", Dean and Barroso).

Two pieces, shared by the general path (``forwarding.py``) and the native data plane
(``native.py`` publishes the delay and hands the plane its share of the budget):

- ``HedgeDelays``: per operation and data center, the quantile (p95 by default) of its
  recent answer times, kept between a floor and a ceiling. A call still unanswered that long
  after it was sent is hedged. Before a data center has answered an operation often enough
  to say what is usual, the ceiling is used.
- ``HedgeBudget``: hedges may add at most a share of the load (5 % by default, over the
  retry budget's sliding window of requests), plus a small floor per second, so that a
  general slowdown, where every call passes its p95, does not double the load.

The loser of a hedged pair is not cut: its answer is dropped, and it runs to its own per-try
time, counted like any attempt. Cutting an HTTP/1.1 exchange saves the data center nothing
(it has the request already), costs a new connection, and would hide the very timeouts that
eject a blackholed data center.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from garde.gateway.budget import RetryBudget, WindowCount

_BASE = 0.0005
"""The upper bound of the first latency bucket, in seconds."""
_GROWTH = 1.15
_BUCKETS = 80
"""Buckets 15 % apart from 0.5 ms to about 35 s: a quantile is read within 15 %."""
_LOG_GROWTH = math.log(_GROWTH)
_DECAY_EVERY = 512
"""Every this many answers, the counts are halved: the quantile follows what is usual now."""
_MIN_SAMPLES = 20
"""Answers needed before the quantile is trusted (else the ceiling)."""
_REFRESH_EVERY = 16
"""The delay is recomputed every this many answers (a quantile costs a walk of buckets)."""


def _bucket(seconds: float) -> int:
    if seconds <= _BASE:
        return 0
    return min(_BUCKETS - 1, 1 + int(math.log(seconds / _BASE) / _LOG_GROWTH))


def _upper(bucket: int) -> float:
    return _BASE * _GROWTH**bucket


class _Histogram:
    __slots__ = ("counts", "delay", "since_refresh", "total")

    def __init__(self, delay: float) -> None:
        self.counts = [0.0] * _BUCKETS
        self.total = 0.0
        self.since_refresh = 0
        self.delay = delay


class HedgeDelays:
    """How long to wait, per (operation, data center), before hedging a retry-safe call."""

    def __init__(
        self, *, quantile: float = 0.95, floor: float = 0.02, ceiling: float = 1.0
    ) -> None:
        self.quantile = quantile
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self._histograms: dict[tuple[str, str], _Histogram] = {}
        self._samples = 0

    def observe(self, operation: str, dc: str, seconds: float, count: int = 1) -> None:
        """``count`` answers of ``operation`` from ``dc`` that took ``seconds``."""
        key = (operation, dc)
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = _Histogram(self.ceiling)
        histogram.counts[_bucket(seconds)] += count
        histogram.total += count
        histogram.since_refresh += count
        if histogram.since_refresh >= _REFRESH_EVERY:
            self._refresh(histogram)
        self._samples += count
        if self._samples >= _DECAY_EVERY:
            self._samples = 0
            for each in self._histograms.values():
                each.counts = [c / 2 for c in each.counts]
                each.total /= 2

    def _refresh(self, histogram: _Histogram) -> None:
        histogram.since_refresh = 0
        if histogram.total < _MIN_SAMPLES / 2:  # halved by decay, still enough seen
            histogram.delay = self.ceiling
            return
        above = histogram.total * (1 - self.quantile)
        seen = 0.0
        bucket = _BUCKETS - 1
        for bucket in range(_BUCKETS - 1, -1, -1):
            seen += histogram.counts[bucket]
            if seen > above:
                break
        histogram.delay = min(self.ceiling, max(self.floor, _upper(bucket)))

    def delay(self, operation: str, dc: str) -> float:
        """Seconds after sending to ``dc`` that a call of ``operation`` is hedged."""
        histogram = self._histograms.get((operation, dc))
        return self.ceiling if histogram is None else histogram.delay

    def as_json(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for (operation, dc), histogram in sorted(self._histograms.items()):
            out.setdefault(operation, {})[dc] = round(histogram.delay, 4)
        return out


class HedgeBudget:
    """Hedges take at most ``ratio`` of the requests of ``requests``' window, plus
    ``min_per_second``; counted over the same sliding window of one-second buckets."""

    def __init__(
        self,
        requests: RetryBudget,
        ratio: float = 0.05,
        *,
        min_per_second: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = requests
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.clock = clock
        self.window = requests.window
        self._hedges = WindowCount(self.window, clock)
        self.sent = 0
        """Hedges sent since the start."""
        self.refused = 0
        """Hedges the budget refused since the start."""

    @property
    def hedges(self) -> int:
        """Hedges within the window."""
        return self._hedges.current()

    def available(self) -> int:
        """Hedges that may be sent now."""
        allowed = self.min_per_second * self.window + self.ratio * self.requests.requests
        return max(0, int(allowed) - self.hedges)

    def withdraw(self) -> bool:
        """Take one hedge; False (and counted) when the budget is spent."""
        if self.available() < 1:
            self.refused += 1
            return False
        self.spend(1)
        return True

    def spend(self, count: int) -> None:
        """``count`` hedges already sent (by the native data plane, within its share)."""
        self._hedges.add(count)
        self.sent += count

    def as_json(self) -> dict[str, object]:
        return {
            "ratio": self.ratio,
            "in_window": self.hedges,
            "available": self.available(),
            "sent": self.sent,
            "refused": self.refused,
        }
