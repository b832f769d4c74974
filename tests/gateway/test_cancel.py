"""A cancelled caller stays cancelled, even when its connection attempt ends at that moment.

On Python 3.11, ``asyncio.wait_for`` returns the inner outcome instead of raising when the
caller is cancelled in the loop iteration that inner work ends (fixed in 3.12). The gateway's
health checks connected through it: a check cancelled at that moment kept probing forever, and
a ``--workers`` gateway whose supervisor had been killed never stopped (seen in CI).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garde.errors import ConnectFailed
from garde.gateway.handler import Gateway
from garde.gateway.health import HealthChecker
from garde.gateway.transport import Endpoint, HttpTransport
from tests.gateway.upstream import Upstream


def test_a_caller_cancelled_as_its_connection_is_made_is_cancelled_and_the_connection_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        upstream = await Upstream().start()
        loop = asyncio.get_running_loop()
        real = loop.create_connection
        made: list[asyncio.BaseTransport] = []
        caller: asyncio.Task[Any] | None = None

        async def connect_then_cancel_the_caller(*args: Any, **kwargs: Any) -> Any:
            transport, protocol = await real(*args, **kwargs)
            made.append(transport)
            assert caller is not None
            caller.cancel()  # in the very iteration the attempt ends
            return transport, protocol

        monkeypatch.setattr(loop, "create_connection", connect_then_cancel_the_caller)
        transport = HttpTransport()
        endpoint = Endpoint.parse(f"http://127.0.0.1:{upstream.port}/x")
        caller = loop.create_task(
            transport.request(endpoint, b"GET", b"/x", [], b"", connect_timeout=5, timeout=5)
        )
        with pytest.raises(asyncio.CancelledError):
            await caller
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(made) == 1
        assert made[0].is_closing()  # nobody will use it: not leaked
        assert upstream.requests == []
        await transport.close()
        await upstream.stop()

    asyncio.run(main())


def test_health_checks_stop_when_closed_as_a_check_fails(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        checker = HealthChecker(gateway.upstreams, HttpTransport(), interval=0.01, timeout=1)
        closing: list[asyncio.Task[None]] = []

        async def refuse_and_close_the_checker(*args: Any, **kwargs: Any) -> Any:
            if not closing:  # close() cancels the checks in the iteration this one fails
                closing.append(loop.create_task(checker.close()))
            raise ConnectionRefusedError

        monkeypatch.setattr(loop, "create_connection", refuse_and_close_the_checker)
        checker.start()
        async with asyncio.timeout(10):
            while not closing:
                await asyncio.sleep(0.005)
            await closing[0]  # hung for ever before: the cancelled check kept probing

    asyncio.run(main())


def test_a_connect_timeout_is_still_reported_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def never(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(3600)

        monkeypatch.setattr(loop, "create_connection", never)
        endpoint = Endpoint.parse("http://127.0.0.1:9/x")
        with pytest.raises(ConnectFailed) as failed:
            await HttpTransport().request(
                endpoint, b"GET", b"/x", [], b"", connect_timeout=0.05, timeout=1
            )
        assert failed.value.reason == "connect_timeout"

    asyncio.run(main())
