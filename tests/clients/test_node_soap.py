"""The same pharmacy's day with node-soap, a SOAP stack of another ecosystem (npm): it loads
the WSDL through the gateway, reads and delivers a prescription, and keeps working when every
Recip-e executor data center is down.

node-soap is installed from ``tests/clients/node/package-lock.json`` (``make test`` does it);
in CI the test fails rather than skips when Node.js or the package is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from garde.catalog import Catalog
from garde.drill import GatewayProcess
from garde.lab import lab_in_thread
from tests.clients.kit import (
    EXECUTOR,
    a_prescription_to_deliver,
    all_down,
    gateway_files,
    receipt_state,
)
from tests.lab.labkit import PHARMACIST
from tests.polling import wait_for

pytestmark = pytest.mark.e2e
NODE_CLIENT = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    ready = found is not None and (NODE_CLIENT / "node_modules" / "soap").is_dir()
    if not ready:
        if os.environ.get("CI"):
            pytest.fail("Node.js and node-soap are needed: run `make test` (it installs them)")
        pytest.skip("Node.js or node-soap missing (`make test` installs node-soap)")
    assert found is not None
    return found


def _call(node: str, wsdl: str, operation: str, args: dict[str, str], security: str) -> Any:
    done = subprocess.run(
        [node, str(NODE_CLIENT / "call.mjs"), wsdl, operation, json.dumps(args), security],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_node_soap_pharmacy_through_the_gateway(
    belgium: Catalog, tmp_path: Path, node: str
) -> None:
    with lab_in_thread(belgium, base_port=0) as lab:
        catalog_file, config_file = gateway_files(lab, belgium, tmp_path, "response")
        gateway = GatewayProcess(catalog_file, config_file, f"sqlite:///{tmp_path / 'j.db'}")
        asyncio.run(_day(lab, gateway, node))


async def _day(lab: Any, gateway: GatewayProcess, node: str) -> None:
    port = await gateway.start()
    try:
        await asyncio.to_thread(_calls, lab, f"http://127.0.0.1:{port}", node)
    finally:
        await gateway.stop()


def _calls(lab: Any, base: str, node: str) -> None:
    rid, security = a_prescription_to_deliver(lab)
    wsdl = f"{base}{EXECUTOR}?wsdl"

    read = _call(node, wsdl, "getPrescriptionForExecutor", {"Rid": rid}, security)
    assert read["ok"], read
    assert read["address"] == f"{base}{EXECUTOR}", "the WSDL sends the software through garde"
    assert read["result"]["Status"] == "NotDelivered"

    all_down(lab, "recipe-executor")
    refused = _call(node, wsdl, "getPrescriptionForExecutor", {"Rid": rid}, security)
    assert not refused["ok"] and refused["status"] == 503
    assert "paper" in refused["faultstring"].lower(), refused  # the procedure, in plain words

    delivered = _call(
        node, wsdl, "markAsDelivered", {"Rid": rid, "ExecutorNihii": PHARMACIST}, security
    )
    assert delivered["ok"], delivered  # no error shown for a delivery that was kept
    receipt = delivered["receipt"]
    assert receipt, delivered
    assert lab.ledger.effects(effect="prescription.delivered") == []

    lab.faults.heal()
    wait_for(lambda: receipt_state(base, receipt) == "delivered", 30, "the delivery replayed")
    assert len(lab.ledger.effects(effect="prescription.delivered")) == 1
    assert lab.ledger.duplicates() == []
