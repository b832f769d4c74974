"""The gateway as a drop-in for SOAP stacks: the WSDL through the gateway, and journaled
writes answered so that a generated client does not crash (docs/gateway-contract.md)."""

from __future__ import annotations

import pytest
from lxml import etree

from garde.catalog import Catalog, JournaledAnswer
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.transport import Response
from garde.gateway.wire import Request
from tests.gateway.doubles import (
    EXECUTOR,
    RECIPE,
    Call,
    FakeTransport,
    MemoryJournal,
    caller_security,
    refuse,
    run,
    soap_request,
)

GARDE = "{urn:garde:gateway:v1}"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
DELIVER = ("markAsDelivered", "<x:Rid>BEP0ABCDEFGH</x:Rid>")


def _with_answer(catalog: Catalog, answer: JournaledAnswer) -> Catalog:
    service = catalog.services["recipe-executor"]
    operation = service.operations["markAsDelivered"]
    assert operation.continuity is not None
    continuity = operation.continuity.model_copy(update={"answer": answer})
    operations = {
        **service.operations,
        "markAsDelivered": operation.model_copy(update={"continuity": continuity}),
    }
    services = {
        **catalog.services,
        "recipe-executor": service.model_copy(update={"operations": operations}),
    }
    return catalog.model_copy(update={"services": services})


def _all_down(catalog: Catalog) -> Gateway:
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)
    return Gateway(catalog, transport, GatewayConfig(health_checks=False), MemoryJournal())


def _deliver(
    gateway: Gateway, *extra: tuple[bytes, bytes]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """A delivery as a generated client sends it (no ``Prefer``), plus ``extra`` headers."""
    operation, inner = DELIVER
    request = soap_request(EXECUTOR, operation, RECIPE, inner, header=caller_security())
    headers = [(k, v) for k, v in request.headers if k != b"Prefer"] + list(extra)
    reply = run(gateway.handle(Request(b"POST", EXECUTOR.encode(), headers, request.body)))
    return reply.status, {k.lower(): v for k, v in reply.headers}, reply.body


def test_response_answer_is_the_operations_own_element_with_the_receipt_in_a_header(
    catalog: Catalog,
) -> None:
    status, headers, body = _deliver(_all_down(_with_answer(catalog, JournaledAnswer.RESPONSE)))
    assert status == 200, body
    receipt = headers[b"garde-receipt"].decode()
    assert headers[b"garde-mode"] == b"degraded"
    root = etree.fromstring(body)
    header = root.find(f"{SOAP}Header/{GARDE}Journaled")
    assert header is not None and header.get("receipt") == receipt
    assert header.get("location") == f"/_garde/receipts/{receipt}"
    answer = root.find(f"{SOAP}Body")[0]  # type: ignore[index]
    assert answer.tag == f"{{{RECIPE}}}MarkAsDeliveredResponse"
    assert len(answer) == 0, "nothing is claimed about a delivery that has not happened yet"


def test_accepted_answer_is_an_empty_202(catalog: Catalog) -> None:
    status, headers, body = _deliver(_all_down(_with_answer(catalog, JournaledAnswer.ACCEPTED)))
    assert (status, body) == (202, b"")
    assert headers[b"garde-receipt"]


@pytest.mark.parametrize("answer", list(JournaledAnswer))
def test_prefer_respond_async_always_gets_the_receipt(
    catalog: Catalog, answer: JournaledAnswer
) -> None:
    gateway = _all_down(_with_answer(catalog, answer))
    status, headers, body = _deliver(gateway, (b"Prefer", b"wait=5, respond-async"))
    assert status == 202
    journaled = etree.fromstring(body).find(f"{SOAP}Body/{GARDE}Journaled")
    assert journaled is not None
    assert journaled.get("receipt") == headers[b"garde-receipt"].decode()


def test_generated_clients_get_their_response_and_garde_aware_ones_the_receipt(
    catalog: Catalog,
) -> None:
    """The shipped catalog answers a journaled SOAP write with the operation's own response
    (generated clients do not crash); a caller that says ``Prefer: respond-async`` gets the
    receipt; a catalog that says nothing keeps the receipt (the model's default)."""
    operation = catalog.services["recipe-executor"].operations["markAsDelivered"]
    assert operation.continuity is not None
    assert operation.continuity.answer is JournaledAnswer.RESPONSE  # type: ignore[union-attr]
    operation_id, inner = DELIVER
    garde_aware = soap_request(EXECUTOR, operation_id, RECIPE, inner, header=caller_security())
    generated = Request(
        b"POST",
        EXECUTOR.encode(),
        [(k, v) for k, v in garde_aware.headers if k != b"Prefer"],
        garde_aware.body,
    )
    plain = run(_all_down(catalog).handle(generated))
    assert plain.status == 200 and b"MarkAsDeliveredResponse" in plain.body
    status, _, body = _deliver(_all_down(catalog), (b"Prefer", b"respond-async"))
    assert status == 202 and b"garde:Journaled" in body
    status, _, body = _deliver(_all_down(_with_answer(catalog, JournaledAnswer.RECEIPT)))
    assert status == 202


WSDL = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"'
    b' xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"'
    b' xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x">'
    b'<wsdl:types><xsd:schema><xsd:import namespace="urn:x:types"'
    b' schemaLocation="http://10.1.2.3:8080/Recip-e/v4/Executor?xsd=1"/>'
    b'<xsd:import namespace="http://www.w3.org/2000/09/xmldsig#"'
    b' schemaLocation="http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd"/>'
    b"</xsd:schema></wsdl:types>"
    b'<wsdl:service name="S"><wsdl:port name="P" binding="x">'
    b'<soap:address location="https://recipe.int.example:443/Recip-e/v4/Executor"/>'
    b"</wsdl:port></wsdl:service></wsdl:definitions>"
)


