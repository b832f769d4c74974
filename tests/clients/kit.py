"""What the real-client tests share: the lab's catalog as a pharmacy's gateway serves it, the
gateway process, and reading a receipt as an operator would."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from garde.catalog import Catalog

GARDE_NS = "urn:garde:gateway:v1"
EXECUTOR = "/Recip-e/v4/Executor"


def gateway_files(lab: Any, catalog: Catalog, tmp: Path, answer: str) -> tuple[Path, Path]:
    """The lab's catalog, with a pharmacy's deliveries answered as ``answer`` says when they
    are journaled, and a gateway that notices a data center down within a second."""
    data = catalog.with_endpoints(lab.endpoints).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    deliver = data["services"]["recipe-executor"]["operations"]["markAsDelivered"]
    deliver["continuity"]["answer"] = answer
    catalog_file = tmp / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    config_file = tmp / "gateway.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "target_group": "pharmacist",
                "health_interval": "200ms",
                "health_timeout": "500ms",
                "outlier": {"consecutive_failures": 2, "base_ejection": "1s"},
            }
        ),
        encoding="utf-8",
    )
    return catalog_file, config_file


def receipt_state(base: str, receipt: str) -> str:
    url = f"{base}/_garde/receipts/{receipt}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(json.loads(answer.read())["state"])


def all_down(lab: Any, service: str) -> None:
    for dc in lab.endpoints[service]:
        lab.faults.set(service, dc, "down")
