"""Routing and bad input: the right operation is found, and bad requests never leave."""

from __future__ import annotations

import asyncio
import json

import pytest

from garde.catalog import Catalog
from garde.errors import RequestRejected
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway, parse_deadline
from garde.gateway.wire import Request
from tests.gateway.doubles import (
    EXECUTOR,
    RECIPE,
    FakeTransport,
    MemoryJournal,
    envelope,
    soap_request,
)


def test_soap_action_identifies_the_operation(gateway: Gateway, transport: FakeTransport) -> None:
    """A request with a SOAPAction reaches dc1 at the catalog path, and says where it went."""
    reply = asyncio.run(
        gateway.handle(soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE))
    )
    assert reply.status == 200
    assert reply.header(b"garde-data-center") == b"dc1"
    assert transport.calls[0].target == b"/Recip-e/v4/Executor"
    assert (
        gateway.metrics.requests[("recipe-executor.getPrescriptionForExecutor", "forwarded")] == 1
    )


def test_body_element_identifies_the_operation_without_soap_action(gateway: Gateway) -> None:
    request = soap_request(EXECUTOR, "listOpenPrescriptions", RECIPE, action=False)
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 200
    assert gateway.metrics.requests[("recipe-executor.listOpenPrescriptions", "forwarded")] == 1


def test_garde_headers_and_hop_by_hop_headers_stay_at_the_gateway(
    gateway: Gateway, transport: FakeTransport
) -> None:
    extra = [(b"Garde-Target-Group", b"pharmacist"), (b"Connection", b"keep-alive")]
    request = soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE, extra=extra)
    asyncio.run(gateway.handle(request))
    sent = {k.lower() for k, _ in transport.calls[0].headers}
    assert b"garde-target-group" not in sent
    assert b"connection" not in sent
    assert b"soapaction" in sent


def test_unknown_path_gets_404_listing_the_known_prefixes(
    gateway: Gateway, transport: FakeTransport
) -> None:
    request = Request(b"POST", b"/nowhere", [(b"Content-Type", b"application/json")], b"{}")
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 404
    problem = json.loads(reply.body)
    assert "/Recip-e/v4/Executor" in problem["detail"]
    assert transport.calls == []


def test_unknown_operation_in_a_known_service_is_404(
    gateway: Gateway, transport: FakeTransport
) -> None:
    body = envelope("StealEverythingRequest", RECIPE)
    request = Request(b"POST", EXECUTOR.encode(), [(b"Content-Type", b"text/xml")], body)
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 404
    assert b"soap:Client" in reply.body
    assert b"StealEverythingRequest" in reply.body
    assert transport.calls == []


BAD_BODIES = [
    (b"<soap:Envelope", b"malformed"),
    (b"", b"not a SOAP Envelope"),
    (b"<notsoap/>", b"not a SOAP Envelope"),
    (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><x>&e;</x></soap:Body></soap:Envelope>",
        b"XXE",
    ),
]
ONLY_FULL = [
    (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body></soap:Body></soap:Envelope>",
        b"Body is empty",
    ),
    (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><a><b></a></b></soap:Body></soap:Envelope>",
        b"malformed XML",
    ),
]


@pytest.mark.parametrize(
    ("validation", "body", "expected"),
    [(v, b, e) for v in ("when_needed", None) for b, e in BAD_BODIES]
    + [("full", b, e) for b, e in BAD_BODIES + ONLY_FULL],
)
def test_bad_soap_gets_a_clear_400_and_nothing_reaches_an_upstream(
    catalog: Catalog, validation: str | None, body: bytes, expected: bytes
) -> None:
    """``None``: the default configuration."""
    transport = FakeTransport()
    config = GatewayConfig(health_checks=False).with_overrides(xml_validation=validation)
    gateway = Gateway(catalog, transport, config, MemoryJournal())
    headers = [
        (b"Content-Type", b"text/xml"),
        (b"SOAPAction", f'"{RECIPE}:markAsDelivered"'.encode()),
    ]
    reply = asyncio.run(gateway.handle(Request(b"POST", EXECUTOR.encode(), headers, body)))
    assert reply.status == 400
    assert expected in reply.body
    assert transport.calls == []


def test_a_body_the_gateway_must_read_is_always_parsed(
    gateway: Gateway, transport: FakeTransport
) -> None:
    """Without SOAPAction the body names the operation: malformed XML is refused."""
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><a><b></a></b></soap:Body></soap:Envelope>"
    )
    request = Request(b"POST", EXECUTOR.encode(), [(b"Content-Type", b"text/xml")], body)
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 400
    assert transport.calls == []


@pytest.mark.parametrize(
    "target",
    [
        b"/Recip-e/v4/Executor/../../../admin",
        b"/Recip-e/v4/Executor/%2e%2e/x",
        b"/Recip-e/v4/Executor//x",
    ],
)
def test_path_tricks_are_refused(gateway: Gateway, transport: FakeTransport, target: bytes) -> None:
    body = envelope("GetPrescriptionForExecutorRequest", RECIPE)
    reply = asyncio.run(
        gateway.handle(Request(b"POST", target, [(b"Content-Type", b"text/xml")], body))
    )
    assert reply.status == 400
    assert transport.calls == []


def test_get_on_a_soap_service_is_405(gateway: Gateway, transport: FakeTransport) -> None:
    reply = asyncio.run(gateway.handle(Request(b"GET", EXECUTOR.encode(), [])))
    assert reply.status == 405
    assert transport.calls == []


def test_deadline_header_forms() -> None:
    assert parse_deadline(None, 10.0, 1000.0) == 10.0
    assert parse_deadline(b"2.5", 10.0, 1000.0) == 2.5
    assert parse_deadline(b"1970-01-01T00:16:50Z", 10.0, 1000.0) == 10.0
    for bad in (b"soon", b"-1", b"nan", b"2026-01-01T10:00:00"):
        with pytest.raises(RequestRejected):
            parse_deadline(bad, 10.0, 1000.0)


def test_bad_deadline_is_refused_before_forwarding(
    gateway: Gateway, transport: FakeTransport
) -> None:
    request = soap_request(
        EXECUTOR, "getPrescriptionForExecutor", RECIPE, extra=[(b"Garde-Deadline", b"tomorrow")]
    )
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 400
    assert b"Garde-Deadline" in reply.body
    assert transport.calls == []


def test_caller_deadline_bounds_the_attempt_timeout(
    gateway: Gateway, transport: FakeTransport
) -> None:
    request = soap_request(
        EXECUTOR, "getPrescriptionForExecutor", RECIPE, extra=[(b"Garde-Deadline", b"0.5")]
    )
    asyncio.run(gateway.handle(request))
    assert transport.calls[0].timeout <= 0.5
