"""The fault proxy: one TCP listener per (service, data center), in front of the simulator.

It listens at the catalog's endpoint and relays bytes to the simulated service, one upstream
connection per client connection (keep-alive preserved): in memory when the simulator runs in
the same process (``link.py``), else over the simulator's TCP port. With no fault set
the relay is a plain byte copy; requests are still delimited (with httptools, a C parser, or
by the in-memory simulator's own parser) so that a fault set at any time applies from the
next request on. Assumes, like HTTP/1.1 clients in practice, that requests on one connection
are not pipelined.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import cast

import httptools

from garde import soap
from garde.lab.capacity import Capacity, LoadMeter
from garde.lab.faults import Fault, FaultKind
from garde.lab.http import HttpProtocol
from garde.lab.link import MemoryLink

log = logging.getLogger(__name__)

SLOW_TICK = 0.05
"""Seconds between two writes of a bandwidth-limited answer."""


def _error_response(status: str) -> bytes:
    if status == "soap":
        body = soap.build_fault("soap:Server", "injected fault: the service failed to answer")
        head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml; charset=utf-8\r\n"
    else:
        reason = "Service Unavailable" if status == "503" else "Internal Server Error"
        body = f"injected fault: {status} {reason}\n".encode()
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class LinkProxy:
    """The proxy of one (service, data center): its listener, faults and open connections."""

    def __init__(
        self,
        service: str,
        dc: str,
        host: str,
        port: int,
        upstream: tuple[str, int],
        link: Callable[[], HttpProtocol] | None = None,
    ):
        self.service = service
        self.dc = dc
        self.host = host
        self.port = port
        self.upstream = upstream
        self.link = link
        """Makes the simulator's protocol for an in-memory link; None: connect to upstream."""
        self.faults: dict[FaultKind, Fault] = {}
        self.clean = True
        """No fault at all and nothing metered: the fast path, a plain relay."""
        self.capacity: Capacity | None = None
        self.meter: LoadMeter | None = None
        """Counts the load offered, from the first capacity set on (docs/lab.md)."""
        self.connections: set[ClientSide] = set()
        self.upstreams: set[UpstreamSide | MemoryLink] = set()
        self.accepting: set[asyncio.Task[None]] = set()
        self._server: _Listener | None = None
        self._reserved: socket.socket | None = None
        self._timers: dict[FaultKind, asyncio.TimerHandle] = {}
        self._flap_down = False
        self._flap_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    # -- listener ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._open()
        # Learn the port the kernel gave (base_port=0) before anyone reads the endpoint.
        assert self._server is not None
        self.port = self._server.sockets[0].getsockname()[1]
        await self._server.ready()

    def _open(self) -> None:
        """Listen again, synchronously: a client connecting right after a heal is accepted."""
        assert self._loop is not None
        reserved, self._reserved = self._reserved, None
        if reserved is not None:
            sock = reserved
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if reserved is None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        # The kernel queues connections from now on; the accept loop takes them in a moment.
        self._server = _Listener(self._loop, sock, lambda: ClientSide(self), self.accepting)

    def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            # Keep the port: a socket bound but not listening refuses connections just the
            # same, and no outgoing connection can take the port as its ephemeral port
            # meanwhile (then the heal could not listen there again: EADDRINUSE).
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            reserved = socket.socket(family, socket.SOCK_STREAM)
            try:
                reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                reserved.bind((self.host, self.port))
                self._reserved = reserved
            except OSError:
                reserved.close()
        for connection in list(self.connections):
            connection.abort()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._flap_timer is not None:
            self._flap_timer.cancel()
        self.faults.clear()
        server = self._server
        self._close()
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if server is not None:
            await server.wait_closed()
        for task in list(self.accepting):
            with contextlib.suppress(Exception):
                await task
        # A connection accepted while the listener closed registers a moment later: sweep
        # again until nothing is left open, so no transport outlives the loop.
        await self.sweep()

    async def sweep(self) -> None:
        """Close every connection, including those whose accept was still in flight."""
        for _ in range(8):
            await asyncio.sleep(0)
            for connection in list(self.connections):
                connection.abort()
            for upstream in list(self.upstreams):
                upstream.close()

    # -- faults --------------------------------------------------------------------------

    def set(self, fault: Fault) -> None:
        assert self._loop is not None
        self._cancel_timer(fault.kind)
        if fault.kind is FaultKind.FLAP and self._flap_timer is not None:
            self._flap_timer.cancel()
        self.faults[fault.kind] = fault
        self.clean = False
        if fault.duration is not None:
            self._timers[fault.kind] = self._loop.call_later(fault.duration, self.heal, fault.kind)
        if fault.kind is FaultKind.DOWN:
            self._close()
        elif fault.kind is FaultKind.FLAP:
            self._flap_down = False
            self._flap()

    def _flap(self) -> None:
        fault = self.faults.get(FaultKind.FLAP)
        if fault is None or self._loop is None:
            return
        self._flap_down = not self._flap_down
        self._apply_listening()
        self._flap_timer = self._loop.call_later(fault.period / 2, self._flap)

    def _apply_listening(self) -> None:
        should_listen = FaultKind.DOWN not in self.faults and not (
            FaultKind.FLAP in self.faults and self._flap_down
        )
        if should_listen and self._server is None:
            self._open()
        elif not should_listen and self._server is not None:
            self._close()

    def heal(self, kind: FaultKind | None = None) -> int:
        """Remove one kind of fault, or all; the number removed."""
        kinds = [kind] if kind is not None else list(self.faults)
        removed = 0
        for each in kinds:
            if self.faults.pop(each, None) is not None:
                removed += 1
            self._cancel_timer(each)
        if FaultKind.FLAP not in self.faults:
            if self._flap_timer is not None:
                self._flap_timer.cancel()
                self._flap_timer = None
            self._flap_down = False
        self.clean = not self.faults and self.meter is None
        self._apply_listening()
        return removed

    def set_capacity(self, capacity: Capacity | None) -> None:
        """Limit the requests admitted per second (None: no limit, still metered)."""
        self.capacity = capacity
        if self.meter is None:
            self.meter = LoadMeter()
        self.clean = False

    def _cancel_timer(self, kind: FaultKind) -> None:
        timer = self._timers.pop(kind, None)
        if timer is not None:
            timer.cancel()


