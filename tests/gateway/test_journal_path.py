"""Writes journaled while every data center is down, replayed by the gateway's own Sender."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.replay import ReplayNow, ReplayResult
from garde.gateway.runner import RunningGateway
from garde.gateway.sender import FAILURE_EVIDENCE, GatewaySender
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
    run,
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
            # No health checks here: the replayer keeps away from the data centers whose
            # last request failed for FAILURE_EVIDENCE seconds, then tries again.
            deadline = time.monotonic() + FAILURE_EVIDENCE + 10
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


def test_sender_unreachable_is_the_services_failure_not_the_entrys(catalog: Catalog) -> None:
    delivery, _ = _send(catalog, refuse)
    assert delivery.unreachable, "the replayer holds the service instead of backing off"


def test_replay_readiness_follows_the_health_view(catalog: Catalog) -> None:
    """A service whose data centers all fail their health checks gets no replay attempt
    (live traffic still tries them); a half-open data center admits one trial."""
    gateway = Gateway(catalog, FakeTransport(), GatewayConfig(health_checks=False), None)
    sender = GatewaySender(gateway)
    upstreams = gateway.upstreams["recipe-executor"]
    assert sender.ready("recipe-executor")
    for link in upstreams.links:
        upstreams.health_result(link, False, "health check: refused")
        upstreams.health_result(link, False, "health check: refused")
    assert upstreams.plan(), "live traffic still tries the last data centers that might answer"
    assert not sender.ready("recipe-executor")
    link = upstreams.links[1]
    link.healthy, link.probation, link.ejected_until = True, True, 0.0
    assert sender.ready("recipe-executor"), "a half-open data center: one trial"
    link.probation = False
    assert sender.ready("recipe-executor")
    assert not sender.ready("no-such-service")


def test_live_answers_outweigh_a_broken_health_check(catalog: Catalog) -> None:
    """The health endpoint fails, but live calls are answered: the journal is sent too."""
    clock = [1000.0]
    gateway = Gateway(catalog, FakeTransport(), GatewayConfig(health_checks=False), None)
    sender = GatewaySender(gateway)
    upstreams = gateway.upstreams["recipe-executor"]
    upstreams.clock = lambda: clock[0]
    for link in upstreams.links:
        for _ in range(3):
            upstreams.health_result(link, False, "health check: 404")
    assert not sender.ready("recipe-executor")
    upstreams.succeeded(upstreams.links[0])  # a live call went through
    assert sender.ready("recipe-executor")
    clock[0] += 31  # no live answer for longer than LIVE_EVIDENCE: the health view rules
    assert not sender.ready("recipe-executor")


def test_the_write_that_was_just_journaled_is_not_replayed_into_the_outage(
    catalog: Catalog,
) -> None:
    """The outage's first seconds: every data center refused the live write (so it was
    journaled), but the breakers and health checks do not say so yet. The replayer keeps
    away until a health check or a request succeeds, or FAILURE_EVIDENCE has passed."""
    clock = [1000.0]
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)
    gateway = Gateway(catalog, transport, GatewayConfig(health_checks=False), MemoryJournal())
    sender = GatewaySender(gateway)
    upstreams = gateway.upstreams["recipe-executor"]
    upstreams.clock = lambda: clock[0]
    reply = run(gateway.handle(_write(caller_security())))
    assert reply.status == 202
    assert all(link.healthy and link.ejected_until <= clock[0] for link in upstreams.links)
    assert not sender.ready("recipe-executor"), "its last news is a refused request"
    clock[0] += FAILURE_EVIDENCE
    assert sender.ready("recipe-executor"), "then one attempt finds out again"
    upstreams.failed(upstreams.links[0], "refused")
    upstreams.failed(upstreams.links[1], "refused")
    upstreams.failed(upstreams.links[2], "refused")
    assert not sender.ready("recipe-executor")
    upstreams.health_result(upstreams.links[2], True)
    assert sender.ready("recipe-executor"), "a passing health check is newer news"


def _write(header: str = "", extra: list[tuple[bytes, bytes]] | None = None) -> Request:
    return soap_request(
        EXECUTOR,
        "markAsDelivered",
        RECIPE,
        "<x:Rid>BEP0ABCDEFGH</x:Rid>",
        extra=extra,
        header=header,
    )


def test_a_write_that_could_never_be_sent_is_refused_not_acknowledged(
    catalog: Catalog, journal: MemoryJournal
) -> None:
    """No token at all, a signed message, a token the gateway cannot read: 503 with the
    procedure, never a receipt for a write that could not be delivered later."""
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)
    gateway = Gateway(catalog, transport, GatewayConfig(health_checks=False), journal)
    signed = caller_security().replace(
        "</wsse:Security>",
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></wsse:Security>',
    )
    cases = {
        "none": _write(),
        "ds:Signature": _write(signed),
        "can read": _write(caller_security(token="opaque-vendor-token")),
    }
    for why, request in cases.items():
        reply = asyncio.run(gateway.handle(request))
        assert reply.status == 503, why
        assert why.encode() in reply.body, reply.body
        assert b"paper" in reply.body, "the refusal names the procedure"
    assert journal.entries == {}
    with_identity = _write(extra=[(b"Garde-Identity", b"ph1")])
    assert asyncio.run(gateway.handle(with_identity)).status == 400  # no credentials for ph1


def test_the_journal_is_watched_in_metrics_with_its_rpo(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Depth, states, oldest age, attempts, last error and the RPO (recipe-executor's is 0 s:
    any write that has to wait exceeds it) are on /metrics, and the alert is logged once."""
    from garde.gateway.backlog import RpoWatch

    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, refuse)

    async def main() -> str:
        journal = await open_journal(str(tmp_path / "journal.db"), Keyring.clear())
        config = GatewayConfig(port=0, health_checks=False)
        policy = ReplayPolicy(poll_interval=0.05, backoff=0.05)
        async with RunningGateway(
            catalog, config, journal, transport=transport, replay=policy
        ) as running:
            gateway = running.gateway
            for n in range(3):
                request = _write(caller_security(), [(b"Idempotency-Key", f"m-{n}".encode())])
                assert (await gateway.handle(request)).status == 202
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = (await gateway.handle(Request(b"GET", b"/metrics", []))).body.decode()
                if 'garde_journal_last_error_info{service="recipe-executor"' in text:
                    break
                await asyncio.sleep(0.05)
            watch = RpoWatch(journal, catalog)
            assert [o.operation for o in await watch.check()] == ["markAsDelivered"]
            await watch.check()  # still exceeded: not logged again
            return text

    text = asyncio.run(main())
    labels = 'service="recipe-executor",operation="markAsDelivered"'
    assert "garde_journal_up 1.0" in text
    waiting = [
        line
        for line in text.splitlines()
        if line.startswith("garde_journal_entries{" + labels)
        and ('state="journaled"' in line or 'state="delivering"' in line)
    ]
    assert sum(float(line.split()[-1]) for line in waiting) == 3, waiting
    assert 'garde_journal_depth{service="recipe-executor"} 3.0' in text
    assert 'garde_journal_depth{service="ehbox"} 0.0' in text
    age = next(
        line
        for line in text.splitlines()
        if line.startswith("garde_journal_oldest_entry_age") and "recipe-executor" in line
    )
    assert float(age.split()[-1]) > 0
    assert "garde_journal_rpo_exceeded{" + labels + "} 1.0" in text
    assert "garde_journal_rpo_seconds{" + labels + "} 0.0" in text
    assert "refused" in text  # the last error, as the data center gave it
    info = next(line for line in text.splitlines() if "garde_journal_last_error_info{" in line)
    label = info.split('error="')[1].rsplit('"}', 1)[0]
    assert not any(c.isdigit() for c in label), "one series per kind of error"
    alerts = [r for r in caplog.records if "RPO exceeded" in r.getMessage()]
    assert len(alerts) == 1, alerts


