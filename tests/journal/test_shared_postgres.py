"""Two gateways share one PostgreSQL journal; one is killed mid-replay; the other finishes."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.drill import GatewayProcess
from garde.lab import Lab, lab_in_thread
from tests.polling import until

from .conftest import PG_URL, postgres_reachable
from .crashkit import OPERATION, SERVICE, message, post, write_files

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
WRITES = 160


def _applied(lab: Lab, keys: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for effect in lab.ledger.effects(service=SERVICE):
        if effect.idempotency_key in keys:
            counts[effect.idempotency_key] = counts.get(effect.idempotency_key, 0) + 1
    return counts


def _leases_held_by(schema: str, pid: int) -> int:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT count(*) FROM "{schema}".entries'
            " WHERE state = 'delivering' AND lease_owner LIKE %s",
            (f"%:{pid}:%",),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_gateway_killed_mid_replay_is_taken_over_without_duplicates(
    belgium: Catalog, tmp_path: Path
) -> None:
    problem = postgres_reachable()
    if problem is not None:
        if os.environ.get("GARDE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (GARDE_REQUIRE_POSTGRES=1) but: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({problem})")
    schema = f"garde_test_{secrets.token_hex(6)}"
    journal = f"{PG_URL}?schema={schema}"
    # Short leases so the takeover happens within the test; sends time out well before.
    env = {
        "GARDE_REPLAY_LEASE": "3s",
        "GARDE_REPLAY_SEND_TIMEOUT": "2s",
        "GARDE_REPLAY_CONCURRENCY": "4",
    }

    async def scenario(lab: Lab) -> None:
        catalog_file, config_file = write_files(lab, belgium, tmp_path)
        service = belgium.services[SERVICE]
        action = service.soap_action_of(service.operations[OPERATION]) or ""
        for dc in service.endpoints:
            lab.faults.set(SERVICE, dc, "down")
        one = GatewayProcess(catalog_file, config_file, journal, env)
        two = GatewayProcess(catalog_file, config_file, journal, env)
        ports = [await one.start(), await two.start()]
        keys = [f"shared-{schema}-{n}" for n in range(WRITES)]
        try:
            statuses = await asyncio.gather(
                *(post(ports[n % 2], message(lab, n), key, action) for n, key in enumerate(keys))
            )
            assert statuses == [202] * WRITES
            wanted = set(keys)
            # The service comes back, slowly: both replayers drain it together.
            lab.faults.heal(service=SERVICE)
            for dc in service.endpoints:
                lab.faults.set(SERVICE, dc, "latency", latency=0.15)
            await until(lambda: len(_applied(lab, wanted)) >= WRITES // 5, 60, "replay start")
            pid = one.pid
            assert pid is not None
            await until(lambda: _leases_held_by(schema, pid) > 0, 30, "a lease held by one")
            await one.kill()  # mid-replay: its leased entries are stranded until they lapse
            assert len(_applied(lab, wanted)) < WRITES, "killed too late to prove anything"
            await until(lambda: len(_applied(lab, wanted)) == WRITES, 90, "takeover")
            counts = _applied(lab, wanted)
            assert [k for k, n in counts.items() if n > 1] == []
            assert lab.ledger.duplicates() == []
        finally:
            await one.kill()
            await two.stop()

    try:
        with lab_in_thread(belgium) as lab:
            asyncio.run(scenario(lab))
    finally:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
