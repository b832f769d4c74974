"""Active health checks: each data center of each service, on the probe path, on a timer.

A check counts as passed when the data center answers HTTP below 500: the service is there,
even if a plain GET is not how it is used. Passive ejection catches what checks miss.
"""

from __future__ import annotations

import asyncio
import random

from garde.errors import AttemptFailed
from garde.gateway.transport import Transport
from garde.gateway.upstreams import Link, ServiceUpstreams


class HealthChecker:
    def __init__(
        self,
        upstreams: dict[str, ServiceUpstreams],
        transport: Transport,
        *,
        interval: float | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.upstreams = upstreams
        self.transport = transport
        self.interval = interval
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for service in self.upstreams.values():
            for link in service.links:
                self._tasks.add(loop.create_task(self._run(service, link)))

    async def check(self, service: ServiceUpstreams, link: Link) -> bool:
        probe = service.service.probe
        suffix = probe.path if probe.path.startswith("?") else "/" + probe.path.lstrip("/")
        target = (link.endpoint.base_path + suffix).encode() or b"/"
        timeout = min(self.timeout, probe.timeout)
        try:
            response = await self.transport.request(
                link.endpoint, b"GET", target, [], b"", connect_timeout=timeout, timeout=timeout
            )
        except AttemptFailed as exc:
            service.health_result(link, False, f"health check: {exc}")
            return False
        ok = response.status < 500
        service.health_result(link, ok, None if ok else f"health check: HTTP {response.status}")
        return ok

    async def _run(self, service: ServiceUpstreams, link: Link) -> None:
        interval = self.interval or service.service.probe.interval
        # Spread the checks so they do not all fire in the same millisecond.
        await asyncio.sleep(random.uniform(0, interval))  # noqa: S311
        while True:
            await self.check(service, link)
            service.refresh()
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
