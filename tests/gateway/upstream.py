"""A small loopback upstream for the gateway's socket tests: canned answers, countable."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools


@dataclass
class Upstream:
    status: int = 200
    body: bytes = b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body><ok/></soap:Body></soap:Envelope>"
    requests: list[tuple[bytes, bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    port: int = 0

    async def start(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        done: list[tuple[bytes, bytes, dict[bytes, bytes], bytes]] = []
        state: dict[str, object] = {"url": b"", "headers": {}, "body": b""}

        class P:
            def on_url(self, url: bytes) -> None:
                state["url"] = url

            def on_header(self, n: bytes, v: bytes) -> None:
                state["headers"][n.lower()] = v  # type: ignore[index]

            def on_body(self, b: bytes) -> None:
                state["body"] += b  # type: ignore[operator]

            def on_message_complete(self) -> None:
                done.append((parser.get_method(), state["url"], state["headers"], state["body"]))  # type: ignore[arg-type]
                state.update(url=b"", headers={}, body=b"")

        parser = httptools.HttpRequestParser(P())
        try:
            while data := await reader.read(65536):
                parser.feed_data(data)
                while done:
                    self.requests.append(done.pop(0))
                    writer.write(
                        b"HTTP/1.1 %d X\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
                        % (self.status, len(self.body), self.body)
                    )
        except (ConnectionError, httptools.HttpParserError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
