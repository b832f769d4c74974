"""What the real-client tests share: the lab's catalog as a pharmacy's gateway serves it, the
gateway process, and reading a receipt as an operator would."""

from __future__ import annotations

import json
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from lxml import etree

from garde import drill, soap
from garde.catalog import Catalog
from garde.lab import kmehr
from tests.lab.labkit import PATIENT, PHARMACIST, PRESCRIBER, Client

GARDE_NS = "urn:garde:gateway:v1"
EXECUTOR = "/Recip-e/v4/Executor"


def gateway_files(
    lab: Any, catalog: Catalog, tmp: Path, answer: str, **more_settings: Any
) -> tuple[Path, Path]:
    """The lab's catalog, with a pharmacy's deliveries answered as ``answer`` says when they
    are journaled, and a gateway that notices a data center down within a second (and
    ``more_settings`` of the gateway's settings file)."""

    def deliveries_answered(data: dict[str, Any]) -> None:
        deliver = data["services"]["recipe-executor"]["operations"]["markAsDelivered"]
        deliver["continuity"]["answer"] = answer

    settings = {
        "target_group": "pharmacist",
        "health_interval": "200ms",
        "health_timeout": "500ms",
        "outlier": {"consecutive_failures": 2, "base_ejection": "1s"},
        **more_settings,
    }
    return drill.gateway_files(
        tmp, catalog, settings, endpoints=lab.endpoints, adjust=deliveries_answered
    )


def receipt_state(base: str, receipt: str) -> str:
    url = f"{base}/_garde/receipts/{receipt}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(json.loads(answer.read())["state"])


def all_down(lab: Any, service: str) -> None:
    for dc in lab.endpoints[service]:
        lab.faults.set(service, dc, "down")


def a_prescription_to_deliver(lab: Any) -> tuple[str, str]:
    """A prescription a GP made today at the lab (its RID), and the pharmacist's WS-Security
    header (a token from the lab's STS) that a client stack sends to read and deliver it."""
    lab_client = Client(lab)
    created = lab_client.call(
        "recipe-prescriber",
        "createPrescription",
        {
            "PrescriberNihii": PRESCRIBER,
            "PatientId": PATIENT,
            "Prescription": kmehr.prescription(PRESCRIBER, PATIENT, when=date.today()),
        },
        identity=PRESCRIBER,
    )
    rid = created.text("Rid")
    assert rid, created.body
    security = etree.tostring(soap.security_header(lab_client.token(PHARMACIST))).decode()
    return rid, security
