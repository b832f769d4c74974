"""A lean HTTP/1.1 server on asyncio + httptools, for the simulated services and the control API.

The lab must never be the bottleneck of a gateway benchmark, and it runs some sixty listeners
in one process, so each listener is one asyncio server with a small protocol object per
connection, no framework. Handlers are synchronous (the services' work is in-memory or a short
SQLite statement); the server keeps connections alive, bounds bodies and never answers a stack
trace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import parse_qs

import httptools

from garde import soap

log = logging.getLogger(__name__)

REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    def param(self, name: str) -> str | None:
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = soap.CONTENT_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, keep_alive: bool) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


Handler = Callable[[Request], Response]


def soap_fault_response(code: str, message: str, status: int = 500) -> Response:
    return Response(status, soap.build_fault(code, message))


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse requests with httptools, answer them in order."""

    __slots__ = (
        "_body",
        "_handler",
        "_headers",
        "_max_body",
        "_parser",
        "_registry",
        "_size",
        "_too_large",
        "_transport",
        "_url",
        "idle",
    )

    def __init__(self, handler: Handler, max_body: int, registry: set[HttpProtocol]) -> None:
        self._handler = handler
        self._max_body = max_body
        self._registry = registry
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self.idle = True
        """Between two requests (none begun, or the last one answered)."""

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._fail(400, "malformed HTTP request")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- httptools callbacks --
    def on_message_begin(self) -> None:
        self.idle = False
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            self._too_large = True
        elif self._headers.get("expect", "").lower() == "100-continue" and self._transport:
            # .NET and some Java stacks wait for this before sending a SOAP body.
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body.append(body)
        self._size += len(body)
        if self._size > self._max_body:
            self._too_large = True
            self._body = []

    def on_message_complete(self) -> None:
        self.idle = True
        transport = self._transport
        if transport is None:
            return
        if self._too_large:
            # Answer, then close: the rest of an oversize body is not worth reading.
            response = soap_fault_response(
                "soap:Client",
                f"request body over the limit of {self._max_body} bytes; send a smaller message",
                413,
            )
            transport.write(response.encode(keep_alive=False))
            transport.close()
            return
        if self._url.startswith(b"/"):
            raw_path, _, raw_query = self._url.partition(b"?")
        else:  # absolute-form (http://host/path), as sent to proxies
            url = httptools.parse_url(self._url)
            raw_path, raw_query = url.path or b"/", url.query or b""
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            path=raw_path.decode("utf-8", "replace"),
            query=raw_query.decode("utf-8", "replace"),
            headers=self._headers,
            body=self._body[0] if len(self._body) == 1 else b"".join(self._body),
        )
        try:
            response = self._handler(request)
        except Exception:
            # Never a stack trace to the client; the log keeps it for the operator.
            log.exception("lab handler failed on %s %s", request.method, request.path)
            response = soap_fault_response("soap:Server", "internal error of the simulated service")
        keep_alive = self._parser.should_keep_alive()
        transport.write(response.encode(keep_alive))
        if not keep_alive:
            transport.close()

    def _fail(self, status: int, message: str) -> None:
        if self._transport is not None:
            body = soap_fault_response("soap:Client", message, status)
            self._transport.write(body.encode(keep_alive=False))
            self._transport.close()


class HttpServer:
    """Serves ``handler`` on a TCP port, known once started."""

    def __init__(self, handler: Handler, *, max_body: int = soap.MAX_MESSAGE_BYTES) -> None:
        self.handler = handler
        self.max_body = max_body
        self.connections: set[HttpProtocol] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self.host = ""
        self.port = 0

    def make_protocol(self) -> HttpProtocol:
        """A protocol object for one connection (also used by the proxy's in-memory link)."""
        return HttpProtocol(self.handler, self.max_body, self.connections)

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self.make_protocol, host, port, reuse_address=True)
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await self.sweep()

    async def sweep(self) -> None:
        """Close every connection, including those whose accept was still in flight."""
        for _ in range(8):
            await asyncio.sleep(0)
            for connection in list(self.connections):
                connection.close()
