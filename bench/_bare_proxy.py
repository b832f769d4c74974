"""A bare HTTP/1.1 forwarder on uvloop + httptools: the floor a Python proxy can reach.

    python -m bench._bare_proxy LISTEN_PORT UPSTREAM_PORT

Reference implementation for ``bench.gateway``, not part of garde: no routing, no policy,
no health, no metrics. Each client connection gets one keep-alive upstream connection; a
request is parsed (headers kept as a list), re-rendered with its own Host and
Content-Length, and the answer likewise, each in one write. What the gateway costs above
this is the price of its continuity path plus whatever overhead it still carries.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import httptools
import uvloop

_SKIP = frozenset((b"connection", b"keep-alive", b"host", b"content-length", b"transfer-encoding"))


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[bytes] = []
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _SKIP:
            self.headers += (name, b": ", value, b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status = self.parser.get_status_code()
        out = [b"HTTP/1.1 %d OK\r\n" % status, *self.headers]
        out.append(b"Content-Length: %d\r\n\r\n" % len(body))
        out.append(body)
        self.headers = []
        self.body = []
        transport = self.client.transport
        if transport is not None:
            transport.write(b"".join(out))


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.url = b""
        self.headers: list[bytes] = []
        self.body: list[bytes] = []
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self.connecting = loop.create_task(self._connect(loop))

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        _, protocol = await loop.create_connection(
            lambda: _Upstream(self), "127.0.0.1", self.upstream_port
        )
        self.upstream = protocol
        if self.pending:  # what the client sent while we connected
            pending, self.pending = self.pending, b""
            self.parser.feed_data(pending)

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending += data
            return
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _SKIP:
            self.headers += (name, b": ", value, b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        out = [self.parser.get_method(), b" ", self.url, b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
        out += self.headers
        out.append(b"Content-Length: %d\r\n\r\n" % len(body))
        out.append(body)
        self.url = b""
        self.headers = []
        self.body = []
        assert self.upstream is not None
        assert self.upstream.transport is not None
        self.upstream.transport.write(b"".join(out))


async def serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Client(upstream_port), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    uvloop.run(serve(int(args[0]), int(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
