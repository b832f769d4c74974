"""The same pharmacy's day in Java with JAX-WS (Metro, the reference implementation, from
Debian's ``libjaxws-java``), a SOAP stack of a third ecosystem: ``wsimport`` generates its
classes from the WSDL the gateway serves, and the generated port reads and delivers a
prescription, and keeps working when every Recip-e executor data center is down.

Needs a JDK and Debian's ``jaxws`` and ``libjaxws-java`` (``.ci/run`` installs them); in CI
the test fails rather than skips when they are missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
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
CLIENT = Path(__file__).parent / "jaxws" / "Pharmacy.java"
RUNTIME = Path("/usr/share/java/jaxws-rt.jar")  # its manifest names the rest of Metro
TOOLS = ("wsimport", "javac", "java")


@pytest.fixture(scope="module")
def jdk() -> dict[str, str]:
    found = {tool: shutil.which(tool) for tool in TOOLS}
    if not RUNTIME.is_file() or None in found.values():
        missing = [t for t, p in found.items() if p is None] + (
            [] if RUNTIME.is_file() else [str(RUNTIME)]
        )
        message = f"JAX-WS needs a JDK and Debian's jaxws, libjaxws-java: missing {missing}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs them)")
        pytest.skip(message + " (apt-get install default-jdk-headless jaxws libjaxws-java)")
    return {tool: str(path) for tool, path in found.items()}


def _run(args: list[str], timeout: float) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"


def _build(jdk: dict[str, str], wsdl: str, work: Path) -> Path:
    """The pharmacy's client, as a Java developer builds it: classes generated from the WSDL
    (and compiled) by wsimport, then the software's own class."""
    classes = work / "classes"
    classes.mkdir()
    # Minutes, not seconds: two JVMs on a loaded two-core machine.
    _run([jdk["wsimport"], "-quiet", "-p", "garde.generated", "-d", str(classes), wsdl], 300)
    _run([jdk["javac"], "-nowarn", "-cp", f"{classes}{os.pathsep}{RUNTIME}", "-d",
          str(classes), str(CLIENT)], 300)  # fmt: skip
    return classes


class Pharmacy:
    """The Java software, running: one call per line in, one JSON answer per line out."""

    def __init__(self, jdk: dict[str, str], classes: Path, wsdl: str, security: str) -> None:
        classpath = f"{classes}{os.pathsep}{RUNTIME}"
        self.process = subprocess.Popen(
            [jdk["java"], "-cp", classpath, "Pharmacy", wsdl, PHARMACIST, security],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.started = self._answer()

    def _answer(self) -> Any:
        assert self.process.stdout is not None
        with ThreadPoolExecutor(1) as pool:  # a bounded wait for the line
            line = pool.submit(self.process.stdout.readline).result(timeout=120)
        assert line, f"the Java client stopped (exit {self.process.poll()})"
        return json.loads(line)

    def call(self, operation: str, rid: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{operation} {rid}\n")
        self.process.stdin.flush()
        return self._answer()

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()


def test_a_jaxws_pharmacy_through_the_gateway(
    belgium: Catalog, tmp_path: Path, jdk: dict[str, str]
) -> None:
    with lab_in_thread(belgium, base_port=0) as lab:
        # JAX-WS reads a SOAP Fault only from an HTTP 500 (WS-I Basic Profile R1126): the
        # setting a Java pharmacy's gateway is given (docs/gateway-contract.md).
        catalog_file, config_file = gateway_files(
            lab, belgium, tmp_path, "response", soap_fault_status=500
        )
        gateway = GatewayProcess(catalog_file, config_file, f"sqlite:///{tmp_path / 'j.db'}")
        asyncio.run(_day(lab, gateway, jdk, tmp_path))


async def _day(lab: Any, gateway: GatewayProcess, jdk: dict[str, str], work: Path) -> None:
    port = await gateway.start()
    try:
        await asyncio.to_thread(_calls, lab, f"http://127.0.0.1:{port}", jdk, work)
    finally:
        await gateway.stop()


def _calls(lab: Any, base: str, jdk: dict[str, str], work: Path) -> None:
    rid, security = a_prescription_to_deliver(lab)
    wsdl = f"{base}{EXECUTOR}?wsdl"
    pharmacy = Pharmacy(jdk, _build(jdk, wsdl, work), wsdl, security)
    try:
        _day_at_the_counter(lab, base, rid, pharmacy)
    finally:
        pharmacy.stop()


def _day_at_the_counter(lab: Any, base: str, rid: str, pharmacy: Pharmacy) -> None:
    assert pharmacy.started["address"] == f"{base}{EXECUTOR}", "the WSDL sends it through garde"
    read = pharmacy.call("getPrescriptionForExecutor", rid)
    assert read["ok"], read
    assert read["status"] == "NotDelivered"

    all_down(lab, "recipe-executor")
    refused = pharmacy.call("getPrescriptionForExecutor", rid)
    # With soap_fault_status: 500 the generated port raises a SOAPFaultException whose
    # faultstring is the procedure, in plain words, for the software to show the pharmacist.
    assert not refused["ok"] and refused["faultstring"], refused
    assert "paper" in refused["faultstring"].lower(), refused

    delivered = pharmacy.call("markAsDelivered", rid)
    assert delivered["ok"], delivered  # no error shown for a delivery that was kept
    receipt = delivered["receipt"]
    assert receipt, delivered
    assert lab.ledger.effects(effect="prescription.delivered") == []

    lab.faults.heal()
    wait_for(lambda: receipt_state(base, receipt) == "delivered", 30, "the delivery replayed")
    assert len(lab.ledger.effects(effect="prescription.delivered")) == 1
    assert lab.ledger.duplicates() == []
