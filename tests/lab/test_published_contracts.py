"""The lab's WSDLs say what the published WSDLs say: operations, namespaces, SOAPActions.

Each service's operation list is derived from the lab's own ``?wsdl`` (as a vendor's SOAP
stack reads it) and compared with ``contracts/published.yaml``, the facts read from the
chain's public WSDLs. A new operation, a renamed element or a changed SOAPAction in either
shows up here instead of drifting silently.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from garde import soap
from garde.catalog import Catalog, load_catalog
from garde.lab import Lab

PUBLISHED = Path(__file__).parent / "contracts" / "published.yaml"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"

Operations = dict[str, dict[str, str | None]]


def published() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(PUBLISHED.read_text())["services"]
    return services


def _get(url: str) -> bytes:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", parts.path + "?wsdl")
        response = conn.getresponse()
        assert response.status == 200, url
        return response.read()
    finally:
        conn.close()


def read_wsdl(data: bytes) -> tuple[str, Operations]:
    """The target namespace and, per binding operation, its SOAPAction and body elements."""
    root = soap.parse_xml(data)

    def clark(element: Any, prefixed: str) -> str:
        prefix, _, local = prefixed.rpartition(":")
        return "{" + element.nsmap[prefix or None] + "}" + local

    messages = {
        m.get("name"): clark(m, m.find(f"{{{WSDL}}}part").get("element"))
        for m in root.iter(f"{{{WSDL}}}message")
    }
    port_type: dict[str, tuple[str, str]] = {}
    for operation in root.iter(f"{{{WSDL}}}portType"):
        for op in operation.findall(f"{{{WSDL}}}operation"):
            names = [
                op.find(f"{{{WSDL}}}{d}").get("message").rpartition(":")[2]
                for d in ("input", "output")
            ]
            port_type[op.get("name")] = (messages[names[0]], messages[names[1]])
    operations: Operations = {}
    for op in root.find(f"{{{WSDL}}}binding").findall(f"{{{WSDL}}}operation"):
        action = op.find(f"{{{WSDL_SOAP}}}operation").get("soapAction")
        request, response = port_type[op.get("name")]
        operations[op.get("name")] = {
            "soap_action": action or None,
            "request": request,
            "response": response,
        }
    return str(root.get("targetNamespace")), operations


def test_the_fixture_names_every_catalog_service_and_its_source(belgium: Catalog) -> None:
    facts = published()
    assert set(facts) == set(belgium.services)
    for sid, fact in facts.items():
        assert {"repo", "path", "commit"} <= set(fact["source"]), sid
        assert fact["operations"], sid


def test_the_lab_wsdls_match_the_published_contracts(lab: Lab) -> None:
    deviations = []
    for sid, fact in published().items():
        namespace, operations = read_wsdl(_get(lab.endpoints[sid]["dc1"]))
        matches = namespace == fact["target_namespace"] and operations == fact["operations"]
        if "known_deviation" in fact:
            assert not matches, f"{sid} now matches its contract: remove its known_deviation"
            deviations.append(sid)
            continue
        assert namespace == fact["target_namespace"], sid
        assert sorted(operations) == sorted(fact["operations"]), sid
        for name, expected in fact["operations"].items():
            assert operations[name] == expected, f"{sid}.{name}"
    assert deviations == ["sts"]


def test_every_published_operation_is_in_the_catalog(lab: Lab) -> None:
    """The catalog lists each published operation once (under its own id)."""
    for sid, fact in published().items():
        if "known_deviation" in fact:
            continue
        contracts = lab.simulators[sid].contracts.values()
        names = {c.id: c.published for c in contracts}
        catalog_names = sorted(names[o] for o in lab.catalog.services[sid].operations)
        assert catalog_names == sorted(fact["operations"]), sid


@pytest.mark.parametrize("catalog", ["belgium-production"])
def test_production_paths_are_the_lab_paths(catalog: str) -> None:
    """Only the host changes between the lab and production: the paths are the same."""
    production = load_catalog(catalog, env={})
    lab = load_catalog("belgium", env={})
    for sid, service in production.services.items():
        assert service.path_prefix == lab.services[sid].path_prefix, sid
        for dc, url in service.endpoints.items():
            assert urlsplit(url).path == service.path_prefix, f"{sid} {dc}"
            assert urlsplit(lab.services[sid].endpoints[dc]).path == service.path_prefix
