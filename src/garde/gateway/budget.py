"""The retry budget: retries may add at most a fixed share of load, so an outage never
becomes a retry storm.

Counted over a sliding window of one-second buckets: every request deposits, every retry
withdraws *when it is decided* (so retries still waiting in backoff already count). A small
floor per second lets a quiet gateway fail over at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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
        self._requests = [0] * window
        self._retries = [0] * window
        self._second = int(clock())
        self.requests = 0
        self.retries = 0
        self.refused = 0

    def _advance(self) -> int:
        second = int(self.clock())
        if second != self._second:
            steps = min(second - self._second, self.window)
            for i in range(1, steps + 1):
                slot = (self._second + i) % self.window
                self.requests -= self._requests[slot]
                self.retries -= self._retries[slot]
                self._requests[slot] = 0
                self._retries[slot] = 0
            self._second = second
        return second % self.window

    def deposit(self, count: int = 1) -> None:
        """``count`` original requests (not retries)."""
        slot = self._advance()
        self._requests[slot] += count
        self.requests += count

    def withdraw(self) -> bool:
        """Take one retry from the budget; False (and counted) when it is spent."""
        slot = self._advance()
        allowed = self.min_per_second * self.window + self.ratio * self.requests
        if self.retries + 1 > allowed:
            self.refused += 1
            return False
        self._retries[slot] += 1
        self.retries += 1
        return True