class _Listener:
    """A listening socket with its own accept loop.

    Not ``loop.create_server``: on Python 3.11 closing an asyncio server while an accept is in
    flight leaks that connection's socket, and ``down``/``flap`` close listeners often.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        pending: set[asyncio.Task[None]],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._pending = pending
        """Connections being set up, shared with the target: they outlive a closed listener."""
        self._closed = False
        loop.add_reader(sock.fileno(), self._accept)

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._sock]

    async def ready(self) -> None:
        await asyncio.sleep(0)

    def _accept(self) -> None:
        # Synchronous accepts: each connection is owned by a task at once, so closing the
        # listener can never drop an accepted socket on the floor.
        for _ in range(64):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        with contextlib.suppress(OSError):
            self._sock.close()

    async def wait_closed(self) -> None:
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task


class ClientSide(asyncio.Protocol):
    """A connection from a client to the proxy, paired with one upstream connection."""

    def __init__(self, target: LinkProxy) -> None:
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.upstream: UpstreamSide | MemoryLink | None = None
        self.pending: list[bytes] = []
        self.parser = httptools.HttpRequestParser(self)
        self.between = True
        self.streaming = True
        self.request: list[bytes] = []
        self.cut_after: int | None = None
        self.slow_queue: collections.deque[bytes] = collections.deque()
        self.slow_pumping = False
        self.close_after_drain = False
        self.unparsable = False
        self.delegated = False
        """No fault, in-memory simulator: its parser delimits requests, ours is not fed."""

    # -- asyncio -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.target.connections.add(self)
        if self.target.link is not None:
            self.upstream = MemoryLink(self, self.target.link, self.target.upstreams)
            return
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.target.upstream
        try:
            _, upstream = await loop.create_connection(lambda: UpstreamSide(self), host, port)
        except OSError:
            log.warning(
                "lab proxy %s/%s: simulator unreachable", self.target.service, self.target.dc
            )
            self.abort()
            return
        if self.transport is None:
            upstream.close()
            return
        self.upstream = upstream
        for chunk in self.pending:
            upstream.write(chunk)
        self.pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.connections.discard(self)
        self.transport = None
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def data_received(self, data: bytes) -> None:
        if self.delegated:
            link = self.upstream
            if isinstance(link, MemoryLink) and not (link.idle and not self.target.clean):
                link.write(data)
                return
            # A fault was set and a new request starts (or the simulator is gone): delimit
            # requests here again, from this one on.
            self.delegated = False
            self.parser = httptools.HttpRequestParser(self)
            self.between = True
        if self.between and not self.unparsable:
            # A new request starts: a fault set now applies to it.
            self.streaming = self.target.clean
            if self.streaming and isinstance(self.upstream, MemoryLink):
                # One HTTP parse per request instead of two, while nothing is to be injected.
                self.delegated = True
                self.upstream.write(data)
                return
        if self.streaming:
            self._forward(data)
        else:
            self.request.append(data)
        if self.unparsable:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            # Not HTTP the proxy understands: relay it as it is from now on and let the
            # simulator answer (a 400), as a real service would.
            self.unparsable = True
            self.streaming = True
            self._forward(b"".join(self.request))
            self.request = []

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- httptools -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.between = False

    def on_message_complete(self) -> None:
        self.between = True
        if self.streaming:
            return
        data = b"".join(self.request)
        self.request = []
        self._apply_faults(data)

    # -- relaying ------------------------------------------------------------------------

    def _forward(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending.append(data)

    def _apply_faults(self, data: bytes) -> None:
        faults = self.target.faults
        if FaultKind.BLACKHOLE in faults:
            return  # swallowed: the client waits until it gives up
        meter = self.target.meter
        capacity = self.target.capacity
        if meter is not None and not meter.admit(capacity) and capacity is not None:
            if self.transport is not None:
                self.transport.write(capacity.answer())
            return
        errors = faults.get(FaultKind.ERRORS)
        if errors is not None and errors.rng.random() < errors.rate:
            if self.transport is not None:
                self.transport.write(_error_response(errors.status))
            return
        reset = faults.get(FaultKind.RESET)
        self.cut_after = None
        if reset is not None and reset.rng.random() < reset.rate:
            self.cut_after = reset.after
        latency = faults.get(FaultKind.LATENCY)
        if latency is not None:
            delay = latency.latency
            if latency.jitter:
                delay = max(0.0, delay + latency.rng.uniform(-latency.jitter, latency.jitter))
            asyncio.get_running_loop().call_later(delay, self._forward, data)
            return
        self._forward(data)

    def from_upstream(self, data: bytes) -> None:
        """An answer's bytes from the simulator: straight through unless a fault shapes them."""
        if self.target.clean and self.cut_after is None and not self.slow_queue:
            if self.transport is not None:
                self.transport.write(data)
            return
        self.answer(data)

    def answer(self, data: bytes) -> None:
        """Relay ``data`` from the simulator, through the faults that shape answers."""
        transport = self.transport
        if transport is None:
            return
        if self.cut_after is not None:
            if len(data) >= self.cut_after:
                transport.write(data[: self.cut_after])
                self.cut_after = None
                self.reset()
                return
            self.cut_after -= len(data)
        slow = self.target.faults.get(FaultKind.SLOW)
        if slow is not None or self.slow_queue:
            self.slow_queue.append(data)
            if not self.slow_pumping:
                self.slow_pumping = True
                self._pump()
            return
        transport.write(data)

    def _pump(self) -> None:
        transport = self.transport
        slow = self.target.faults.get(FaultKind.SLOW)
        if transport is None:
            self.slow_queue.clear()
            self.slow_pumping = False
            return
        budget = max(1, int(slow.bandwidth * SLOW_TICK)) if slow is not None else 1 << 30
        while self.slow_queue and budget > 0:
            chunk = self.slow_queue.popleft()
            if len(chunk) > budget:
                self.slow_queue.appendleft(chunk[budget:])
                chunk = chunk[:budget]
            transport.write(chunk)
            budget -= len(chunk)
        if self.slow_queue:
            asyncio.get_running_loop().call_later(SLOW_TICK, self._pump)
            return
        self.slow_pumping = False
        if self.close_after_drain:
            transport.close()

    def upstream_closed(self) -> None:
        self.upstream = None
        if self.transport is None:
            return
        if self.slow_pumping:
            self.close_after_drain = True
        else:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def reset(self) -> None:
        """Cut the connection with a TCP RST (SO_LINGER 0), as a crashing server would."""
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        if self.upstream is not None:
            self.upstream.close()


class UpstreamSide(asyncio.Protocol):
    """The proxy's connection to the simulator, on behalf of one client connection."""

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.client.target.upstreams.add(self)

    def data_received(self, data: bytes) -> None:
        self.client.from_upstream(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.client.target.upstreams.discard(self)
        self.client.upstream_closed()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()
