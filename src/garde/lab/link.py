"""An in-memory pipe between a fault proxy and its simulator, both in the lab's process.

The proxy relays the same bytes it would send over a socket, and the simulator parses them
with the same HTTP protocol object; only the two loopback hops (a send and a receive each
way, and their event-loop wake-ups) are saved. That is most of a proxied request's cost, and
the proxy must stay cheap when no fault is set: then it leaves delimiting requests to the
simulator's parser (``idle``). The simulator's own port still serves direct clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from garde.lab.http import HttpProtocol


class Downstream(Protocol):
    """What the link needs from the proxy's client side."""

    def from_upstream(self, data: bytes) -> None: ...

    def upstream_closed(self) -> None: ...


class _SimulatorTransport(asyncio.Transport):
    """The transport the simulator's protocol writes its answers to."""

    def __init__(self, link: MemoryLink) -> None:
        super().__init__()
        self._link = link
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._link.downstream.from_upstream(bytes(data))

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._link.closed_by_simulator()

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        """Nothing to pause: requests are handed over synchronously."""

    def resume_reading(self) -> None:
        """Nothing to resume."""


class MemoryLink:
    """The proxy's upstream when the simulator lives in the same process."""

    def __init__(
        self,
        downstream: Downstream,
        protocol_factory: Callable[[], HttpProtocol],
        registry: set[Any],
    ) -> None:
        self.downstream = downstream
        self.protocol = protocol_factory()
        self.transport = _SimulatorTransport(self)
        self._registry = registry
        self._open = True
        registry.add(self)
        self.protocol.connection_made(self.transport)

    @property
    def idle(self) -> bool:
        """The simulator is between two requests: the next bytes begin a new one."""
        return self.protocol.idle

    def write(self, data: bytes) -> None:
        if self._open:
            self.protocol.data_received(data)

    def close(self) -> None:
        """The client side went away: the simulator sees its connection end."""
        if self._open:
            self._open = False
            self.transport._closing = True
            self._registry.discard(self)
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def closed_by_simulator(self) -> None:
        """The simulator closed (``Connection: close``): the client's connection ends too."""
        if self._open:
            self._open = False
            self._registry.discard(self)
            loop = asyncio.get_running_loop()
            loop.call_soon(self.protocol.connection_lost, None)
            loop.call_soon(self.downstream.upstream_closed)

    def pause_reading(self) -> None:
        """The simulator answers synchronously: there is nothing to pause."""

    def resume_reading(self) -> None:
        """Nothing to resume."""
