"""Recovery benchmark: how fast the journal drains once the service is back.

    python -m bench.recovery                    # 5,000 writes, a 30 s outage
    python -m bench.recovery --writes 1000 --outage 10

The path measured is the one an outage takes: eHealthBox down in every data center of the
lab, 5,000 ``sendMessage`` writes sent to a real ``garde gateway`` process (each answered
``202`` by the journal, its receipt durable), the outage kept for ``--outage`` seconds while
the gateway's replayer and health checks run as they do in production, then the service
healed. Measured from the heal: the first delivery, and the last one, counted in the lab's
ledger (each write exactly once). During an outage of a deferrable or async service this is
every write that service gets: the whole of its share of the mix.

Baseline, in the same run on a second journal of the same writes: the operator's
``garde journal replay --now`` started the moment the service is healed (no health view, no
hold: everything due is sent at once), the fastest drain the journal allows. Also reported:
attempts the gateway spent on entries while the service was down (a replayer that keeps
trying a dead service pushes every entry's next try further away).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import re
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from tests.journal.crashkit import message

from garde.catalog import load_catalog
from garde.drill import GatewayProcess, eid_identity, gateway_files
from garde.lab import Lab, lab_in_thread

SERVICE = "ehbox-publication"
OPERATION = "sendMessage"
SENDER = "20012385001"
KEYS = "k1 " + base64.b64encode(os.urandom(32)).decode()
Gateway = partial(GatewayProcess, env={"GARDE_JOURNAL_KEYS": KEYS}, sealed=True)
"""``garde gateway`` as a process, as a site runs it (its journal sealed)."""


async def _call(port: int, method: str, path: str, body: bytes, headers: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        answer = await reader.read()
    finally:
        writer.close()
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


async def _journal_writes(lab: Lab, port: int, action: str, count: int, tag: str) -> list[str]:
    """Send ``count`` writes, 32 at a time; the keys acknowledged with 202."""
    keys = [f"{tag}-{n}" for n in range(count)]
    acknowledged: list[str] = []
    errors = 0
    queue = iter(keys)

    async def client() -> None:
        nonlocal errors
        for key in queue:
            headers = (
                f'Content-Type: text/xml\r\nSOAPAction: "{action}"\r\n'
                f"Garde-Identity: {SENDER}\r\nIdempotency-Key: {key}\r\n"
            )
            status, _ = await _call(
                port, "POST", "/ehBoxPublication/v3", message(lab, len(key)), headers
            )
            if status == 202:
                acknowledged.append(key)
            else:
                errors += 1

    await asyncio.gather(*(client() for _ in range(32)))
    if errors:
        raise RuntimeError(f"{errors} of {count} writes were not acknowledged with 202")
    return acknowledged


def _delivered(lab: Lab, keys: set[str]) -> int:
    counts: dict[str, int] = {}
    for effect in lab.ledger.effects(service=SERVICE):
        if effect.idempotency_key in keys:
            counts[effect.idempotency_key] = counts.get(effect.idempotency_key, 0) + 1
    doubled = [k for k, n in counts.items() if n > 1]
    if doubled:
        raise RuntimeError(f"{len(doubled)} writes were applied twice, e.g. {doubled[0]}")
    return len(counts)


async def _drain_times(lab: Lab, keys: set[str], timeout: float) -> tuple[float, float]:
    """Seconds from now to the first and to the last delivery of ``keys``."""
    started = time.monotonic()
    first = None
    while True:
        done = _delivered(lab, keys)
        now = time.monotonic() - started
        if done and first is None:
            first = now
        if done == len(keys):
            return first or now, now
        if now > timeout:
            raise RuntimeError(f"only {done} of {len(keys)} delivered after {timeout:.0f} s")
        await asyncio.sleep(0.05)


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}{{service=\"{SERVICE}\"}} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def run(writes: int, outage: float, timeout: float) -> dict[str, float]:
    catalog = load_catalog("belgium", env={})
    service = catalog.services[SERVICE]
    action = service.soap_action_of(service.operations[OPERATION]) or ""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, lab_in_thread(catalog) as lab:
        directory = Path(folder)
        settings = {
            "target_group": "gp",
            "health_interval": "1s",
            "identities": eid_identity(SENDER),
        }
        catalog_file, config_file = gateway_files(
            directory, catalog, settings, endpoints=lab.endpoints
        )
        for dc in service.endpoints:
            lab.faults.set(SERVICE, dc, "down")

        # The gateway's own recovery.
        gateway = Gateway(catalog_file, config_file, f"sqlite:///{directory / 'own.db'}")
        port = await gateway.start()
        began = time.monotonic()
        keys = set(await _journal_writes(lab, port, action, writes, "own"))
        results["accepted_per_s"] = writes / (time.monotonic() - began)
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - began)))
        _, metrics = await _call(port, "GET", "/metrics", b"", "")
        results["attempts_during_outage"] = _metric(metrics.decode(), "garde_journal_attempts")
        lab.faults.heal(service=SERVICE)
        results["own_first_s"], results["own_last_s"] = await _drain_times(lab, keys, timeout)
        await gateway.stop()

        # Baseline: the operator's replay --now, started at the heal.
        for dc in service.endpoints:
            lab.faults.set(SERVICE, dc, "down")
        journal = f"sqlite:///{directory / 'manual.db'}"
        gateway = Gateway(catalog_file, config_file, journal)
        port = await gateway.start()
        keys = set(await _journal_writes(lab, port, action, writes, "manual"))
        await gateway.stop()  # nothing replays but the operator's command
        lab.faults.heal(service=SERVICE)
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "garde", "journal", "replay", "--now", "--journal", journal,
            "--catalog", str(catalog_file), "--config", str(config_file),
            "--timeout", str(int(timeout)),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "GARDE_JOURNAL_KEYS": KEYS},
        )  # fmt: skip
        waiting = asyncio.create_task(_drain_times(lab, keys, timeout))
        await replay.wait()
        results["manual_first_s"], results["manual_last_s"] = await waiting
        if replay.returncode != 0:
            raise RuntimeError(f"garde journal replay --now exited with {replay.returncode}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=5000)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the service is down")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    results = asyncio.run(run(args.writes, args.outage, args.timeout))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{args.writes} writes journaled at {results['accepted_per_s']:.0f}/s;")
    print(
        f"  attempts spent on them while the service was down ({args.outage:.0f} s):"
        f" {results['attempts_during_outage']:.0f}"
    )
    print(
        f"gateway's own recovery: first delivery {results['own_first_s']:.2f} s after the heal,"
        f" all delivered after {results['own_last_s']:.2f} s"
    )
    print(
        f"baseline, replay --now: first {results['manual_first_s']:.2f} s,"
        f" all after {results['manual_last_s']:.2f} s"
        f" (gateway / baseline: {results['own_last_s'] / results['manual_last_s']:.2f}x)"
    )


if __name__ == "__main__":
    main()
