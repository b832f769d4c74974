"""The gateway on a real loopback socket, in front of real loopback upstreams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from garde.catalog import Catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from tests.gateway.doubles import RECIPE, MemoryJournal, envelope
from tests.gateway.upstream import Upstream

TOKEN = "s3cret"


@asynccontextmanager
async def stack(
    catalog: Catalog, **config: object
) -> AsyncIterator[tuple[RunningGateway, Upstream, Upstream]]:
    dc1, dc2 = await Upstream().start(), await Upstream().start()
    # dc3 points at a port nothing listens on: the port dc1's upstream had is reused below.
    closed = await Upstream().start()
    await closed.stop()
    endpoints = {
        "recipe-executor": {
            "dc1": f"http://127.0.0.1:{dc1.port}/Recip-e/v4/Executor",
            "dc2": f"http://127.0.0.1:{dc2.port}/Recip-e/v4/Executor",
            "dc3": f"http://127.0.0.1:{closed.port}/Recip-e/v4/Executor",
        }
    }
    settings = GatewayConfig(port=0, health_checks=False, admin_token=TOKEN).with_overrides(
        **config
    )
    running = await RunningGateway(
        catalog.with_endpoints(endpoints), settings, MemoryJournal()
    ).start()
    try:
        yield running, dc1, dc2
    finally:
        await running.stop()
        await dc1.stop()
        await dc2.stop()


async def raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


def soap_post(body: bytes, *, host: bytes = b"127.0.0.1", extra: bytes = b"") -> bytes:
    return (
        b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: " + host + b"\r\n"
        b'Content-Type: text/xml\r\nSOAPAction: "'
        + RECIPE.encode()
        + b':getPrescriptionForExecutor"\r\n'
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


BODY = envelope("GetPrescriptionForExecutorRequest", RECIPE, "<x:Rid>BEP0ABCDEFGH</x:Rid>")


def run(
    catalog: Catalog,
    test: Callable[[RunningGateway, Upstream, Upstream], Awaitable[None]],
    **config: object,
) -> None:
    async def main() -> None:
        async with stack(catalog, **config) as (gw, dc1, dc2):
            await test(gw, dc1, dc2)

    asyncio.run(main())


def test_pass_through_keeps_the_connection_and_the_body(catalog: Catalog) -> None:
    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        for _ in range(3):
            writer.write(soap_post(BODY))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"Garde-Data-Center: dc1" in head
            assert body == dc1.body
        writer.close()
        assert len(dc1.requests) == 3
        method, url, headers, sent = dc1.requests[0]
        assert (method, url, sent) == (b"POST", b"/Recip-e/v4/Executor", BODY)
        assert headers[b"host"] == f"127.0.0.1:{dc1.port}".encode()

    run(catalog, test)


def test_primary_going_down_fails_over_without_errors(catalog: Catalog) -> None:
    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert (await raw(gw.port, soap_post(BODY))).startswith(b"HTTP/1.1 200")
        await dc1.stop()
        for _ in range(10):
            answer = await raw(gw.port, soap_post(BODY))
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b"Garde-Data-Center: dc2" in answer

    run(catalog, test)


def test_open_proxy_requests_are_refused(catalog: Catalog) -> None:
    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        absolute = await raw(
            gw.port, b"GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n"
        )
        assert absolute.startswith(b"HTTP/1.1 400")
        assert b"open" in absolute or b"origin-form" in absolute
        connect = await raw(
            gw.port, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"
        )
        assert connect.startswith(b"HTTP/1.1 4")
        host = await raw(gw.port, soap_post(BODY, host=b"evil.example"))
        assert host.startswith(b"HTTP/1.1 421")
        assert dc1.requests == []
        assert dc2.requests == []

    run(catalog, test)


def test_header_abuse_and_oversize_bodies_are_refused(catalog: Catalog) -> None:
    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        big = await raw(gw.port, soap_post(b"x" * 2000))
        assert big.startswith(b"HTTP/1.1 413"), big[:100]
        double = await raw(gw.port, soap_post(BODY, extra=b"Content-Length: 5\r\n"))
        assert double.startswith(b"HTTP/1.1 400")
        many = b"".join(b"X-%d: y\r\n" % i for i in range(200))
        assert (await raw(gw.port, soap_post(BODY, extra=many))).startswith(b"HTTP/1.1 431")
        garbage = await raw(gw.port, b"\x16\x03\x01 hello\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")
        assert dc1.requests == []
        assert dc2.requests == []

    run(catalog, test, max_body=1000)


def test_full_validation_keeps_malformed_xml_from_every_data_center(catalog: Catalog) -> None:
    """With ``xml_validation: full``, the fast path too (a retry-safe read identified by
    SOAPAction, which it serves without needing the body) refuses XML that is well shaped
    outside and malformed inside, and still serves good requests."""
    inside = envelope("GetPrescriptionForExecutorRequest", RECIPE, "<x:Rid>BEP0</Rid></x:Rid>")

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        answer = await raw(gw.port, soap_post(inside))
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"malformed XML" in answer
        assert (await raw(gw.port, soap_post(BODY))).startswith(b"HTTP/1.1 200")
        assert len(dc1.requests) == 1
        assert dc2.requests == []

    run(catalog, test, xml_validation="full")


def test_admin_endpoints_need_the_bearer_token(catalog: Catalog) -> None:
    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        denied = await raw(gw.port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert denied.startswith(b"HTTP/1.1 401")
        auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        await raw(gw.port, soap_post(BODY))
        status = await raw(
            gw.port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + b"\r\n"
        )
        assert status.startswith(b"HTTP/1.1 200")
        data = json.loads(status.split(b"\r\n\r\n", 1)[1])
        executor = data["services"]["recipe-executor"]
        assert executor["mode"] == "normal"
        assert executor["data_center"] == "dc1"
        assert executor["data_centers"]["dc1"]["breaker"] == "closed"
        assert executor["journal_depth"] == 0
        metrics = await raw(
            gw.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + b"\r\n"
        )
        assert (
            b'garde_gateway_requests_total{service="recipe-executor",'
            b'operation="getPrescriptionForExecutor",outcome="forwarded"} 1' in metrics
        )

    run(catalog, test)


def test_mode_changes_stream_as_server_sent_events(catalog: Catalog) -> None:
    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(
            b"GET /_garde/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"text/event-stream" in head
        await dc1.stop()
        for _ in range(6):
            await raw(gw.port, soap_post(BODY))
        text = b""
        async with asyncio.timeout(5):
            while b'"mode": "degraded"' not in text:
                text += await reader.read(4096)
        assert b'"service": "recipe-executor"' in text
        writer.close()

    run(catalog, test)


def test_an_answer_delimited_by_the_close_of_the_connection_is_whole() -> None:
    """HTTP/1.0-style upstreams end the body by closing: that is an answer, not a failure."""
    from garde.gateway.transport import Endpoint, HttpTransport

    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n")
            writer.write(b"<answer>whole</answer>")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = HttpTransport()
        try:
            response = await transport.request(
                Endpoint.parse(f"http://127.0.0.1:{port}/x"),
                b"GET",
                b"/x",
                [],
                b"",
                connect_timeout=2,
                timeout=5,
            )
        finally:
            await transport.close()
            server.close()
            await server.wait_closed()
        assert response.status == 200
        assert response.body == b"<answer>whole</answer>"

    asyncio.run(main())


def test_the_general_path_alone_serves_the_same(catalog: Catalog) -> None:
    """``fast_path: false`` sends everything through the general path: same answers."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        answer = await raw(gw.port, soap_post(BODY))
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"Garde-Data-Center: dc1" in answer
        await dc1.stop()
        answer = await raw(gw.port, soap_post(BODY))
        assert b"Garde-Data-Center: dc2" in answer

    run(catalog, test, fast_path=False)