def _get(
    gateway: Gateway, target: str, host: bytes = b"gateway.local:8080"
) -> tuple[int, dict[bytes, bytes], bytes]:
    request = Request(b"GET", target.encode(), [(b"Host", host)], b"")
    reply = run(gateway.handle(request))
    return reply.status, {k.lower(): v for k, v in reply.headers}, reply.body


def _addresses(body: bytes) -> list[str]:
    root = etree.fromstring(body)
    found = [e.get("location") for e in root.iter("{*}address")]
    found += [
        e.get("schemaLocation") for e in root.iter("{http://www.w3.org/2001/XMLSchema}import")
    ]
    return [str(a) for a in found]


def test_the_wsdl_comes_through_a_healthy_data_center_rebased_on_the_gateway(
    catalog: Catalog,
) -> None:
    transport = FakeTransport()
    transport.set("dc1", refuse)

    def wsdl(call: Call) -> Response:
        assert call.method == b"GET" and call.target.endswith(b"/Recip-e/v4/Executor?wsdl")
        return Response(200, [(b"Content-Type", b"text/xml; charset=utf-8")], WSDL)

    transport.set("dc2", wsdl)
    gateway = Gateway(catalog, transport, GatewayConfig(health_checks=False), None)
    status, headers, body = _get(gateway, f"{EXECUTOR}?wsdl")
    assert status == 200, body
    assert headers[b"garde-data-center"] == b"dc2"
    assert _addresses(body) == [
        "http://gateway.local:8080/Recip-e/v4/Executor",
        "http://gateway.local:8080/Recip-e/v4/Executor?xsd=1",
        "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd",  # not the gateway's
    ]

    # Every data center down: the copy kept is served, marked stale, rebased again.
    transport.set("dc2", refuse)
    transport.set("dc3", refuse)
    status, headers, body = _get(gateway, f"{EXECUTOR}?wsdl", host=b"127.0.0.1:9000")
    assert status == 200
    assert b"garde-stale" in headers
    assert _addresses(body)[0] == "http://127.0.0.1:9000/Recip-e/v4/Executor"

    # A document never seen: a clear 503, not a guess.
    status, _, body = _get(gateway, f"{EXECUTOR}?xsd=2")
    assert status == 503
    assert b"no copy of this document yet" in body


def test_a_service_answer_other_than_200_is_passed_on_and_not_kept(catalog: Catalog) -> None:
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, lambda call: Response(404, [(b"Content-Type", b"text/plain")], b"no"))
    gateway = Gateway(catalog, transport, GatewayConfig(health_checks=False), None)
    assert _get(gateway, f"{EXECUTOR}?xsd=9")[0] == 404
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)
    assert _get(gateway, f"{EXECUTOR}?xsd=9")[0] == 503


def test_a_plain_get_of_a_soap_service_is_still_refused(catalog: Catalog) -> None:
    gateway = Gateway(catalog, FakeTransport(), GatewayConfig(health_checks=False), None)
    assert _get(gateway, f"{EXECUTOR}?foo=1")[0] == 405
