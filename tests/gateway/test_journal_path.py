"""Writes journaled while every data center is down, replayed by the gateway's own Sender."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from garde.catalog import Catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.runner import RunningGateway
from garde.gateway.sender import GatewaySender
from garde.gateway.transport import Response
from garde.gateway.wire import Request
from garde.journal.base import Outcome, Submission
from garde.journal.factory import open_journal
from garde.journal.replayer import ReplayPolicy
from garde.journal.sealing import Keyring
from tests.gateway.doubles import (
    EXECUTOR,
    RECIPE,
    FakeTransport,
    MemoryJournal,
    caller_security,
    ok,
    refuse,
    soap_request,
)

BUSINESS_FAULT = (
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    b"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>revoked</faultstring><detail>"
    b'<garde:BusinessError xmlns:garde="urn:garde:lab:v1" code="RID_REVOKED">revoked'
    b"</garde:BusinessError></detail></soap:Fault></soap:Body></soap:Envelope>"
)


def test_journaled_write_is_replayed_once_the_service_is_back(
    catalog: Catalog, tmp_path: Path
) -> None:
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)

    async def main() -> None:
        journal = await open_journal(str(tmp_path / "journal.db"), Keyring.clear())
        config = GatewayConfig(port=0, health_checks=False)
        policy = ReplayPolicy(poll_interval=0.05, backoff=0.05)
        async with RunningGateway(
            catalog, config, journal, transport=transport, replay=policy
        ) as running:
            gateway = running.gateway
            request = soap_request(
                EXECUTOR,
                "markAsDelivered",
                RECIPE,
                "<x:Rid>BEP0ABCDEFGH</x:Rid>",
                extra=[(b"Idempotency-Key", b"deliver-1")],
                header=caller_security(),
            )
            reply = await gateway.handle(request)
            assert reply.status == 202
            receipt = reply.header(b"garde-receipt")
            assert receipt is not None
            lookup = Request(b"GET", b"/_garde/receipts/" + receipt, [])
            assert json.loads((await gateway.handle(lookup)).body)["state"] in (
                "journaled",
                "delivering",
            )
            for dc in ("dc1", "dc2", "dc3"):
                transport.set(dc, ok)
            deadline = time.monotonic() + 10
            state = ""
            while time.monotonic() < deadline:
                state = json.loads((await gateway.handle(lookup)).body)["state"]
                if state == "delivered":
                    break
                await asyncio.sleep(0.02)
            assert state == "delivered"
        sent = [c for c in transport.calls if c.header(b"idempotency-key") == b"deliver-1"]
        # Three refused live attempts (dc1-3), then the replay; a replay attempt may also
        # have met the refusing data centers before they were marked down (it backs off).
        assert len(sent) >= 4, "three refused live attempts (dc1-3), then the replay"
        assert b"BEP0ABCDEFGH" in sent[-1].body

    asyncio.run(main())


def _submission(**changes: object) -> Submission:
    values: dict[str, object] = {
        "service": "recipe-executor",
        "operation": "markAsDelivered",
        "identity": "",
        "target_group": "pharmacist",
        "idempotency_key": "k1",
        "ordering_key": "BEP0ABCDEFGH",
        "payload": soap_request(EXECUTOR, "markAsDelivered", RECIPE).body,
        "headers": (("Content-Type", "text/xml"),),
        "deadline": time.time() + 60,
    }
    values.update(changes)
    return Submission(**values)  # type: ignore[arg-type]


def _send(catalog: Catalog, behaviour, submission: Submission | None = None):  # type: ignore[no-untyped-def]
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, behaviour)
    gateway = Gateway(catalog, transport, GatewayConfig(health_checks=False), MemoryJournal())
    delivery = asyncio.run(GatewaySender(gateway).send(submission or _submission()))
    return delivery, transport


def test_sender_delivers_with_the_journaled_idempotency_key(catalog: Catalog) -> None:
    delivery, transport = _send(catalog, ok)
    assert delivery.outcome is Outcome.DELIVERED
    assert transport.calls[0].header(b"idempotency-key") == b"k1"


def test_sender_reports_a_business_fault_as_conflict(catalog: Catalog) -> None:
    delivery, _ = _send(catalog, lambda call: Response(500, [], BUSINESS_FAULT))
    assert delivery.outcome is Outcome.CONFLICT
    assert delivery.reason is not None
    assert "RID_REVOKED" in delivery.reason


def test_sender_honours_retry_after_on_throttling(catalog: Catalog) -> None:
    delivery, _ = _send(catalog, lambda call: Response(429, [(b"Retry-After", b"7")], b""))
    assert delivery.outcome is Outcome.RETRY_LATER
    assert delivery.retry_after == 7


def test_sender_retries_later_when_nothing_answers(catalog: Catalog) -> None:
    delivery, _ = _send(catalog, refuse)
    assert delivery.outcome is Outcome.RETRY_LATER


def test_sender_never_delivers_past_the_deadline(catalog: Catalog) -> None:
    delivery, transport = _send(catalog, ok, _submission(deadline=time.time() - 1))
    assert delivery.outcome is Outcome.CONFLICT
    assert transport.calls == []
