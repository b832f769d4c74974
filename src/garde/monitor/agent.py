"""``garde probe``: run the probes from another location and push the results to the monitor,
which requires a quorum of locations before it declares a target down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aiohttp

from garde.monitor.clock import Clock, SystemClock
from garde.monitor.probes import Prober, ProbeResult
from garde.monitor.scheduler import Scheduler
from garde.monitor.targets import Target

log = logging.getLogger("garde.monitor.agent")

MAX_BUFFER = 100_000
"""Results kept while the monitor cannot be reached; the oldest go first beyond this."""


class ProbeAgent:
    def __init__(
        self,
        targets: Sequence[Target],
        *,
        location: str,
        push_url: str,
        token: str,
        clock: Clock | None = None,
        push_every: float = 2.0,
        max_concurrency: int = 512,
    ) -> None:
        self.targets = list(targets)
        self.location = location
        self.push_url = push_url.rstrip("/") + "/api/v1/results"
        self.token = token
        self.clock = clock or SystemClock()
        self.push_every = push_every
        self.max_concurrency = max_concurrency
        self.buffer: list[ProbeResult] = []
        self.pushed = 0
        self.push_failures = 0

    def _collect(self, result: ProbeResult) -> None:
        self.buffer.append(result)
        if len(self.buffer) > MAX_BUFFER:
            del self.buffer[: len(self.buffer) - MAX_BUFFER]

    async def push(self, session: aiohttp.ClientSession) -> None:
        if not self.buffer:
            return
        batch, self.buffer = self.buffer[:10_000], self.buffer[10_000:]
        payload = {"location": self.location, "results": [r.as_json() for r in batch]}
        try:
            async with session.post(
                self.push_url, json=payload, headers={"Authorization": f"Bearer {self.token}"}
            ) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise OSError(f"monitor answered HTTP {response.status}: {text}")
            self.pushed += len(batch)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            self.push_failures += 1
            log.warning("push to %s failed, keeping %d results: %s", self.push_url, len(batch), exc)
            self.buffer[:0] = batch

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            Prober(location=self.location, clock=self.clock) as prober,
            aiohttp.ClientSession(timeout=timeout) as session,
        ):
            scheduler = Scheduler(
                self.targets,
                prober.probe,
                self._collect,
                clock=self.clock,
                max_concurrency=self.max_concurrency,
            )
            probing = asyncio.create_task(scheduler.run(stop))
            try:
                while not stop.is_set():
                    waiter = asyncio.ensure_future(stop.wait())
                    sleeper = asyncio.ensure_future(self.clock.sleep(self.push_every))
                    await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    sleeper.cancel()
                    await self.push(session)
            finally:
                await probing
                await self.push(session)
