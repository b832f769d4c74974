"""The gateway leaves no reference cycles behind a connection, failed or closed.

Cycles are freed only by the garbage collector, whose collections stall the event loop; while
a data center is down its health checks fail every interval, and client software that does
not keep connections alive opens one per request. Both must leave nothing for it to find.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress

from garde.catalog import Catalog
from garde.errors import AttemptFailed
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from garde.gateway.transport import Endpoint, HttpTransport
from tests.gateway.test_cli_process import call, request
from tests.gateway.upstream import Upstream


@contextmanager
def cyclic_garbage() -> Iterator[Counter[str]]:
    """Counts, by type, what only the collector could free of what the block made."""
    found: Counter[str] = Counter()
    gc.collect()
    gc.disable()
    try:
        yield found
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.update(_name(o) for o in gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


def _name(thing: object) -> str:
    """``module.Type``; a parser is named after the protocol it calls back."""
    kind = type(thing)
    if "Parser" in kind.__name__:
        for ref in gc.get_referents(thing):
            owner = getattr(ref, "__self__", None)
            if owner is not None:
                return f"{kind.__name__} of {type(owner).__module__}.{type(owner).__name__}"
    return f"{kind.__module__}.{kind.__qualname__}"


async def repeat(times: int, step: Callable[[], Awaitable[None]]) -> Counter[str]:
    for _ in range(5):
        await step()  # caches and pools warmed outside the measure
    with cyclic_garbage() as found:
        for _ in range(times):
            await step()
    return found


def test_a_refused_connection_leaves_no_cycle() -> None:
    async def main() -> Counter[str]:
        transport = HttpTransport()
        nowhere = Endpoint.parse("http://127.0.0.1:9/Recip-e/v4/Executor")  # discard: closed

        async def attempt() -> None:
            with suppress(AttemptFailed):
                await transport.request(
                    nowhere, b"GET", b"/", [], b"", connect_timeout=1.0, timeout=1.0
                )

        return await repeat(20, attempt)

    assert asyncio.run(main()) == Counter()


def test_connections_opened_and_closed_leave_no_cycle(catalog: Catalog) -> None:
    """A caller that opens a connection per request: client and upstream sides both close."""

    async def main() -> Counter[str]:
        upstream = await Upstream().start()
        endpoints = {
            "recipe-executor": {"dc1": f"http://127.0.0.1:{upstream.port}/Recip-e/v4/Executor"}
        }
        config = GatewayConfig(port=0, health_checks=False)
        async with RunningGateway(catalog.with_endpoints(endpoints), config) as running:

            async def one_call() -> None:
                answer = await call(running.port, request(running.port))
                assert answer.startswith(b"HTTP/1.1 200")
                # The upstream side closes too: its idle connections are dropped.
                await running.gateway.transport.close()  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)  # connection_lost callbacks run

            found = await repeat(20, one_call)
        await upstream.stop()
        return found

    found = asyncio.run(main())
    # The test's own upstream and client (asyncio streams) may leave theirs: not counted.
    ours = {name: n for name, n in found.items() if "garde." in name}
    assert ours == {}, found


def test_a_request_abandoned_mid_exchange_closes_its_connection() -> None:
    """A stopping gateway cancels its health checks and requests in flight: their
    connections still owe an answer, so they are closed, not left open (nor in the pool)."""

    async def main() -> bytes:
        accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()
        writers: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await accepted.put(reader)  # and never answers

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = HttpTransport()
        endpoint = Endpoint.parse(f"http://127.0.0.1:{port}/Recip-e/v4/Executor")
        asking = asyncio.ensure_future(
            transport.request(endpoint, b"GET", b"/", [], b"", connect_timeout=1.0, timeout=30.0)
        )
        reader = await asyncio.wait_for(accepted.get(), 5)
        await reader.readuntil(b"\r\n\r\n")  # the request arrived
        asking.cancel()
        with suppress(asyncio.CancelledError):
            await asking
        rest = await asyncio.wait_for(reader.read(), 5)  # b"" once the gateway has closed it
        await transport.close()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
        return rest

    assert asyncio.run(main()) == b""
