"""The upstream transport: one method that sends one request to one data center.

This is the gateway's seam (like an httpx transport): the forwarding policy never touches a
socket, so tests swap in an in-process transport. ``HttpTransport`` is the real one: HTTP/1.1
over asyncio protocols with httptools parsing and keep-alive pools, because a general-purpose
client costs several times the whole proxy's budget per request (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

import httptools

from garde.errors import ConnectFailed, SentFailed

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one service lives in one data center, parsed once from the catalog URL."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str
    host_header: bytes
    base_target: bytes

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint {url!r} is not an http(s) URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        default = (parts.scheme == "http" and port == 80) or (
            parts.scheme == "https" and port == 443
        )
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        header = shown if default else f"{shown}:{port}"
        base = parts.path.rstrip("/")
        return cls(url, parts.scheme, host, port, base, header.encode(), base.encode())


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Waiter(asyncio.Future[Response]):
    """The future of one upstream answer, which can resume its request in the same callback.

    A request driven by an asyncio Task resumes one loop iteration after its future is
    settled; the gateway's request driver (``app.py``) sets ``hook`` instead and resumes
    inside the upstream's read callback, as a hand-written proxy would. Tasks awaiting a
    ``Waiter`` treat it as the plain future it also is.
    """

    hook: Callable[[], None] | None = None

    def settle(self, response: Response | None, error: BaseException | None = None) -> None:
        if self.done():
            return
        if error is not None:
            self.set_exception(error)
        else:
            self.set_result(response)  # type: ignore[arg-type]
        hook = self.hook
        if hook is not None:
            self.hook = None
            hook()


class Pending(Protocol):
    """Whoever waits for one upstream answer: a ``Waiter``, or the fast path's exchange."""

    def settle(self, response: Response | None, error: BaseException | None = None) -> None: ...


class Transport(Protocol):
    """Sends one request to one endpoint; raises ``ConnectFailed`` or ``SentFailed``."""

    async def request(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        *,
        connect_timeout: float,
        timeout: float,
    ) -> Response: ...

    async def close(self) -> None: ...


@runtime_checkable
class RawTransport(Transport, Protocol):
    """A transport the Python fast path can use: it takes a request already rendered as
    HTTP/1.1 bytes and answers ``waiter`` from its own callback, with no task in between."""

    def send_now(self, endpoint: Endpoint, data: bytes, timeout: float, waiter: Pending) -> bool:
        """Send ``data`` at once if a connection is ready; False to take the general path."""
        ...


def render(
    endpoint: Endpoint, method: bytes, target: bytes, headers: Headers, body: bytes
) -> bytes:
    """One HTTP/1.1 request for ``endpoint``, with its own Host and Content-Length."""
    head = [
        method,
        b" ",
        target,
        b" HTTP/1.1\r\nHost: ",
        endpoint.host_header,
        b"\r\nContent-Length: ",
        str(len(body)).encode(),
        b"\r\n",
    ]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    head += (b"\r\n", body)
    return b"".join(head)


