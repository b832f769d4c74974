"""The gateway's server: a bare asyncio protocol with httptools parsing.

A web framework costs about ten times the whole proxy's budget per request (measured: a
Starlette + aiohttp proxy reached 0.09x nginx here), so the server is one protocol class.
It refuses what an open proxy would accept (absolute-form targets, CONNECT, upgrades,
unknown Host names), request smuggling material (duplicate or conflicting lengths) and
oversize input before the gateway sees it, and answers pipelined requests in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, cast

import httptools

from garde.errors import RequestRejected, UsageError
from garde.gateway.fastpath import FastPath
from garde.gateway.handler import Gateway
from garde.gateway.native import NativePlane, unavailable_reason
from garde.gateway.transport import Waiter
from garde.gateway.wire import HOP_BY_HOP, Reply, Request, serialize, stream_head
from garde.ports import listen_problem

log = logging.getLogger("garde.gateway")


class _Fatal(Exception):
    """Raised from a parser callback: answer ``reply`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_ONCE = frozenset((b"content-length", b"host", b"transfer-encoding"))
"""Headers whose repetition is how request smuggling starts: refused."""


_NO_PARSER = httptools.HttpRequestParser(object())
"""Stands for the parser of a closed connection: it is never fed."""


class _ClientConnection(asyncio.Protocol):
    def __init__(self, server: GatewayServer, read: bytes = b"", general: bool = False) -> None:
        """``read``: bytes already read from the connection (by the native data plane, which
        handed it over); ``general``: its first request failed there, so it goes to the
        general path at once (retry-safe: starting over is safe)."""
        self.server = server
        self.read = read
        self.general_first = general
        self.gateway = server.gateway
        self.config = server.gateway.config
        # Read on every header: plain attributes, not a walk through the config each time.
        self.max_headers = self.config.max_headers
        self.max_header_bytes = self.config.max_header_bytes
        self.max_body = self.config.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request | Reply] = deque()
        self.busy = False
        self.paused = False
        self.closed = False
        self.continue_owed = False
        """A 100 Continue to write once the requests before it are answered."""
        self.since = time.monotonic()
        """When this connection last had nothing to do (accepted, or its answer written)."""
        self.first_byte = 0.0
        """When the first byte of the request being read arrived; 0: none being read."""
        self.last_byte = 0.0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.fields: dict[bytes, bytes] = {}
        self.forward: list[bytes] = []
        self.repeated = False
        self.action_again: bytes | None = None
        self.head_done = False
        self.body: list[bytes] = []
        self.size = 0
        self.header_bytes = 0

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as such.
        self.transport = cast(asyncio.Transport, transport)
        if not self.server.admit(self):
            self.closed = True
            self.transport.close()
            return
        self.server.connections.add(self)
        self.server.held_changed()
        if self.read:
            read, self.read = self.read, b""
            self.data_received(read)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.server.held_changed()
        # The parser holds this protocol's callbacks: dropping it breaks the cycle now,
        # rather than leaving it for the garbage collector to find.
        self.parser = _NO_PARSER

    def data_received(self, data: bytes) -> None:
        self.last_byte = now = time.monotonic()
        if not self.first_byte:
            self.first_byte = now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Fatal):
                self._fatal(cause.status, str(cause))
            else:
                log.exception("parser callback failed")
                self._fatal(500, "the gateway failed to read the request")
        except httptools.HttpParserUpgrade:
            self._fatal(400, "protocol upgrades are refused: the gateway speaks HTTP/1.1 only")
        except httptools.HttpParserError as exc:
            self._fatal(400, f"malformed HTTP request: {exc}")
        if self.continue_owed and not self.busy:
            self._continue()

    def _continue(self) -> None:
        """Answer ``Expect: 100-continue``, whose caller waits for it before sending the body:
        once the head is read and found acceptable, or, when pipelined requests come before
        it, once they are answered (an interim answer must not come before their final ones)."""
        self.continue_owed = False
        if self.transport is not None and not self.closed:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- httptools callbacks ---------------------------------------------------------------------
    def _begin(self) -> None:
        """Fresh state for the next request (not ``on_message_begin``: one callback less)."""
        self.url = b""
        self.headers = []
        self.fields = {}
        self.forward = []
        self.repeated = False
        self.action_again = None
        self.head_done = False
        self.body = []
        self.size = 0
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            # A chunked body's trailer fields: dropped. As headers they would reach the data
            # center past every check made when the head ended (a second SOAPAction...).
            return
        headers = self.headers
        self.header_bytes += len(name) + len(value)
        if len(headers) >= self.max_headers or self.header_bytes > self.max_header_bytes:
            raise _Fatal(
                431,
                f"request headers exceed {self.max_headers} fields or"
                f" {self.max_header_bytes} bytes",
            )
        headers.append((name, value))
        lowered = name.lower()
        fields = self.fields
        if lowered in fields:
            if lowered in _ONCE:
                self.repeated = True
            elif lowered == b"soapaction" and self.action_again is None:
                self.action_again = value
        else:
            fields[lowered] = value
        # Rendered now for the fast path, while the name is at hand lower-cased.
        if lowered not in HOP_BY_HOP and not lowered.startswith(b"garde-"):
            self.forward += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        self.head_done = True
        method = self.parser.get_method()
        if method == b"CONNECT":
            raise _Fatal(405, "CONNECT is refused: the gateway is not an open proxy")
        if not self.url.startswith(b"/"):
            raise _Fatal(
                400,
                "only origin-form request targets (/path) are accepted: the gateway forwards to"
                " the catalog's data centers only, never to a URL the request names",
            )
        fields = self.fields
        length = fields.get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.config.max_body:
            raise _Fatal(413, f"body larger than {self.config.max_body} bytes")
        if self.repeated or (length is not None and b"transfer-encoding" in fields):
            raise _Fatal(
                400,
                "duplicate Content-Length or Host, or both Content-Length and"
                " Transfer-Encoding: send each once",
            )
        if self.action_again is not None:
            # The gateway reads the first, a service may read the last: refused, not guessed.
            first = fields[b"soapaction"].decode("latin-1")
            again = self.action_again.decode("latin-1")
            raise _Fatal(
                400,
                f"SOAPAction is sent more than once ({first!r}, then {again!r}): send one"
                " SOAPAction, the one of the operation in the body",
            )
        server = self.server
        allowed = server.allowed_hosts
        host = fields.get(b"host")
        if host is None and self.parser.get_http_version() == "1.1":
            raise _Fatal(
                400,
                "HTTP/1.1 requests must send Host (RFC 9112, section 3.2): send"
                " Host: with the name the gateway is called by",
            )
        if allowed is not None and host is not None and host not in server.hosts_seen:
            host_name = _host_name(host)
            if host_name not in allowed:
                raise _Fatal(
                    421,
                    f"unknown Host {host_name!r}: this gateway answers to"
                    f" {', '.join(sorted(allowed))} (set allowed_hosts in its configuration)",
                )
            if len(server.hosts_seen) < 64:  # bounded: Host values with any port are allowed
                server.hosts_seen.add(host)
        expect = fields.get(b"expect")
        if (
            expect is not None
            and expect.strip().lower() == b"100-continue"
            and self.parser.get_http_version() == "1.1"  # HTTP/1.0 has no interim answers
        ):
            self.continue_owed = True

    def on_body(self, body: bytes) -> None:
        self.continue_owed = False  # the caller did not wait: no 100 needed (RFC 9110 10.1.1)
        self.size += len(body)
        if self.size > self.max_body:
            raise _Fatal(413, f"body larger than {self.max_body} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.continue_owed = False
        self.first_byte = 0.0
        body = self.body
        request = Request(
            self.parser.get_method(),
            self.url,
            self.headers,
            body[0] if len(body) == 1 else b"".join(body),
            self.parser.should_keep_alive(),
            self.fields,
            self.forward,
        )
        self._begin()
        if self.busy:
            self._enqueue(request)
        else:
            self._serve(request)  # the common case: nothing queued before it

    # -- answering in order ------------------------------------------------------------------------
    def _fatal(self, status: int, message: str) -> None:
        self.gateway.metrics.rejected[status] += 1
        request = Request(b"GET", b"/", self.headers)
        reply = self.gateway.reject(RequestRejected(status, message), request)
        assert self.transport is not None
        self.transport.pause_reading()
        self.paused = True
        self._enqueue(reply)

    def _enqueue(self, item: Request | Reply) -> None:
        self.queue.append(item)
        if not self.busy:
            self._next()
        elif len(self.queue) > 16 and not self.paused and self.transport is not None:
            self.transport.pause_reading()  # a pipelining client waits for us
            self.paused = True

    def _next(self) -> None:
        transport = self.transport
        assert transport is not None
        if not self.queue:
            self.busy = False
            self.since = time.monotonic()
            if self.continue_owed:
                self._continue()
            if self.paused and not transport.is_closing():
                self.paused = False
                transport.resume_reading()
            return
        item = self.queue.popleft()
        if isinstance(item, Reply):
            # A request we refused while reading: answer it and hang up (its body may be
            # unread, and the next bytes on this connection cannot be trusted).
            self.queue.clear()
            if not self.closed:
                transport.write(serialize(item, keep_alive=False))
                transport.close()
            return
        self._serve(item)

    def _serve(self, request: Request) -> None:
        self.busy = True
        if self.general_first:
            self.general_first = False
            self.general(request)
        elif not self.server.fast.try_serve(request, self):
            self.general(request)

    def general(self, request: Request) -> None:
        """Serve ``request`` on the general path (every rule, as a coroutine)."""
        _Drive(self.gateway.handle(request), partial(self._done, request)).step()

    def _done(self, request: Request, reply: Reply | None) -> None:
        if reply is None:
            log.error("the gateway failed on %s", request.path)
            reply = self.gateway.reject(
                RequestRejected(500, "the gateway failed on this request; see its log"), request
            )
        if self.closed:
            return
        transport = self.transport
        assert transport is not None
        if reply.stream is not None:
            self.server.track(asyncio.get_running_loop().create_task(self._stream(reply)))
            return
        self.answer(request, serialize(reply, request.keep_alive))

    def answer(self, request: Request, data: bytes) -> None:
        """Write the whole response to ``request``, then serve the next one queued."""
        if self.closed:
            return
        transport = self.transport
        assert transport is not None
        transport.write(data)
        if not request.keep_alive:
            transport.close()
            return
        self._next()

    async def _stream(self, reply: Reply) -> None:
        transport = self.transport
        assert transport is not None
        assert reply.stream is not None
        transport.write(stream_head(reply))
        try:
            async for chunk in reply.stream:
                if self.closed:
                    break
                transport.write(chunk)
        finally:
            transport.close()

    def expired(self, now: float) -> bool:
        """Whether this connection has waited too long for its caller (``sweep``): idle,
        a head that does not end, or a body that stopped arriving."""
        if self.busy or self.closed:
            return False  # serving a request: its deadline is the gateway's business
        config = self.config
        if not self.first_byte:
            return now - self.since > config.client_idle_timeout
        if not self.head_done:
            return now - self.first_byte > config.client_header_timeout
        return now - self.last_byte > config.client_idle_timeout


class _Drive:
    """Runs one request's coroutine without an asyncio Task.

    Profiles showed the Task hops (start on the next loop iteration, resume one iteration
    after the upstream answered) and the writes they push out of the I/O callbacks costing
    more than all of the gateway's own logic. The driver starts the coroutine at once and,
    when it awaits an upstream ``Waiter``, resumes it inside the callback that settles it.
    Any other awaitable (journal, tokens) is a plain asyncio future: resumed by callback.
    """

    __slots__ = ("coro", "done")

    def __init__(
        self, coro: Coroutine[Any, Any, Reply], done: Callable[[Reply | None], None]
    ) -> None:
        self.coro = coro
        self.done = done

    def step(self, _: object = None) -> None:
        try:
            yielded = self.coro.send(None)
        except StopIteration as stop:
            self.done(stop.value)
            return
        except Exception:
            log.exception("request failed")
            self.done(None)
            return
        if isinstance(yielded, Waiter):
            yielded._asyncio_future_blocking = False
            yielded.hook = self.step
        elif isinstance(yielded, asyncio.Future):
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(self.step)
        else:  # a bare yield (asyncio.sleep(0)): go round the loop once
            asyncio.get_running_loop().call_soon(self.step)


def _host_name(host: bytes) -> str:
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class GatewayServer:
    """Serves one ``Gateway`` on a listening socket."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.allowed_hosts = gateway.config.hosts_allowed()
        self.hosts_seen: set[bytes] = set()
        """Host header values already found allowed: most clients send the same one."""
        self.fast = FastPath(gateway)
        self.connections: set[_ClientConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.native: NativePlane | None = None
        """The native data plane serving the listening socket, when it does."""
        self._sock: socket.socket | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.cap_reached = 0
        """New connections that found ``max_clients`` held (since the start)."""
        self._cap_logged = 0.0

    # -- client connections: timeouts and the cap --------------------------------------------
    def sweep_interval(self) -> float:
        config = self.gateway.config
        least = min(config.client_header_timeout, config.client_idle_timeout)
        return min(1.0, max(0.01, least / 4))

    def _sweep(self) -> None:
        """Close the connections whose caller kept them waiting too long (the native plane
        sweeps its own the same way)."""
        now = time.monotonic()
        for connection in [c for c in self.connections if c.expired(now)]:
            if connection.transport is not None:
                connection.transport.close()
        self._sweeper = asyncio.get_running_loop().call_later(self.sweep_interval(), self._sweep)

    def admit(self, connection: _ClientConnection) -> bool:
        """At ``max_clients``, make room for ``connection`` by closing the connection that has
        waited longest for its caller; False if all are serving (``connection`` is closed)."""
        limit = self.gateway.config.max_clients
        held = len(self.connections) + (self.native.plane.clients if self.native else 0)
        if held < limit:
            return True
        waiting = [(c.since, id(c), c) for c in self.connections if not c.busy and not c.closed]
        if not waiting:
            self.capped(1, closed_new=True)
            return False
        victim = min(waiting)[2]
        if victim.transport is not None:
            victim.transport.close()
        self.capped(1)
        return True

    def held_changed(self) -> None:
        """Tell the native plane how many connections Python holds (they count for the cap)."""
        if self.native is not None:
            self.native.plane.python_clients = len(self.connections)

    def capped(self, count: int, closed_new: bool = False) -> None:
        """Count (and log, at most every 10 s) connections that found ``max_clients`` held."""
        self.cap_reached += count
        now = time.monotonic()
        if now - self._cap_logged >= 10.0:
            self._cap_logged = now
            log.warning(
                "client connections: max_clients (%d) reached (%d times so far): %s; raise"
                " max_clients (below the descriptor limit) if callers need more",
                self.gateway.config.max_clients,
                self.cap_reached,
                "a new connection was closed, all others being served"
                if closed_new
                else "the connection waiting longest for its caller was closed",
            )

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(
        self, host: str, port: int, *, reuse_port: bool = False, sock: socket.socket | None = None
    ) -> int:
        """Listen on ``host:port`` (or ``sock``); the port it got. A port that cannot be had
        is a ``UsageError`` saying why and what to do, never a traceback."""
        try:
            return await self._listen(host, port, reuse_port, sock)
        except OSError as exc:
            if self._sweeper is not None:
                self._sweeper.cancel()
            raise UsageError(listen_problem(host, port, exc)) from None

    async def _listen(
        self, host: str, port: int, reuse_port: bool, sock: socket.socket | None
    ) -> int:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self.sweep_interval(), self._sweep)
        if self._native_wanted():
            if sock is None:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.create_server(
                    (host, port), family=family, backlog=1024, reuse_port=reuse_port
                )
            sock.setblocking(False)
            self._sock = sock
            self.native = NativePlane(self, sock)
            self.native.start()
            return int(sock.getsockname()[1])
        if sock is not None:
            self._server = await loop.create_server(lambda: _ClientConnection(self), sock=sock)
        else:
            self._server = await loop.create_server(
                lambda: _ClientConnection(self), host, port, reuse_port=reuse_port, backlog=1024
            )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    def _native_wanted(self) -> bool:
        mode = self.gateway.config.fast_path_mode()
        if mode not in ("auto", "native"):
            return False
        reason = unavailable_reason(self)
        if reason is None:
            return True
        if mode == "native":
            raise UsageError(f"fast_path: native cannot serve here: {reason}")
        log.debug("native data plane not used: %s", reason)
        return False

    def adopt(self, sock: socket.socket, read: bytes, general: bool) -> None:
        """Serve a connection the native data plane handed over, from where it left it."""
        self.track(asyncio.get_running_loop().create_task(self._adopt(sock, read, general)))

    async def _adopt(self, sock: socket.socket, read: bytes, general: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: _ClientConnection(self, read, general), sock)
        except asyncio.CancelledError:
            sock.close()
            raise
        except (OSError, RuntimeError) as exc:
            log.warning("could not adopt a connection from the native data plane: %s", exc)
            sock.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.native is not None:
            self.native.close()
        if self._sock is not None:
            self._sock.close()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
