"""End to end: the lab (real sockets, fault proxies) and `garde gateway` as a real process.

A pharmacy's day through an outage of Recip-e: a prescription is made, read through a
failover, then every executor data center goes down: the read is refused with the paper-proof
procedure, the delivery is journaled with a receipt, insurability is answered from the last
good answer; the chain comes back and the delivery reaches Recip-e exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import yaml
from lxml import etree

from garde.catalog import Catalog
from garde.lab import kmehr, lab_in_thread
from tests.lab.labkit import PHARMACIST, PRESCRIBER, niss

pytestmark = pytest.mark.e2e

RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"
GI = "urn:be:fgov:ehealth:genericinsurability:protocol:v1"
GARDE = "{urn:garde:gateway:v1}"


def soap(element: str, namespace: str, fields: dict[str, str]) -> bytes:
    inner = "".join(f"<ns:{k}>{v}</ns:{k}>" for k, v in fields.items())
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<ns:{element} xmlns:ns="{namespace}">{inner}</ns:{element}></soap:Body></soap:Envelope>'
    ).encode()


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    async def call(
        self, path: str, action: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [
            f"POST {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: text/xml; charset=utf-8",
            f'SOAPAction: "{action}"',
            "Prefer: respond-async",  # garde-aware: reads the receipt of a journaled write
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        return await self.raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return await self.raw(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    async def raw(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            return int(lines[0].split()[1]), headers, body
        finally:
            writer.close()


def text(body: bytes, local: str) -> str | None:
    root = etree.fromstring(body)
    for node in root.iter():
        if isinstance(node.tag, str) and etree.QName(node).localname == local:
            return node.text
    return None


def test_a_pharmacy_works_through_a_recipe_outage(catalog: Catalog, tmp_path: Path) -> None:
    with lab_in_thread(catalog, base_port=0) as lab:
        wired = catalog.with_endpoints(lab.endpoints)
        catalog_file = tmp_path / "catalog.yaml"
        catalog_file.write_text(
            yaml.safe_dump(wired.model_dump(mode="json", by_alias=True, exclude_none=True))
        )
        config_file = tmp_path / "gateway.yaml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    "identities": {
                        PRESCRIBER: {"primary": {"type": "eid", "secret": "1234"}},
                        PHARMACIST: {"primary": {"type": "eid", "secret": "1234"}},
                    },
                    "health_interval": "500ms",
                    "health_timeout": "500ms",
                    "outlier": {"consecutive_failures": 2, "base_ejection": "1s"},
                }
            )
        )
        asyncio.run(_scenario(lab, catalog_file, config_file, tmp_path))


async def _scenario(lab: object, catalog_file: Path, config_file: Path, tmp: Path) -> None:
    faults = lab.faults  # type: ignore[attr-defined]
    ledger = lab.ledger  # type: ignore[attr-defined]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "garde", "gateway", "--catalog", str(catalog_file),
        "--config", str(config_file), "--journal", f"sqlite:///{tmp / 'journal.db'}",
        "--journal-no-encryption", "--target-group", "pharmacist", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert process.stdout is not None
    try:
        banner = b""
        async with asyncio.timeout(30):
            while not (found := re.search(rb"listening on http://127\.0\.0\.1:(\d+)", banner)):
                line = await process.stdout.readline()
                assert line, banner.decode()
                banner += line
        gateway = Client(int(found.group(1)))
        as_gp = {"Garde-Identity": PRESCRIBER}
        as_pharmacist = {"Garde-Identity": PHARMACIST}
        patient = niss(date(1985, 7, 30))

        # A GP prescribes through the gateway (the gateway logs in to the STS for them).
        prescription = base64.b64encode(
            kmehr.prescription(PRESCRIBER, patient, when=date.today())
        ).decode()
        status, _, body = await gateway.call(
            "/Recip-e/v4/Prescriber",
            f"{RECIPE}:createPrescription",
            soap(
                "CreatePrescriptionRequest",
                RECIPE,
                {
                    "PrescriberNihii": PRESCRIBER,
                    "PatientId": patient,
                    "PrescriptionType": "P1",
                    "ExpirationDate": date.today().replace(year=date.today().year + 1).isoformat(),
                    "Prescription": prescription,
                },
            ),
            as_gp,
        )
        assert status == 200, body
        rid = text(body, "Rid")
        assert rid

        # Insurability is read once while all is well (the gateway keeps the answer).
        insurability = soap(
            "GetInsurabilityRequest", GI, {"Ssin": patient, "RequestDate": date.today().isoformat()}
        )
        status, headers, fresh = await gateway.call(
            "/GenericInsurability/v1", f"{GI}:GetInsurability", insurability, as_pharmacist
        )
        assert status == 200, fresh

        # dc1 of Recip-e refuses connections: the pharmacist does not notice.
        read = soap("GetPrescriptionForExecutorRequest", RECIPE, {"Rid": rid})
        faults.set("recipe-executor", "dc1", "down")
        for _ in range(5):
            status, headers, body = await gateway.call(
                "/Recip-e/v4/Executor", f"{RECIPE}:getPrescriptionForExecutor", read, as_pharmacist
            )
            assert status == 200, body
            assert headers["garde-data-center"] in ("dc2", "dc3")

        # Recip-e is down everywhere, and so is insurability.
        for dc in ("dc2", "dc3"):
            faults.set("recipe-executor", dc, "down")
        for dc in ("dc1", "dc2", "dc3"):
            faults.set("insurability", dc, "down")
        status, headers, body = await gateway.call(
            "/Recip-e/v4/Executor", f"{RECIPE}:getPrescriptionForExecutor", read,
            {**as_pharmacist, "Accept-Language": "nl-BE"},
        )  # fmt: skip
        assert status == 503
        assert "retry-after" in headers
        fault = etree.fromstring(body)
        procedure = fault.find(f".//{GARDE}Procedure")
        assert procedure is not None
        assert procedure.get("id") == "paper-proof-dispense"
        assert "papieren bewijs" in (procedure.text or "")

        deliver = soap("MarkAsDeliveredRequest", RECIPE, {"Rid": rid, "ExecutorNihii": PHARMACIST})
        status, headers, body = await gateway.call(
            "/Recip-e/v4/Executor", f"{RECIPE}:markAsDelivered", deliver,
            {**as_pharmacist, "Idempotency-Key": "e2e-deliver-1"},
        )  # fmt: skip
        assert status == 202, body
        receipt = headers["garde-receipt"]
        assert headers["location"] == f"/_garde/receipts/{receipt}"

        status, headers, stale = await gateway.call(
            "/GenericInsurability/v1", f"{GI}:GetInsurability", insurability, as_pharmacist
        )
        assert status == 200
        assert "garde-stale" in headers
        assert text(stale, "Insurable") == text(fresh, "Insurable")

        status, _, body = await gateway.get("/_garde/status")
        modes = json.loads(body)["services"]
        assert modes["recipe-executor"]["mode"] in ("degraded", "offline")
        assert modes["recipe-executor"]["journal_depth"] == 1

        # The chain comes back: the journaled delivery reaches Recip-e, once.
        faults.heal()
        deadline = time.monotonic() + 45
        state = ""
        while time.monotonic() < deadline:
            _, _, body = await gateway.get(f"/_garde/receipts/{receipt}")
            state = json.loads(body)["state"]
            if state == "delivered":
                break
            await asyncio.sleep(0.2)
        assert state == "delivered"
        deliveries = ledger.effects(key="e2e-deliver-1")
        assert [e.effect for e in deliveries] == ["prescription.delivered"]
        assert ledger.duplicates() == []
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 0
