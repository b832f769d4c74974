"""Failover, ejection, the half-open breaker and the retry budget, on a clock we move."""

from __future__ import annotations

import asyncio

import pytest

from garde.catalog import Catalog
from garde.gateway.budget import RetryBudget
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.upstreams import Breaker, Mode, OutlierSettings, ServiceUpstreams
from tests.gateway.doubles import (
    EXECUTOR,
    RECIPE,
    Call,
    FakeTransport,
    MemoryJournal,
    caller_security,
    error_503,
    refuse,
    reset,
    soap_request,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refused_connection_fails_over_for_any_operation(
    gateway: Gateway, transport: FakeTransport
) -> None:
    """markAsDelivered is not retry-safe, yet a refused connection sent nothing: dc2 serves."""
    transport.set("dc1", refuse)
    reply = asyncio.run(gateway.handle(soap_request(EXECUTOR, "markAsDelivered", RECIPE)))
    assert reply.status == 200
    assert reply.header(b"garde-data-center") == b"dc2"
    assert [c.dc for c in transport.calls] == ["dc1", "dc2"]


def test_failure_after_sending_is_not_retried_for_unsafe_writes(
    gateway: Gateway, transport: FakeTransport, journal: MemoryJournal
) -> None:
    """A reset after sending may have applied markAsDelivered: journal it, never resend now."""
    transport.set("dc1", reset)
    request = soap_request(EXECUTOR, "markAsDelivered", RECIPE, header=caller_security())
    reply = asyncio.run(gateway.handle(request))
    assert [c.dc for c in transport.calls] == ["dc1"]
    assert reply.status == 202
    ((submission, _),) = journal.entries.values()
    sent_key = transport.calls[0].header(b"idempotency-key")
    assert sent_key is not None
    assert submission.idempotency_key == sent_key.decode(), "replay must reuse the sent key"


def test_failure_after_sending_is_retried_for_retry_safe_reads(
    gateway: Gateway, transport: FakeTransport
) -> None:
    transport.set("dc1", error_503)
    reply = asyncio.run(
        gateway.handle(soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE))
    )
    assert reply.status == 200
    assert reply.header(b"garde-data-center") == b"dc2"


def test_soap_fault_is_an_answer_not_a_failure(gateway: Gateway, transport: FakeTransport) -> None:
    from garde.gateway.transport import Response

    fault = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode></s:Fault></s:Body></s:Envelope>'
    transport.set("dc1", lambda call: Response(500, [], fault))
    reply = asyncio.run(
        gateway.handle(soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE))
    )
    assert reply.status == 500
    assert reply.body == fault
    assert len(transport.calls) == 1


def _upstreams(catalog: Catalog, clock: Clock, **settings: float) -> ServiceUpstreams:
    return ServiceUpstreams(
        catalog.services["recipe-executor"],
        OutlierSettings(jitter=0, **settings),
        clock=clock,  # type: ignore[arg-type]
    )


def test_consecutive_failures_eject_with_growing_time(catalog: Catalog) -> None:
    clock = Clock()
    ups = _upstreams(catalog, clock, consecutive_failures=3, base_ejection=5)
    dc1 = ups.links[0]
    for _ in range(3):
        ups.failed(dc1, "refused")
    assert dc1.breaker(clock()) is Breaker.OPEN
    assert [link.dc for link in ups.plan()] == ["dc2", "dc3"]
    assert ups.current() == (Mode.DEGRADED, "dc2")
    clock.now += 5.01
    assert dc1.breaker(clock()) is Breaker.HALF_OPEN
    assert ups.claim(dc1)
    ups.failed(dc1, "refused")  # the trial fails: ejected again, for twice as long
    assert dc1.ejected_until - clock() == 10.0


def test_half_open_admits_exactly_one_trial(catalog: Catalog) -> None:
    clock = Clock()
    ups = _upstreams(catalog, clock, consecutive_failures=1, base_ejection=5)
    dc1 = ups.links[0]
    ups.failed(dc1, "refused")
    clock.now += 6
    assert ups.claim(dc1)
    assert not ups.claim(dc1), "a second request must not join the trial"
    assert dc1 not in ups.plan()
    ups.succeeded(dc1)
    assert dc1.breaker(clock()) is Breaker.CLOSED
    assert ups.current() == (Mode.NORMAL, "dc1")


def test_error_rate_ejects_without_consecutive_failures(catalog: Catalog) -> None:
    clock = Clock()
    ups = _upstreams(catalog, clock, consecutive_failures=100, min_requests=10, failure_rate=0.5)
    dc1 = ups.links[0]
    for _ in range(5):
        ups.succeeded(dc1)
        ups.failed(dc1, "HTTP 503")
    assert dc1.breaker(clock()) is Breaker.OPEN


def test_a_burst_never_ejects_the_last_data_center_that_might_answer(catalog: Catalog) -> None:
    clock = Clock()
    ups = _upstreams(catalog, clock, consecutive_failures=2)
    dc1, dc2, dc3 = ups.links
    for link in (dc1, dc2):
        ups.failed(link, "x")
        ups.failed(link, "x")
    for _ in range(10):
        ups.failed(dc3, "HTTP 503")
    assert dc3.breaker(clock()) is Breaker.CLOSED, "dc3 still passes its health check"
    assert ups.plan() == [dc3]
    ups.health_result(dc3, False)
    ups.health_result(dc3, False)
    ups.failed(dc3, "HTTP 503")
    ups.failed(dc3, "HTTP 503")
    assert dc3.breaker(clock()) is Breaker.OPEN, "health check and traffic agree: it is down"
    assert ups.current()[0] is Mode.OFFLINE


