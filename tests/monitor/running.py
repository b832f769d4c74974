"""Run a real monitor (probes + HTTP server on port 0) in a background thread for e2e tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from garde.monitor.deliveries import Subscriptions
from garde.monitor.service import Monitor
from garde.monitor.web.app import create_app
from garde.monitor.web.server import serve
from tests.polling import wait_for  # noqa: F401 (the monitor tests import it from here)


@contextmanager
def monitor_in_thread(
    monitor: Monitor,
    *,
    admin_token: str | None = None,
    public_url: str | None = None,
    subscriptions: Subscriptions | None = None,
) -> Iterator[str]:
    """Yield the monitor's base URL; everything stops when the block ends."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = stop

        def listening(port: int) -> None:
            state["url"] = f"http://127.0.0.1:{port}"
            ready.set()

        app = create_app(
            monitor, admin_token=admin_token, public_url=public_url, subscriptions=subscriptions
        )
        await serve(monitor, app, "127.0.0.1", 0, on_listening=listening, stop=stop, tick_every=0.2)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the monitor did not start within 15 s")
    try:
        yield str(state["url"])
    finally:
        loop = state["loop"]
        stop = state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
