"""The gateway's own CPU per pass-through request, with no sockets and no other process.

    python -m bench.gateway_callbacks [--requests N]

Feeds the server's and the upstream connection's protocol callbacks directly (the same
bytes wrk and nginx send in ``bench.gateway``) and counts CPU time per request for the
gateway's fast path and for the bare forwarder (``bench/_bare_proxy.py``). No system calls
and no competing process: the steadiest way to compare two versions of the hot path on a
shared machine. Under real load the same interpreter work costs roughly twice as much.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import uvloop

from bench._bare_proxy import _Client, _Upstream
from bench.gateway import ACTION, PATH, SOAP_ANSWER, SOAP_REQUEST
from garde.catalog import load_catalog
from garde.gateway.app import GatewayServer, _ClientConnection
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.transport import HttpTransport, _Connection

REQUEST = (
    f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/xml; charset=utf-8\r\n"
    f"SOAPAction: {ACTION}\r\nContent-Length: {len(SOAP_REQUEST)}\r\n\r\n{SOAP_REQUEST}"
).encode()
ANSWER = (
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 02:50:00 GMT\r\n"
    f"Content-Type: text/xml; charset=utf-8\r\nContent-Length: {len(SOAP_ANSWER)}\r\n"
    f"Connection: keep-alive\r\n\r\n{SOAP_ANSWER}"
).encode()


class _Sink:
    """A transport that keeps what is written."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _gateway() -> tuple[Callable[[], None], _Sink]:
    endpoints = {f"dc{i}": f"http://127.0.0.1:9000{PATH}" for i in (1, 2, 3)}
    catalog = load_catalog("belgium", env={}).with_endpoints({"recipe-executor": endpoints})
    transport = HttpTransport()
    gateway = Gateway(catalog, transport, GatewayConfig(), None)
    client = _ClientConnection(GatewayServer(gateway))
    to_client = _Sink()
    client.connection_made(to_client)  # type: ignore[arg-type]
    pool = transport._pool(gateway.upstreams["recipe-executor"].links[0].endpoint)
    upstream = _Connection(pool)
    upstream.connection_made(_Sink())  # type: ignore[arg-type]
    pool.release(upstream)

    def once() -> None:
        client.data_received(REQUEST)
        upstream.data_received(ANSWER)

    return once, to_client


def _bare() -> tuple[Callable[[], None], _Sink]:
    client = _Client(0)
    to_client = _Sink()
    client.transport = to_client  # type: ignore[assignment]
    upstream = _Upstream(client)
    upstream.transport = _Sink()  # type: ignore[assignment]
    client.upstream = upstream

    def once() -> None:
        client.data_received(REQUEST)
        upstream.data_received(ANSWER)

    return once, to_client


async def measure(requests: int) -> dict[str, float]:
    results = {}
    for name, make in (("bare", _bare), ("gateway", _gateway)):
        once, sink = make()
        for _ in range(2000):  # warm up: caches, pools, the route look-up
            once()
        sink.out.clear()
        started = time.process_time()
        for _ in range(requests):
            once()
        results[name] = (time.process_time() - started) / requests * 1e6
        if len(sink.out) != requests or not sink.out[-1].startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{name}: the replies are not what they should be")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway_callbacks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args(argv)
    results = uvloop.run(measure(args.requests))
    for name, micros in results.items():
        print(f"{name:8} {micros:6.2f} us CPU per request (callbacks only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
