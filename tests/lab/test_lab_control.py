"""The control API: faults and the ledger over HTTP, described by OpenAPI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from garde.lab import Lab, kmehr
from tests.lab.labkit import PATIENT, PRESCRIBER, Client


def _request(lab: Lab, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(lab.control_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type")
            return response.status, raw if "ndjson" in kind else json.loads(raw)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_status_lists_every_service_and_dc(lab: Lab) -> None:
    status, entries = _request(lab, "GET", "/status")
    assert status == 200
    pairs = {(e["service"], e["dc"]) for e in entries}
    expected = {(s, dc) for s, svc in lab.catalog.services.items() for dc in svc.endpoints}
    assert pairs == expected
    assert all(set(e) == {"service", "dc", "url", "faults", "capacity"} for e in entries)


def test_fault_set_and_heal_over_http(lab: Lab) -> None:
    status, fault = _request(
        lab,
        "POST",
        "/faults",
        {"service": "sts", "dc": "dc1", "kind": "errors", "rate": 0.5, "for": "30s"},
    )
    assert status == 201
    assert fault == {
        "service": "sts",
        "dc": "dc1",
        "kind": "errors",
        "rate": 0.5,
        "status": "503",
        "for": "30s",
    }
    _, faulty = _request(lab, "GET", "/faults")
    assert [(e["service"], e["dc"]) for e in faulty] == [("sts", "dc1")]
    status, healed = _request(lab, "DELETE", "/faults/sts/dc1")
    assert (status, healed) == (200, {"healed": 1})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"service": "sts", "dc": "dc1", "kind": "nope"}, "unknown fault kind"),
        ({"service": "sts", "kind": "down"}, "missing dc"),
        ({"service": "sts", "dc": "dc9", "kind": "down"}, "no data center"),
        ({"service": "sts", "dc": "dc1", "kind": "down", "latency": "1s"}, "does not take"),
    ],
)
def test_bad_fault_requests_get_400_saying_what_to_fix(
    lab: Lab, body: dict[str, Any], message: str
) -> None:
    status, answer = _request(lab, "POST", "/faults", body)
    assert status == 400
    assert message in answer["error"]


def test_ledger_queries_duplicates_and_export(lab: Lab, client: Client) -> None:
    today = lab.context.today()
    fields = {
        "PrescriberNihii": PRESCRIBER,
        "PatientId": PATIENT,
        "Prescription": kmehr.prescription(PRESCRIBER, PATIENT, when=today),
    }
    client.call("recipe-prescriber", "createPrescription", fields, key="k-1")
    client.call("recipe-prescriber", "createPrescription", fields, key="k-2")
    _, by_key = _request(lab, "GET", "/ledger?key=k-1")
    assert [e["idempotency_key"] for e in by_key["effects"]] == ["k-1"]
    _, duplicates = _request(lab, "GET", "/ledger/duplicates")
    assert duplicates["duplicates"][0]["count"] == 2
    status, exported = _request(lab, "GET", "/ledger/export")
    lines = [json.loads(line) for line in exported.decode().splitlines()]
    assert status == 200
    assert [line["idempotency_key"] for line in lines] == ["k-1", "k-2"]


def test_openapi_describes_every_route(lab: Lab) -> None:
    status, spec = _request(lab, "GET", "/openapi.json")
    assert status == 200
    assert spec["openapi"].startswith("3.")
    for path in (
        "/status",
        "/faults",
        "/faults/{service}/{dc}",
        "/ledger",
        "/ledger/duplicates",
        "/ledger/export",
    ):
        assert path in spec["paths"]
    kinds = spec["paths"]["/faults"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(kinds["properties"]["kind"]["enum"]) == {
        "down",
        "blackhole",
        "latency",
        "errors",
        "reset",
        "slow",
        "flap",
    }


def test_unknown_route_is_404_with_a_hint(lab: Lab) -> None:
    status, answer = _request(lab, "GET", "/nope")
    assert status == 404
    assert "openapi.json" in answer["error"]