def test_health_check_success_shortens_an_ejection_to_one_trial(catalog: Catalog) -> None:
    clock = Clock()
    ups = _upstreams(catalog, clock, consecutive_failures=1, base_ejection=60)
    dc1 = ups.links[0]
    ups.failed(dc1, "refused")
    ups.health_result(dc1, True)
    assert dc1.breaker(clock()) is Breaker.HALF_OPEN
    assert ups.plan()[-1] is dc1


def test_retry_budget_caps_retries_at_a_share_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, min_per_second=0.0, window=10, clock=clock)
    for _ in range(100):
        budget.deposit()
    allowed = sum(budget.withdraw() for _ in range(50))
    assert allowed == 20
    assert budget.refused == 30
    clock.now += 11  # the window slides: old requests and retries are forgotten
    assert not budget.withdraw()
    budget.deposit()
    budget.deposit()
    budget.deposit()
    budget.deposit()
    budget.deposit()
    assert budget.withdraw()


def test_requests_counted_in_bulk_buy_the_same_retries() -> None:
    """The native data plane reports its requests in batches: 100 at once are 100 one by
    one, and they leave the window together."""
    clock = Clock()
    budget = RetryBudget(0.2, min_per_second=0.0, window=10, clock=clock)
    budget.deposit(100)
    assert sum(budget.withdraw() for _ in range(50)) == 20
    clock.now += 11
    assert not budget.withdraw()
    assert budget.requests == 0


def test_successes_counted_in_bulk_weigh_as_many_in_the_failure_rate(catalog: Catalog) -> None:
    """Successes reported in a batch count as many requests in the error-rate window (and
    reset the consecutive failures) as the same successes one by one."""
    clock = Clock()
    ups = _upstreams(catalog, clock, consecutive_failures=100, min_requests=10, failure_rate=0.5)
    dc1 = ups.links[0]
    ups.failed(dc1, "HTTP 503")
    ups.succeeded(dc1, 9)
    assert (dc1.window_requests, dc1.consecutive_failures) == (10, 0)
    for _ in range(4):
        ups.failed(dc1, "HTTP 503")
    assert dc1.breaker(clock()) is Breaker.CLOSED, "5 failures in 14 requests: under half"
    for _ in range(5):
        ups.failed(dc1, "HTTP 503")
    assert dc1.breaker(clock()) is Breaker.OPEN, "10 failures in 19 requests: over half"


def test_no_retry_storm_when_every_data_center_fails(catalog: Catalog) -> None:
    """With the budget spent, a request tries one data center and the policy answers."""
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, error_503)
    config = GatewayConfig(
        health_checks=False,
        retry_min_per_second=0.0,
        outlier=OutlierSettings(consecutive_failures=10_000, min_requests=10_000),
    )
    gateway = Gateway(catalog, transport, config, MemoryJournal())

    async def main() -> None:
        for _ in range(200):
            reply = await gateway.handle(
                soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE)
            )
            assert reply.status == 503

    asyncio.run(main())
    assert len(transport.calls) <= 200 * 1.2 + 1
    assert gateway.metrics.budget_refusals > 0


def test_an_open_breaker_fails_fast(catalog: Catalog) -> None:
    """Once every data center is ejected, callers get the policy's answer without a wait."""
    transport = FakeTransport()
    calls: list[Call] = []

    def down(call: Call):  # type: ignore[no-untyped-def]
        calls.append(call)
        return refuse(call)

    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, down)
    gateway = Gateway(catalog, transport, GatewayConfig(health_checks=False), MemoryJournal())
    for link in gateway.upstreams["recipe-executor"].links:
        link.healthy = False  # the health checks agree they are down

    async def main() -> None:
        for _ in range(20):
            await gateway.handle(soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE))

    asyncio.run(main())
    assert gateway.upstreams["recipe-executor"].mode is Mode.OFFLINE
    assert len(calls) < 20


def test_a_silent_data_center_costs_a_short_try_not_the_whole_deadline(
    gateway: Gateway, transport: FakeTransport
) -> None:
    """Once dc1 has answered, a retry-safe attempt there gives up early and dc2 serves."""
    request = soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE)
    asyncio.run(gateway.handle(request))
    waited: list[float] = []

    def blackhole(call: Call):  # type: ignore[no-untyped-def]
        waited.append(call.timeout)
        return reset(call)

    transport.set("dc1", blackhole)
    reply = asyncio.run(
        gateway.handle(soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE))
    )
    assert reply.header(b"garde-data-center") == b"dc2"
    assert waited == [0.25], "min_try_timeout, not the operation's 10 s"


def test_unsafe_writes_get_the_whole_deadline_on_one_data_center(
    gateway: Gateway, transport: FakeTransport
) -> None:
    asyncio.run(gateway.handle(soap_request(EXECUTOR, "markAsDelivered", RECIPE)))
    asyncio.run(gateway.handle(soap_request(EXECUTOR, "markAsDelivered", RECIPE)))
    assert transport.calls[-1].timeout == pytest.approx(10.0, abs=0.05)


def test_a_trial_slot_is_given_back_when_the_budget_refuses_the_retry(catalog: Catalog) -> None:
    transport = FakeTransport()
    transport.set("dc1", refuse)
    config = GatewayConfig(health_checks=False, retry_min_per_second=0.0, retry_ratio=0.0)
    gateway = Gateway(catalog, transport, config, MemoryJournal())
    upstreams = gateway.upstreams["recipe-executor"]
    _, dc2, dc3 = upstreams.links
    for link in (dc2, dc3):
        link.probation = True  # half-open: one trial each
    asyncio.run(gateway.handle(soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE)))
    assert [c.dc for c in transport.calls] == ["dc1"]
    assert not dc2.trial_in_flight
    assert dc2 in upstreams.plan()
