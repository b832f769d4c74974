"""When each target is probed: once at start (spread over a short window), then every
interval with jitter, each probe its own task, concurrency bounded by a semaphore.

A probe is bounded by its target's timeout, so a slow target holds one slot for at most that
long and never delays the others; a target whose previous probe is still running when it is
due again is skipped (counted in ``overruns``) rather than piled up.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from garde.monitor.clock import Clock, SystemClock
from garde.monitor.probes import ProbeResult
from garde.monitor.targets import Target

ProbeFunction = Callable[[Target], Awaitable[ProbeResult]]
Sink = Callable[[ProbeResult], None]


@dataclass(slots=True)
class SchedulerStats:
    launched: int = 0
    completed: int = 0
    overruns: int = 0
    lag_samples: list[float] = field(default_factory=list)
    """How late each probe started after it was due (seconds), last 10,000 kept."""
    max_lag: float = 0.0

    def record_lag(self, lag: float) -> None:
        self.max_lag = max(self.max_lag, lag)
        self.lag_samples.append(lag)
        if len(self.lag_samples) > 10_000:
            del self.lag_samples[:5_000]


class Scheduler:
    def __init__(
        self,
        targets: Iterable[Target],
        probe: ProbeFunction,
        sink: Sink,
        *,
        clock: Clock | None = None,
        max_concurrency: int = 512,
        jitter: float = 0.1,
        initial_spread: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.targets = {t.id: t for t in targets}
        self._probe = probe
        self._sink = sink
        self.clock = clock or SystemClock()
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self.jitter = jitter
        self.initial_spread = initial_spread
        self._rng = rng or random.Random()  # noqa: S311 - spreading load, not security
        self._heap: list[tuple[float, str]] = []
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.stats = SchedulerStats()
        self._started = False

    def _start(self, now: float) -> None:
        for target in self.targets.values():
            spread = min(target.interval, self.initial_spread)
            heapq.heappush(self._heap, (now + self._rng.uniform(0, spread), target.id))
        self._started = True

    def _next_due(self, target: Target, due: float) -> float:
        # From the due time, not the completion time: a slow answer does not shift the grid.
        wobble = self._rng.uniform(-self.jitter, self.jitter) * target.interval
        return due + target.interval + wobble

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float) -> int:
        """Launch every target due at ``now``; the number launched."""
        if not self._started:
            self._start(now)
        launched = 0
        while self._heap and self._heap[0][0] <= now:
            due, tid = heapq.heappop(self._heap)
            target = self.targets.get(tid)
            if target is None:
                continue
            next_due = self._next_due(target, due)
            if next_due <= now:  # fell far behind (a stalled loop): do not burst to catch up
                next_due = now + target.interval
            heapq.heappush(self._heap, (next_due, tid))
            if tid in self._in_flight:
                self.stats.overruns += 1
                continue
            task = asyncio.create_task(self._run_one(target, due))
            self._in_flight[tid] = task
            launched += 1
        self.stats.launched += launched
        return launched

    async def _run_one(self, target: Target, due: float) -> None:
        try:
            async with self._semaphore:
                self.stats.record_lag(max(0.0, self.clock.now() - due))
                result = await self._probe(target)
            self._sink(result)
            self.stats.completed += 1
        finally:
            self._in_flight.pop(target.id, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until ``stop`` is set; then cancel what is in flight."""
        try:
            while not stop.is_set():
                now = self.clock.now()
                self.run_due(now)
                nxt = self.next_due()
                wait = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self.clock.now()))
                sleeper = asyncio.ensure_future(self.clock.sleep(wait))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for pending in (sleeper, stopper):
                    pending.cancel()
        finally:
            await self.drain(cancel=True)

    async def drain(self, *, cancel: bool = False) -> None:
        tasks = list(self._in_flight.values())
        if cancel:
            for task in tasks:
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
