"""The gateway's failover benchmark's paced HTTP client.

It sends a fixed request rate over keep-alive connections and records each request's latency
and outcome, so both proxies (haproxy, the gateway) face the same load. The faults in front
of a data center are the lab's own fault proxy's (``garde.lab.LinkProxy``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Sample:
    sent_at: float
    latency: float
    status: int
    """HTTP status; 0 for a connection error or a client-side timeout."""


@dataclass
class PacedClient:
    """``rate`` requests per second for ``duration`` seconds, each given ``timeout``."""

    port: int
    request: bytes
    rate: float
    duration: float
    timeout: float = 15.0
    samples: list[Sample] = field(default_factory=list)
    _idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)

    async def run(self) -> list[Sample]:
        start = time.monotonic()
        tasks = []
        i = 0
        while True:
            at = start + i / self.rate
            if at - start >= self.duration:
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(start)))
            i += 1
        await asyncio.gather(*tasks)
        for _, writer in self._idle:
            writer.close()
        return self.samples

    async def _one(self, start: float) -> None:
        sent = time.monotonic()
        status = 0
        try:
            async with asyncio.timeout(self.timeout):
                if self._idle:
                    reader, writer = self._idle.pop()
                else:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if b"connection: close" in head.lower():
                    writer.close()
                else:
                    self._idle.append((reader, writer))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        self.samples.append(Sample(sent - start, time.monotonic() - sent, status))
