"""The native data plane to data centers over TLS, verified as Python's default context does.

The test's certificate authority is made trusted the way an operator would: ``SSL_CERT_FILE``,
which OpenSSL reads for Python's ``ssl.create_default_context()`` and for the plane alike.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from garde.catalog import Catalog
from garde.gateway import native
from garde.gateway.runner import RunningGateway
from tests.certificates import self_signed
from tests.gateway.test_native import connection, counters, exchange, gateway_for
from tests.gateway.test_server import BODY, soap_post
from tests.gateway.upstream import Upstream

pytestmark = pytest.mark.skipif(
    not native.available() or not getattr(native._plane, "TLS", 0),
    reason="the native data plane is not built with TLS here (needs OpenSSL's headers)",
)


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1: (certificate, key) files."""
    return self_signed(folder, names=("localhost",), ips=("127.0.0.1",))


class TlsUpstream(Upstream):
    """The loopback data center behind TLS (1.3: it sends session tickets after the
    handshake, which arrive on a connection the gateway keeps idle), counting connections."""

    def __init__(self, context: ssl.SSLContext, **fields: Any) -> None:
        super().__init__(**fields)
        self.context = context
        self.connections = 0

    async def start(self) -> TlsUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await super()._serve(reader, writer)


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert, key = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when each side makes its context
    return cert, key


@asynccontextmanager
async def tls_stack(
    catalog: Catalog, key_pair: tuple[Path, Path], host: str, fast_path: str
) -> AsyncIterator[tuple[RunningGateway, TlsUpstream]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*key_pair)
    dc1 = await TlsUpstream(context).start()
    endpoints = {"recipe-executor": {"dc1": f"https://{host}:{dc1.port}/Recip-e/v4/Executor"}}
    try:
        async with gateway_for(catalog, endpoints, fast_path=fast_path) as running:
            yield running, dc1
    finally:
        await dc1.stop()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_https_data_centers_are_served_natively_as_python_serves_them(
    catalog: Catalog, certificate: tuple[Path, Path], host: str
) -> None:
    """By name (SNI and the name checked) or by address (the address checked): the same
    answers as the Python fast path, the plane serving them, one TLS connection reused."""

    async def serve(fast_path: str) -> tuple[list[bytes], int, int]:
        async with tls_stack(catalog, certificate, host, fast_path) as (gw, dc1):
            answers = []
            async with connection(gw.port) as (reader, writer):
                for _ in range(3):
                    head, body = await exchange(reader, writer, soap_post(BODY))
                    answers.append(head + body)
                    await asyncio.sleep(0.05)  # session tickets arrive on the idle connection
            served = counters(gw)["served"] if gw.server.native is not None else 0
            return answers, served, dc1.connections

    native_answers, served, native_connections = asyncio.run(serve("native"))
    python_answers, _, _ = asyncio.run(serve("python"))
    assert native_answers == python_answers
    assert all(a.startswith(b"HTTP/1.1 200") for a in native_answers)
    assert served == 3
    assert native_connections == 1


def test_a_data_center_whose_certificate_is_not_trusted_is_not_spoken_to(
    catalog: Catalog,
    certificate: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another authority trusted: the handshake fails in the plane, which counts a connect
    error and hands the request to Python, which fails the same way: nothing reaches the
    data center, and the caller gets the same answer as from the Python path."""
    folder = tmp_path / "other"
    folder.mkdir()
    other, _ = _certificate(folder)
    monkeypatch.setenv("SSL_CERT_FILE", str(other))

    async def serve(fast_path: str) -> tuple[bytes, int, dict[tuple[str, str, str], int]]:
        async with tls_stack(catalog, certificate, "localhost", fast_path) as (gw, dc1):
            async with connection(gw.port) as (reader, writer):
                head, _ = await exchange(reader, writer, soap_post(BODY))
            return head.split(b"\r\n", 1)[0], len(dc1.requests), dict(gw.gateway.metrics.attempts)

    native_status, native_reached, attempts = asyncio.run(serve("native"))
    python_status, python_reached, _ = asyncio.run(serve("python"))
    assert native_status == python_status
    assert native_status != b"HTTP/1.1 200 OK"
    assert native_reached == python_reached == 0
    assert attempts.get(("recipe-executor", "dc1", "connect_error"), 0) >= 1