def test_replay_now_drains_through_the_same_wiring_and_counts_what_settled(
    catalog: Catalog, tmp_path: Path
) -> None:
    """``garde journal replay --now``'s drain, called as a library: one delivered, one
    conflict, the other service's entry left alone (not chosen), each settled one told."""
    transport = FakeTransport()

    def answer(call):  # type: ignore[no-untyped-def]
        if call.header(b"idempotency-key") == b"k2":
            return Response(500, [], BUSINESS_FAULT)
        return ok(call)

    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, answer)
    told: list[str] = []

    async def main() -> ReplayResult:
        journal = await open_journal(str(tmp_path / "journal.db"), Keyring.clear())
        try:
            await journal.accept(_submission(idempotency_key="k1", ordering_key="BEP0A"))
            await journal.accept(_submission(idempotency_key="k2", ordering_key="BEP0B"))
            await journal.accept(_submission(service="eattest", idempotency_key="k3"))
            now = ReplayNow(
                catalog,
                GatewayConfig(health_checks=False),
                journal,
                ["recipe-executor"],
                on_settled=lambda receipt: told.append(receipt.state.value),
                transport=transport,
            )
            assert await now.waiting() == 2
            result = await now.run(timeout=30)
            assert await journal.depth("eattest") == 1
            return result
        finally:
            await journal.close()

    result = asyncio.run(main())
    assert result == ReplayResult(delivered=1, conflict=1, expired=0, waiting=0)
    assert sorted(told) == ["conflict", "delivered"]
    assert {c.header(b"idempotency-key") for c in transport.calls} == {b"k1", b"k2"}
