"""The drill's care software follows eAttest's rules through a real gateway: it sends an
eAttest on the day of care and cancels it with the invoicing number the answer gave, for the
same patient, with a reason; the lab accepts every one (no refusal, no error)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from garde.catalog import Catalog
from garde.drill.people import nihii, patients
from garde.drill.workload import SERVED, Call, Pool, Site
from garde.lab import lab_in_thread
from tests.journal.crashkit import GatewayProcess

pytestmark = pytest.mark.e2e
GP = nihii("gp", 12)


def test_the_workload_cancels_what_it_sent_by_its_invoicing_number(
    belgium: Catalog, tmp_path: Path
) -> None:
    with lab_in_thread(belgium, base_port=0) as lab:
        lab_catalog = belgium.with_endpoints(lab.endpoints)
        catalog_file = tmp_path / "catalog.yaml"
        data = lab_catalog.model_dump(mode="json", by_alias=True, exclude_none=True)
        catalog_file.write_text(yaml.safe_dump(data), encoding="utf-8")
        config_file = tmp_path / "gateway.yaml"
        settings = {
            "target_group": "gp",
            "identities": {GP: {"primary": {"type": "eid", "secret": "1234"}}},
        }
        config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
        gateway = GatewayProcess(catalog_file, config_file, f"sqlite:///{tmp_path / 'j.db'}")
        calls = asyncio.run(_practice(lab_catalog, gateway))
        sent = lab.ledger.effects(effect="attestation.recorded")
        cancelled = lab.ledger.effects(effect="attestation.cancelled")
    outcomes = {(c.operation, c.outcome) for c in calls}
    assert outcomes <= {("sendAttestation", SERVED), ("cancelAttestation", SERVED)}, outcomes
    assert len(cancelled) >= 3, calls
    numbers = {e.detail["id"] for e in sent}
    assert {e.business_key for e in cancelled} <= numbers  # each quotes one that was sent
    assert len({e.business_key for e in cancelled}) == len(cancelled)  # and each once
    assert all(e.detail["reason"] for e in cancelled)


async def _practice(catalog: Catalog, gateway: GatewayProcess) -> list[Call]:
    port = await gateway.start()
    calls: list[Call] = []
    started = time.monotonic()
    site = Site(
        name="practice",
        group="gp",
        identity=GP,
        gateways=[f"http://127.0.0.1:{port}"],
        mix={"eattest.cancelAttestation": 1.0},
        rate=4.0,
        think_time=0.0,
        catalog=catalog,
        pool=Pool(),
        patients=patients(random.Random(7), 5),
        rng=random.Random(7),
        record=calls.append,
        clock=lambda: time.monotonic() - started,
    )
    try:
        async with aiohttp.ClientSession() as session:
            await site.run(session, until=3.0, limit=8)
    finally:
        await gateway.stop()
    return calls