_NO_PARSER = httptools.HttpResponseParser(object())
"""Stands for the parser of a connection not (or no longer) open: it is never fed."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        # The parser holds this protocol's callbacks, and this protocol the parser: a cycle
        # the garbage collector would have to find. It is made when connected (a failed
        # connect leaves none) and dropped when the connection ends.
        self.parser = _NO_PARSER
        self.transport: asyncio.Transport | None = None
        self.waiter: Pending | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.deadline = 0.0
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.idle_since = 0.0
        self.closed = False
        self.head_done = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as such.
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpResponseParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(SentFailed("protocol", f"malformed upstream response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.waiter is not None:
            if self.head_done and exc is None and not self._framed():
                # A body delimited by the end of the connection (no Content-Length, not
                # chunked): the close is its end, not a failure.
                waiter = self.waiter
                response = Response(
                    self.parser.get_status_code(), self.headers, b"".join(self.body)
                )
                self._reset()
                self.parser = _NO_PARSER
                waiter.settle(response)
                return
            self._fail(SentFailed("reset", "the data center closed the connection"))
        self.parser = _NO_PARSER

    def _framed(self) -> bool:
        """Whether the answer's length is in its headers (not delimited by the close)."""
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" in names or b"transfer-encoding" in names

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Whether the body ends with the connection matters only if the connection ends
        # mid-answer (``connection_lost``): the headers are searched then, not here.
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        body = self.body
        response = Response(
            self.parser.get_status_code(),
            self.headers,
            body[0] if len(body) == 1 else b"".join(body),
        )
        keep = self.parser.should_keep_alive()
        # _reset, inlined: this runs once per request.
        self.waiter = None
        self.headers = []
        self.body = []
        self.head_done = False
        if keep and not self.closed:
            self.pool.release(self)
        else:
            self.close()
        if waiter is not None:
            waiter.settle(response)

    # requests
    def send(self, data: bytes, timeout: float, waiter: Pending) -> None:
        assert self.transport is not None
        loop = self.pool.loop
        self.waiter = waiter
        deadline = self.deadline = loop.time() + timeout
        # One timer per connection, not per request: creating and cancelling a timer for
        # each request cost more than the rest of the upstream side. An armed timer that
        # fires no later than this deadline is kept; on firing it re-arms for the request
        # then in flight, if that one's deadline is still ahead.
        if self.timer is None or self.timer_at > deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = loop.call_at(deadline, self._check_deadline)
            self.timer_at = deadline
        self.transport.write(data)

    def _check_deadline(self) -> None:
        self.timer = None
        if self.waiter is None:
            return  # answered in time; an idle connection needs no timer
        loop = self.pool.loop
        if self.deadline > loop.time():
            self.timer = loop.call_at(self.deadline, self._check_deadline)
            self.timer_at = self.deadline
            return
        self._fail(SentFailed("timeout", "no answer within the response timeout"))

    def _fail(self, error: SentFailed) -> None:
        waiter = self.waiter
        self._reset()
        self.close()
        if waiter is not None:
            waiter.settle(None, error)

    def _reset(self) -> None:
        # The timer stays armed (see ``send``): it finds no request, or a later deadline.
        self.waiter = None
        self.headers = []
        self.body = []
        self.head_done = False

    def close(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """Idle keep-alive connections to one (host, port)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_idle: int, idle_timeout: float):
        self.loop = loop
        self.idle: deque[_Connection] = deque()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout

    def take(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.idle_timeout:
                # The upstream may close it any moment: a request written into that race
                # would fail after "sending", which a non-retry-safe write cannot survive.
                conn.close()
                continue
            return conn
        return None

    def release(self, conn: _Connection) -> None:
        if len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        # Closed connections are skipped lazily in take(); nothing to do eagerly.
        pass

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def _settle_once(settled: asyncio.Future[None], _: object = None) -> None:
    if not settled.done():
        settled.set_result(None)


def _abandon(attempt: asyncio.Task[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]) -> None:
    """Stop a connection attempt nobody waits for any more; close what it made, if anything."""
    attempt.cancel()
    attempt.add_done_callback(_close_made)


def _close_made(attempt: asyncio.Task[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]) -> None:
    if attempt.cancelled():
        return
    error = attempt.exception()  # retrieved, so asyncio does not log it as never retrieved
    if error is None:
        attempt.result()[0].close()
    else:
        _forget(error)


def _forget(error: BaseException) -> None:
    """Drop the traceback of a connection failure we translated.

    Its frames hold the connection attempt's task, which holds the error: a reference cycle
    per failed attempt, left for the garbage collector. While a data center is down, its
    health checks fail every interval, and those collections (milliseconds each, under load)
    showed in the latency of the requests the other data centers were serving.
    """
    while error is not None:
        error.__traceback__ = None
        error = error.__context__  # type: ignore[assignment]


class HttpTransport:
    """HTTP/1.1 to the data centers with keep-alive pools; http and https."""

    def __init__(
        self,
        *,
        max_idle_per_endpoint: int = 256,
        idle_timeout: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._max_idle = max_idle_per_endpoint
        self._idle_timeout = idle_timeout
        self._ssl = ssl_context

    @property
    def max_idle(self) -> int:
        """Idle keep-alive connections kept per data center."""
        return self._max_idle

    @property
    def default_tls(self) -> bool:
        """Whether https data centers are verified as ``ssl.create_default_context()`` does
        (no context of its own was given): the native data plane can do the same."""
        return self._ssl is None

    @property
    def idle_timeout(self) -> float:
        """Seconds an idle connection is trusted to still be open."""
        return self._idle_timeout

    def _pool(self, endpoint: Endpoint) -> _Pool:
        key = (endpoint.scheme, endpoint.host, endpoint.port)
        pool = self._pools.get(key)
        if pool is None:
            loop = asyncio.get_running_loop()
            pool = _Pool(loop, self._max_idle, self._idle_timeout)
            self._pools[key] = pool
        return pool

    async def request(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        *,
        connect_timeout: float,
        timeout: float,
    ) -> Response:
        pool = self._pool(endpoint)
        conn = pool.take()
        if conn is None:
            conn = await self._connect(pool, endpoint, connect_timeout)
        waiter = Waiter(loop=pool.loop)
        conn.send(render(endpoint, method, target, headers, body), timeout, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Abandoned mid-exchange (a stopping gateway, a caller gone): the connection
            # still owes this answer, so it can serve nobody else. Closed, not leaked.
            conn.close()
            raise

    def send_now(self, endpoint: Endpoint, data: bytes, timeout: float, waiter: Pending) -> bool:
        """Send on an idle keep-alive connection at once; False if there is none."""
        pool = self._pools.get((endpoint.scheme, endpoint.host, endpoint.port))
        conn = pool.take() if pool is not None else None
        if conn is None:
            return False
        conn.send(data, timeout, waiter)
        return True

    async def _connect(self, pool: _Pool, endpoint: Endpoint, timeout: float) -> _Connection:
        loop = pool.loop
        context = None
        if endpoint.scheme == "https":
            context = self._ssl or ssl.create_default_context()
        attempt = loop.create_task(
            loop.create_connection(
                lambda: _Connection(pool), endpoint.host, endpoint.port, ssl=context
            )
        )
        # Not asyncio.wait_for: on Python 3.11 it loses the caller's cancellation when the
        # attempt ends in the same loop iteration (it returns the attempt's outcome instead),
        # and a health check cancelled that way kept probing forever, so the gateway never
        # stopped. Not asyncio.timeout either: the request driver is not an asyncio Task.
        settled = loop.create_future()
        attempt.add_done_callback(functools.partial(_settle_once, settled))
        timer = loop.call_later(timeout, _settle_once, settled)
        try:
            await settled
        except asyncio.CancelledError:
            _abandon(attempt)  # the caller is cancelled, whatever the attempt did meanwhile
            raise
        finally:
            timer.cancel()
        if not attempt.done():
            _abandon(attempt)
            raise ConnectFailed("connect_timeout", f"{endpoint.host}:{endpoint.port}")
        error = attempt.exception()
        if error is None:
            return attempt.result()[1]
        _forget(error)
        if isinstance(error, ConnectionRefusedError):
            raise ConnectFailed("refused", f"{endpoint.host}:{endpoint.port}")
        if isinstance(error, (OSError, ssl.SSLError)):
            raise ConnectFailed("connect_error", f"{endpoint.host}:{endpoint.port}: {error}")
        raise error

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
