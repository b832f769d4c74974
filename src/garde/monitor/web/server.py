"""Serve the monitor: its web side over HTTP and its probes and ticks, until either stops.

``garde monitor`` runs this; tests and library callers give a ``stop`` event of their own
and bind port 0 (``on_listening`` is told the port the system picked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from garde.monitor.service import Monitor
from garde.monitor.web.warm import warm
from garde.ports import bind_tcp


async def serve(
    monitor: Monitor,
    app: Starlette,
    host: str,
    port: int,
    *,
    on_listening: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    tick_every: float = 1.0,
) -> None:
    """Until the server stops (SIGINT, SIGTERM) or ``stop`` is set; the monitor's own work
    (probes, incidents, alerts) finishes before this returns. The store stays open."""
    stop = stop or asyncio.Event()
    # Bound here, before anything starts: a port that cannot be had is one clear message.
    sock = bind_tcp(host, port)
    # The pages are rendered once before the first reader comes (see warm.py).
    await warm(app, list(monitor.catalog.target_groups))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    running = asyncio.create_task(monitor.run(stop, tick_every=tick_every))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if server.started and on_listening is not None:
        on_listening(server.servers[0].sockets[0].getsockname()[1])
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        stop.set()
        await running
        stopping.cancel()
