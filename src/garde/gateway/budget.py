"""The retry budget: retries may add at most a fixed share of load, so an outage never
becomes a retry storm.

Counted over a sliding window of one-second buckets: every request deposits, every retry
withdraws *when it is decided* (so retries still waiting in backoff already count). A small
floor per second lets a quiet gateway fail over at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class WindowCount:
    """A count over the last ``window`` seconds, kept in one-second buckets: what the retry
    and hedge budgets both measure their load against."""

    def __init__(self, window: int, clock: Callable[[], float]) -> None:
        self.window = window
        self.clock = clock
        self._buckets = [0] * window
        self._second = int(clock())
        self.total = 0
        """The count within the window."""

    def _advance(self) -> int:
        second = int(self.clock())
        if second != self._second:
            steps = min(second - self._second, self.window)
            for i in range(1, steps + 1):
                slot = (self._second + i) % self.window
                self.total -= self._buckets[slot]
                self._buckets[slot] = 0
            self._second = second
        return second % self.window

    def add(self, count: int) -> None:
        self._buckets[self._advance()] += count
        self.total += count

    def current(self) -> int:
        """The count within the window, buckets older than it dropped first."""
        self._advance()
        return self.total


class RetryBudget:
    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_per_second: float = 5.0,
        window: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.window = window
        self.clock = clock
        self._requests = WindowCount(window, clock)
        self._retries = WindowCount(window, clock)
        self.refused = 0

    @property
    def requests(self) -> int:
        """Original requests within the window."""
        return self._requests.current()

    @property
    def retries(self) -> int:
        """Retries within the window."""
        return self._retries.current()

    def deposit(self, count: int = 1) -> None:
        """``count`` original requests (not retries)."""
        self._requests.add(count)

    def withdraw(self) -> bool:
        """Take one retry from the budget; False (and counted) when it is spent."""
        allowed = self.min_per_second * self.window + self.ratio * self.requests
        if self.retries + 1 > allowed:
            self.refused += 1
            return False
        self._retries.add(1)
        return True
