"""Mode changes as events, for the care software's banner (server-sent events).

Subscribers get bounded queues: a slow or stuck client loses its stream, never the
gateway's memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from garde.locales import moment
from garde.signals import Signal

if TYPE_CHECKING:
    from garde.gateway.upstreams import ServiceUpstreams

log = logging.getLogger("garde.gateway")


def mode_event(upstreams: ServiceUpstreams) -> dict[str, object]:
    return {
        "service": upstreams.service.id,
        "mode": upstreams.mode.value,
        **moment("since", upstreams.mode_since),
        "data_center": upstreams.in_use,
    }


class EventHub:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, object]]] = set()
        self.history: list[dict[str, object]] = []
        self.changed: Signal[[ServiceUpstreams]] = Signal("mode changed")
        """Fired on every mode change, after it is logged and before the streams see it."""

    def mode_changed(self, upstreams: ServiceUpstreams) -> None:
        event = mode_event(upstreams)
        log.info(
            "%s is now %s (data center %s)", event["service"], event["mode"], event["data_center"]
        )
        self.history = [*self.history[-99:], event]
        self.changed.emit(upstreams)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)

    async def stream(
        self, snapshot: list[dict[str, object]], keepalive: float = 15.0
    ) -> AsyncIterator[bytes]:
        """SSE bytes: the current modes first, then every change; comments keep it alive."""
        queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield b"retry: 2000\n\n"
            for event in snapshot:
                yield _sse(event)
            while queue in self._subscribers or not queue.empty():
                try:
                    async with asyncio.timeout(keepalive):
                        event = await queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield _sse(event)
        finally:
            self._subscribers.discard(queue)


def _sse(event: dict[str, object]) -> bytes:
    return b"event: mode\ndata: " + json.dumps(event).encode() + b"\n\n"
