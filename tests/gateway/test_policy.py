"""Degraded modes by continuity class: stale reads, receipts, refusals with procedures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from lxml import etree

from garde.catalog import Catalog
from garde.catalog.model import WireProtocol
from garde.errors import SettingsInvalid
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.refusals import language_of
from garde.gateway.settings import load_gateway_settings
from garde.gateway.wire import Request
from tests.gateway.doubles import (
    EXECUTOR,
    GI,
    INSURABILITY,
    LAB_STS,
    RECIPE,
    FakeTransport,
    MemoryJournal,
    caller_security,
    refuse,
    soap_request,
)


def _all_down(transport: FakeTransport) -> None:
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)


def test_cacheable_read_gets_the_last_good_answer_marked_stale(
    gateway: Gateway, transport: FakeTransport
) -> None:
    request = soap_request(INSURABILITY, "getInsurability", GI, "<x:Ssin>85073003328</x:Ssin>")
    other = soap_request(INSURABILITY, "getInsurability", GI, "<x:Ssin>90010100123</x:Ssin>")

    async def main() -> None:
        fresh = await gateway.handle(request)
        assert fresh.status == 200
        gateway.cache.clock = lambda: (
            gateway.cache._entries[next(iter(gateway.cache._entries))].stored_at + 120
        )
        _all_down(transport)
        stale = await gateway.handle(request)
        assert stale.status == 200
        assert stale.body == fresh.body
        assert stale.header(b"garde-stale") == b"120"
        assert stale.header(b"age") == b"120"
        # Every header, once: the service's own, then what says the answer is stale, and no
        # trace of the first answer's data center or of its "normal" mode.
        names = [name.lower() for name, _ in stale.headers]
        assert len(names) == len(set(names)), stale.headers
        assert b"garde-data-center" not in names
        assert [v for n, v in stale.headers if n.lower() == b"garde-mode"] == [b"degraded"]
        assert (await gateway.handle(other)).status == 503, "another patient's answer is not served"

    asyncio.run(main())


def test_stale_answer_past_max_staleness_is_refused_like_online(
    gateway: Gateway, transport: FakeTransport
) -> None:
    request = soap_request(INSURABILITY, "getInsurability", GI, "<x:Ssin>85073003328</x:Ssin>")

    async def main() -> None:
        await gateway.handle(request)
        stored = next(iter(gateway.cache._entries.values())).stored_at
        gateway.cache.clock = lambda: stored + 25 * 3600  # max_stale is 24h
        _all_down(transport)
        reply = await gateway.handle(request)
        assert reply.status == 503
        assert b"insurability-last-known" in reply.body

    asyncio.run(main())


def test_stale_cache_is_bounded(gateway: Gateway) -> None:
    gateway.cache.max_entries = 3
    for i in range(10):
        gateway.cache.store(("k", str(i)), 200, [], b"")
    assert len(gateway.cache) == 3


def test_deferrable_write_is_journaled_with_a_receipt(
    gateway: Gateway, transport: FakeTransport, journal: MemoryJournal
) -> None:
    _all_down(transport)
    token = LAB_STS.issue("pharmacist-1", "eid").token
    token_header = caller_security(token=token)
    from tests.gateway.doubles import envelope

    body = envelope("MarkAsDeliveredRequest", RECIPE, "<x:Rid>BEP0ABCDEFGH</x:Rid>", token_header)
    headers = [
        (b"Content-Type", b"text/xml"),
        (b"SOAPAction", f"{RECIPE}:markAsDelivered".encode()),
        (b"Idempotency-Key", b"key-1"),
        (b"Garde-Target-Group", b"pharmacist"),
        (b"Prefer", b"respond-async"),  # garde-aware: the receipt in the body
    ]
    reply = asyncio.run(gateway.handle(Request(b"POST", EXECUTOR.encode(), headers, body)))
    assert reply.status == 202
    receipt = reply.header(b"garde-receipt")
    assert receipt is not None
    assert reply.header(b"location") == b"/_garde/receipts/" + receipt
    ((submission, _),) = journal.entries.values()
    assert submission.idempotency_key == "key-1"
    assert submission.ordering_key == "BEP0ABCDEFGH"
    assert submission.target_group == "pharmacist"
    assert token.encode() not in submission.payload, "the token is kept apart, not in the payload"
    assert submission.caller is not None, "the caller's own token is kept to send it later"
    assert submission.caller.subject == "pharmacist-1"
    assert token.encode() in submission.caller.security
    assert submission.deadline is not None


def test_journal_unavailable_means_refusal_never_202(
    gateway: Gateway, transport: FakeTransport, journal: MemoryJournal
) -> None:
    _all_down(transport)
    journal.broken = True
    request = soap_request(EXECUTOR, "markAsDelivered", RECIPE, header=caller_security())
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 503
    assert b"disk full" in reply.body


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", "preuve papier"),
        ("nl", "papieren bewijs"),
        ("en", "paper proof"),
    ],
)
def test_online_refusal_names_the_procedure_in_the_callers_language(
    gateway: Gateway, transport: FakeTransport, language: str, words: str
) -> None:
    _all_down(transport)
    extra = [
        (b"Accept-Language", f"{language}-BE, de;q=0.5".encode()),
        (b"Garde-Target-Group", b"pharmacist"),
    ]
    request = soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE, extra=extra)
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 503
    assert reply.header(b"retry-after") is not None
    root = etree.fromstring(reply.body)
    ns = {"g": "urn:garde:gateway:v1"}
    assert root.findtext(".//faultcode") == "soap:Server"
    assert root.findtext(".//g:Service", namespaces=ns) == "recipe-executor"
    assert root.find(".//g:Procedure", namespaces=ns).get("id") == "paper-proof-dispense"
    assert words in root.findtext(".//g:Procedure", namespaces=ns)
    assert root.findtext(".//g:Since", namespaces=ns)


def test_soap_refusals_can_be_a_500_for_stacks_that_need_it(
    catalog: Catalog, transport: FakeTransport, journal: MemoryJournal, tmp_path: Path
) -> None:
    config = GatewayConfig(health_checks=False, soap_fault_status=500)
    gateway = Gateway(catalog, transport, config, journal)
    _all_down(transport)
    request = soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE)
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 500  # WS-I BP R1126: what JAX-WS and WCF read a Fault from
    assert reply.header(b"retry-after") is not None
    assert etree.fromstring(reply.body).findtext(".//faultcode") == "soap:Server"

    settings = tmp_path / "gateway.yaml"
    settings.write_text("soap_fault_status: 502\n", encoding="utf-8")
    with pytest.raises(SettingsInvalid) as refused:
        load_gateway_settings(settings)
    assert "soap_fault_status" in str(refused.value) and "500" in str(refused.value)


def test_refusal_is_problem_json_for_rest_callers(gateway: Gateway) -> None:
    from garde.gateway.policy import ForwardFailure

    route = gateway.router.services[0].by_action
    _, some = next(iter(route.items()))
    request = Request(b"GET", b"/x", [(b"Accept-Language", b"nl")])
    some_rest = some.__class__(**{f: getattr(some, f) for f in some.__slots__})  # type: ignore[attr-defined]
    some_rest.service = some.service.model_copy(update={"protocol": WireProtocol.REST})
    reply = gateway.policy.refuse(some_rest, request, None, ForwardFailure(some.service_id, "down"))
    assert reply.header(b"content-type") == b"application/problem+json"
    problem = json.loads(reply.body)
    assert problem["status"] == 503
    assert problem["type"] == "urn:garde:problem:service-unavailable"
    assert problem["language"] == "nl"
    assert {"service", "since", "procedure", "retry_after"} <= set(problem)


def test_language_negotiation() -> None:
    assert language_of(None) == "en"
    assert language_of(b"nl-BE,nl;q=0.9,en;q=0.8") == "nl"
    assert language_of(b"de, fr;q=0.3, nl;q=0.7") == "nl"
    assert language_of(b"de") == "en"
