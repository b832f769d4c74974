"""Hedged requests and timeouts that eject, on real loopback sockets: a data center that
accepts connections and never answers (a blackhole) in front of the gateway's native plane
and its general path alike.

What a pharmacist would notice: a read answered by the other data center at once rather than
after the per-try timeout; what the chain would notice: a write never sent twice, and hedges
never more than their budget allows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, TypeVar

import pytest

from garde.catalog import Catalog
from garde.gateway import native
from garde.gateway.budget import RetryBudget
from garde.gateway.config import GatewayConfig
from garde.gateway.hedging import HedgeBudget, HedgeDelays
from garde.gateway.runner import RunningGateway
from garde.lab import kmehr, lab_in_thread
from tests.gateway.doubles import MemoryJournal
from tests.gateway.test_server import BODY, TOKEN, soap_post
from tests.gateway.upstream import Upstream
from tests.lab.labkit import PRESCRIBER, niss
from tests.polling import until

RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"
PATHS = ["native", "off"] if native.available() else ["off"]
"""The native data plane serves plain retry-safe calls; ``off``: the general path does."""
T = TypeVar("T")


class Blackholing(Upstream):
    """A loopback data center that answers until ``silent`` is set, then reads every request
    and never answers one, on new and open connections alike (the lab's ``blackhole``)."""

    silent = False
    swallowed = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._serve(reader, _Silenceable(writer, self))  # type: ignore[arg-type]


class _Silenceable:
    def __init__(self, writer: asyncio.StreamWriter, upstream: Blackholing) -> None:
        self.writer = writer
        self.upstream = upstream

    def write(self, data: bytes) -> None:
        if self.upstream.silent:
            self.upstream.swallowed += 1  # read, and never answered
        else:
            self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def stack(
    catalog: Catalog, **config: object
) -> AsyncIterator[tuple[RunningGateway, Blackholing, Upstream]]:
    dc1, dc2 = await Blackholing().start(), await Upstream().start()
    endpoints = {
        "recipe-executor": {
            "dc1": f"http://127.0.0.1:{dc1.port}/Recip-e/v4/Executor",
            "dc2": f"http://127.0.0.1:{dc2.port}/Recip-e/v4/Executor",
        }
    }
    settings = GatewayConfig(port=0, health_checks=False, admin_token=TOKEN).with_overrides(
        **config
    )
    running = await RunningGateway(
        catalog.with_endpoints(endpoints), settings, MemoryJournal()
    ).start()
    try:
        yield running, dc1, dc2
    finally:
        await running.stop()
        await dc1.stop()
        await dc2.stop()


async def read(port: int) -> tuple[int, dict[str, str]]:
    """One getPrescriptionForExecutor, answered within 1.5 s (else the test fails)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(soap_post(BODY))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.5)
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        await reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers
    finally:
        writer.close()


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.monotonic()
    return await call, time.monotonic() - started


async def admin(gw: RunningGateway, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = await asyncio.wait_for(reader.read(), 5)
        return data.split(b"\r\n\r\n", 1)[1]
    finally:
        writer.close()


async def status(gw: RunningGateway) -> dict[str, Any]:
    return dict(json.loads(await admin(gw, "/_garde/status")))


def counter(metrics: bytes, name: str) -> int:
    for line in metrics.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in the metrics")


async def warm_up(gw: RunningGateway, calls: int = 30) -> None:
    """Enough answers from dc1 for the gateway to know its usual answer time there (and, for
    the native plane, the time to be given the delay that follows from it)."""
    for _ in range(calls):
        code, headers = await read(gw.port)
        assert (code, headers["garde-data-center"]) == (200, "dc1")
    await asyncio.sleep(0.5)


@pytest.mark.parametrize("fast_path", PATHS)
def test_reads_are_answered_by_the_other_data_center_while_one_is_blackholed(
    catalog: Catalog, fast_path: str
) -> None:
    """dc1 swallows every request. Without hedging each read would wait its 2 s per-try
    timeout (the read below gives up after 1.5 s); hedged, dc2 answers it, and dc1's
    unanswered attempts, left to run out, eject it: later reads go straight to dc2."""

    async def main() -> None:
        # hedge_max_delay: a loaded test machine's slow warm-up must not push the delay
        # towards the per-try timeout.
        async with stack(
            catalog, fast_path=fast_path, min_try_timeout=2.0, hedge_max_delay=0.2
        ) as (gw, dc1, dc2):
            await warm_up(gw)
            dc1.silent = True
            for _ in range(3):
                code, headers = await read(gw.port)
                assert (code, headers["garde-data-center"]) == (200, "dc2")
            metrics = await admin(gw, "/metrics")
            assert counter(metrics, "garde_gateway_hedges_total") == 3
            assert dc1.swallowed == 3  # each read went to dc1 first, and once

            async def ejected() -> bool:
                found = await status(gw)
                dc = found["services"]["recipe-executor"]["data_centers"]["dc1"]
                return bool(dc["breaker"] == "open")

            await until(ejected, 10, "dc1 ejected after its attempts timed out")
            before = len(dc2.requests)
            for _ in range(3):
                code, headers = await read(gw.port)
                assert (code, headers["garde-data-center"]) == (200, "dc2")
            assert len(dc2.requests) == before + 3
            assert dc1.swallowed == 3  # ejected: not even tried
            metrics = await admin(gw, "/metrics")
            assert counter(metrics, "garde_gateway_hedges_total") == 3  # no hedge needed

    asyncio.run(main())


@pytest.mark.parametrize("fast_path", PATHS)
def test_hedges_stay_within_their_budget(catalog: Catalog, fast_path: str) -> None:
    """A budget of one hedge in the window: of five slow reads at once, one is hedged (dc2
    sees exactly one request); the others wait out their per-try timeout on dc1 and fail
    over then, as without hedging."""

    async def main() -> None:
        async with stack(
            catalog,
            fast_path=fast_path,
            min_try_timeout=0.6,
            hedge_max_delay=0.2,
            hedge_ratio=0.0,
            hedge_min_per_second=0.1,  # 0.1 x the 10 s window: one hedge
            retry_min_per_second=100.0,
        ) as (gw, dc1, dc2):
            await warm_up(gw)
            await asyncio.sleep(0.5)  # the native plane has its hedge delay and share
            dc1.silent = True
            before = len(dc2.requests)
            started = time.monotonic()
            results = await asyncio.gather(*(timed(read(gw.port)) for _ in range(5)))
            assert all(code == 200 for (code, _), _ in results)
            assert all(headers["garde-data-center"] == "dc2" for (_, headers), _ in results)
            waited = sorted(seconds for _, seconds in results)
            # One answered by its hedge; four after dc1's 0.6 s per-try timeout ran out.
            assert waited[0] < 0.6 <= waited[1], waited
            metrics = await admin(gw, "/metrics")
            assert counter(metrics, "garde_gateway_hedges_total") == 1
            assert len(dc2.requests) == before + 5
            assert time.monotonic() - started < 1.5

    asyncio.run(main())


def test_hedging_off_waits_for_the_per_try_timeout(catalog: Catalog) -> None:
    """The baseline the benchmark compares with: ``hedge: false`` sends nothing to dc2
    until dc1's per-try timeout ran out."""

    async def main() -> None:
        async with stack(catalog, hedge=False, min_try_timeout=0.5) as (gw, dc1, _):
            await warm_up(gw)
            dc1.silent = True
            started = time.monotonic()
            code, headers = await read(gw.port)
            assert (code, headers["garde-data-center"]) == (200, "dc2")
            assert time.monotonic() - started >= 0.5
            metrics = await admin(gw, "/metrics")
            assert counter(metrics, "garde_gateway_hedges_total") == 0

    asyncio.run(main())


def test_a_prescription_is_never_sent_twice_when_its_data_center_goes_silent(
    catalog: Catalog,
) -> None:
    """createPrescription is not retry-safe. Recip-e's dc1 is blackholed: the first
    prescription after that hangs there and is refused with its outcome ``unknown``, never
    re-sent to dc2; the next one, seeing dc1 silent past its per-try time, goes to dc2 and
    is made. The lab's ledger counts what was applied: each prescription at most once."""
    with lab_in_thread(catalog, base_port=0) as lab:
        asyncio.run(_prescriptions(catalog.with_endpoints(lab.endpoints), lab))


def _prescription(patient: str) -> bytes:
    prescription = kmehr.prescription(PRESCRIBER, patient, when=date.today())
    import base64

    fields = {
        "PrescriberNihii": PRESCRIBER,
        "PatientId": patient,
        "PrescriptionType": "P1",
        "ExpirationDate": date.today().replace(year=date.today().year + 1).isoformat(),
        "Prescription": base64.b64encode(prescription).decode(),
    }
    inner = "".join(f"<r:{k}>{v}</r:{k}>" for k, v in fields.items())
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<r:CreatePrescriptionRequest xmlns:r="{RECIPE}">{inner}</r:CreatePrescriptionRequest>'
        "</soap:Body></soap:Envelope>"
    ).encode()


