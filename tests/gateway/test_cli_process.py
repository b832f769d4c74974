"""`garde gateway` as a real process: readable startup, pass-through, failover, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import yaml

from garde.catalog import Catalog
from tests.gateway.doubles import RECIPE, envelope
from tests.gateway.upstream import Upstream

pytestmark = pytest.mark.e2e

BODY = envelope("GetPrescriptionForExecutorRequest", RECIPE, "<x:Rid>BEP0ABCDEFGH</x:Rid>")


def request(port: int) -> bytes:
    return (
        b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
        b'SOAPAction: "' + RECIPE.encode() + b':getPrescriptionForExecutor"\r\n'
        b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
    )


async def call(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        return head + await reader.readexactly(length)
    finally:
        writer.close()


def test_gateway_process_serves_fails_over_and_stops(catalog: Catalog, tmp_path: Path) -> None:
    async def main() -> None:
        dc1, dc2 = await Upstream().start(), await Upstream().start()
        endpoints = {
            "recipe-executor": {
                "dc1": f"http://127.0.0.1:{dc1.port}/Recip-e/v4/Executor",
                "dc2": f"http://127.0.0.1:{dc2.port}/Recip-e/v4/Executor",
            }
        }
        data = catalog.with_endpoints(endpoints).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        catalog_file = tmp_path / "catalog.yaml"
        catalog_file.write_text(yaml.safe_dump(data))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "garde", "gateway", "--catalog", str(catalog_file),
            "--journal", "none", "--port", "0", "--target-group", "pharmacist",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        assert process.stdout is not None
        try:
            banner = b""
            async with asyncio.timeout(30):
                while b"Recip-e/v4/Executor" not in banner:
                    line = await process.stdout.readline()
                    assert line, f"gateway exited: {banner.decode()}"
                    banner += line
            found = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", banner)
            assert found, banner
            port = int(found.group(1))
            assert b"recipe-executor" in banner
            assert f"dc2 http://127.0.0.1:{dc2.port}".encode() in banner
            first = await call(port, request(port))
            assert first.startswith(b"HTTP/1.1 200")
            assert b"Garde-Data-Center: dc1" in first
            await dc1.stop()
            second = await call(port, request(port))
            assert second.startswith(b"HTTP/1.1 200"), second
            assert b"Garde-Data-Center: dc2" in second
            status = await call(port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            services = json.loads(status.split(b"\r\n\r\n", 1)[1])["services"]
            assert services["recipe-executor"]["data_centers"]["dc1"]["last_error"]
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 15)
            await dc2.stop()
        assert code == 0

    asyncio.run(main())
