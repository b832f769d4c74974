"""When probes run: once at start, then on the interval with jitter; slow targets do not
delay the others; concurrency is bounded."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from garde.monitor.clock import ManualClock
from garde.monitor.probes import ProbeResult
from garde.monitor.scheduler import Scheduler
from garde.monitor.targets import Target


def target(tid: str, interval: float = 10.0) -> Target:
    return Target(id=tid, service="s", dc="dc1", url="http://x", interval=interval)


def test_each_target_runs_at_start_then_on_its_interval_with_jitter() -> None:
    async def main() -> dict[str, list[float]]:
        clock = ManualClock(start=0.0)
        runs: dict[str, list[float]] = {}

        async def probe(t: Target) -> ProbeResult:
            runs.setdefault(t.id, []).append(clock.now())
            return ProbeResult(t.id, clock.now(), True, 0.0)

        scheduler = Scheduler(
            [target(f"t{i}") for i in range(50)],
            probe,
            lambda r: None,
            clock=clock,
            rng=random.Random(1),
            jitter=0.1,
            initial_spread=2.0,
        )
        for _ in range(100):  # 100 s in 1 s steps
            scheduler.run_due(clock.now())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            clock.advance(1.0)
        await scheduler.drain()
        return runs

    runs = asyncio.run(main())
    assert len(runs) == 50
    for times in runs.values():
        assert times[0] <= 2.0, "first run at start (spread over 2 s)"
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(8.0 <= g <= 12.0 for g in gaps), gaps
        assert 9 <= len(times) <= 11
    firsts = {times[0] for times in runs.values()}
    assert len(firsts) > 1, "start is spread, not a burst at one instant"


def test_slow_target_never_delays_the_others() -> None:
    """A target that hangs (each probe lasts 1 s) while a fast one runs every 20 ms."""

    async def main() -> tuple[int, int, int]:
        done: dict[str, int] = {"fast": 0, "slow": 0}

        async def probe(t: Target) -> ProbeResult:
            if t.id == "slow":
                await asyncio.sleep(1.0)
            return ProbeResult(t.id, time.time(), True, 0.0)

        def sink(r: ProbeResult) -> None:
            done[r.target] += 1

        scheduler = Scheduler(
            [target("fast", 0.02), target("slow", 0.02)],
            probe,
            sink,
            jitter=0.0,
            initial_spread=0.0,
            max_concurrency=4,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        deadline = time.monotonic() + 5
        while done["fast"] < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return done["fast"], done["slow"], scheduler.stats.overruns

    fast, slow, overruns = asyncio.run(main())
    assert fast >= 10
    assert slow == 0, "the slow probe was still running"
    assert overruns >= 1, "the slow target is skipped while in flight, not piled up"


def test_concurrency_is_bounded() -> None:
    async def main() -> int:
        running = 0
        peak = 0
        release = asyncio.Event()

        async def probe(t: Target) -> ProbeResult:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1
            return ProbeResult(t.id, 0.0, True, 0.0)

        clock = ManualClock(start=0.0)
        scheduler = Scheduler(
            [target(f"t{i}") for i in range(40)],
            probe,
            lambda r: None,
            clock=clock,
            max_concurrency=5,
            initial_spread=0.0,
        )
        scheduler.run_due(0.0)
        for _ in range(10):
            await asyncio.sleep(0)
        release.set()
        await scheduler.drain()
        return peak

    assert asyncio.run(main()) == 5