async def _create(port: int, key: str, patient: str, deadline: str = "3") -> tuple[int, bytes]:
    body = _prescription(patient)
    head = (
        "POST /Recip-e/v4/Prescriber HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "{RECIPE}:createPrescription"\r\nGarde-Identity: {PRESCRIBER}\r\n'
        f"Idempotency-Key: {key}\r\nGarde-Deadline: {deadline}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        length = int(answer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return int(answer.split()[1]), await reader.readexactly(length)
    finally:
        writer.close()


async def _prescriptions(catalog: Catalog, lab: Any) -> None:
    from garde.gateway.config import GatewayConfig
    from garde.gateway.tokens import Credential, IdentityConfig

    config = GatewayConfig(
        port=0,
        health_checks=False,
        try_timeout_factor=2.0,  # a call is silent past max(250 ms, twice its usual time)
        identities={PRESCRIBER: IdentityConfig(Credential("eid", "1234"), None)},
    )
    gw = await RunningGateway(catalog, config, MemoryJournal()).start()
    patient = niss(date(1985, 7, 30))
    try:
        for i in range(3):
            code, body = await _create(gw.port, f"warm-{i}", patient)
            assert code == 200, body
        lab.faults.set("recipe-prescriber", "dc1", "blackhole")
        first = asyncio.ensure_future(_create(gw.port, "hangs", patient, deadline="4"))

        async def silent() -> bool:
            found = gw.gateway.upstreams["recipe-prescriber"].links[0]
            return found.consecutive_timeouts > 0 or found.ejected_until > 0

        await until(silent, 3, "dc1 marked silent by the call that hangs there")
        code, body = await _create(gw.port, "goes-elsewhere", patient)
        assert code == 200, body
        code, body = await first
        assert code == 503
        assert b"<garde:Outcome>unknown</garde:Outcome>" in body
    finally:
        await gw.stop()
        lab.faults.heal("recipe-prescriber", "dc1")
    made = lab.ledger.effects(service="recipe-prescriber")
    keys = [effect.idempotency_key for effect in made]
    assert keys.count("goes-elsewhere") == 1
    assert keys.count("hangs") == 0  # swallowed by dc1's blackhole, never sent to dc2
    assert all(keys.count(key) == 1 for key in keys)  # nothing applied twice
    assert [e.dc for e in made if e.idempotency_key == "goes-elsewhere"] != ["dc1"]


def test_the_hedge_delay_follows_the_answer_times_between_floor_and_ceiling() -> None:
    delays = HedgeDelays(quantile=0.95, floor=0.02, ceiling=1.0)
    assert delays.delay("op", "dc1") == 1.0  # nothing known: the ceiling
    for i in range(200):
        delays.observe("op", "dc1", 0.001 if i % 40 else 0.5)  # 2.5 % slow
    assert delays.delay("op", "dc1") == 0.02  # the p95 is fast: the floor
    for _ in range(200):
        delays.observe("op", "dc2", 0.2)
    assert 0.2 <= delays.delay("op", "dc2") <= 0.2 * 1.15
    for _ in range(200):
        delays.observe("op", "dc2", 5.0)
    assert delays.delay("op", "dc2") == 1.0  # never past the ceiling


def test_the_hedge_budget_is_a_share_of_the_requests() -> None:
    now = [1000.0]
    requests = RetryBudget(clock=lambda: now[0])
    budget = HedgeBudget(requests, 0.05, min_per_second=0.0, clock=lambda: now[0])
    requests.deposit(200)
    assert sum(budget.withdraw() for _ in range(20)) == 10
    assert budget.refused == 10
    now[0] += 11  # the window moved on: its requests and hedges with it
    assert budget.available() == 0
    requests.deposit(100)
    assert budget.available() == 5
