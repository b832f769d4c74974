"""The Python fast path, exercised in memory: an in-process transport that takes rendered
requests (``RawTransport``) lets tests see the fast path serve, fail over and step aside
without sockets to data centers."""

from __future__ import annotations

import asyncio

from garde.catalog import Catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from tests.gateway.doubles import EXECUTOR, RECIPE, RawFakeTransport, reset, soap_request


async def _post(port: int, request_bytes: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def _read_request() -> bytes:
    request = soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE, "<x:Rid>R1</x:Rid>")
    head = b"".join(name + b": " + value + b"\r\n" for name, value in request.headers)
    return (
        b"POST " + EXECUTOR.encode() + b" HTTP/1.1\r\n" + head
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(request.body)
        + request.body
    )  # fmt: skip


def test_a_read_is_served_by_the_fast_path_and_fails_over_on_the_general_one(
    catalog: Catalog,
) -> None:
    transport = RawFakeTransport()

    async def main() -> None:
        config = GatewayConfig(port=0, health_checks=False, fast_path="python")
        async with RunningGateway(catalog, config, None, transport=transport) as running:
            answer = await _post(running.port, _read_request())
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b"Garde-Data-Center: dc1" in answer
            assert transport.raw_calls == 1, "the fast path sent it, as rendered bytes"
            assert transport.calls[0].target.startswith(b"/")

            transport.set("dc1", reset)  # dc1 resets after the request was sent
            answer = await _post(running.port, _read_request())
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b"Garde-Data-Center: dc2" in answer, "the general path failed over"
            # The fast path's attempt, then the general path's: dc1 once more (one reset is
            # not an ejection; on a real socket it is often a stale keep-alive), then dc2.
            assert [c.dc for c in transport.calls[1:]] == ["dc1", "dc1", "dc2"]
            assert transport.raw_calls == 2, "the retry went by the general path"

    asyncio.run(main())
