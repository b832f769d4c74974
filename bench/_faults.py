"""Tools for the gateway's failover benchmark: a fault proxy and a paced HTTP client.

The fault proxy sits in front of one data center and can be made to refuse connections
(listening socket closed, open connections reset) or to blackhole (connections accepted,
nothing ever answered). The client sends a fixed request rate over keep-alive connections
and records each request's latency and outcome, so both proxies face the same load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "pass"
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def refuse(self) -> None:
        """New connections are refused; open ones are reset."""
        self.mode = "refuse"
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    def blackhole(self) -> None:
        """Connections stay open (and new ones are accepted) but nothing is answered."""
        self.mode = "blackhole"

    async def heal(self) -> None:
        self.mode = "pass"
        if self._server is None:
            await self.start(self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, asyncio.CancelledError):  # cancelled: closed while connecting (below)
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    while self.mode == "blackhole":
                        await asyncio.sleep(0.05)
                    dst.write(data)
            dst.transport.abort()

        # Cancellation swallowed, not re-raised, here and above: Python 3.11's stream server
        # logs a client task that ends cancelled as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


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
