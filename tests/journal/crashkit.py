"""kill -9 under load: a real gateway process, the lab's services and its ledger.

Shared by the e2e test (about 20 kills) and ``python -m bench.journal --crash 100``. The
service (eHealthBox) is down in every data center, so every write is journaled; the gateway
is killed with SIGKILL at random moments while clients keep writing; at the end the service
comes back, a last gateway drains the journal, and the lab's ledger must hold every write a
client saw acknowledged (202) exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from garde import soap
from garde.catalog import Catalog
from garde.drill import GatewayProcess, eid_identity, gateway_files
from garde.lab import Lab

SENDER = "20012385001"
RECIPIENT = "10012378004"
SERVICE = "ehbox-publication"
OPERATION = "sendMessage"
BOX = "ehbox"
"""eHealthBox consultation: where the recipient reads what ``SERVICE`` stored."""
BOX_PATH = "/ehBoxConsultation/v3"


@dataclass
class CrashReport:
    kills: int = 0
    sent: int = 0
    acknowledged: list[str] = field(default_factory=list)
    refused: int = 0
    """Answers other than 202 (503 while the journal could not persist, connection cut...)."""
    missing: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    drained_in: float = 0.0
    replay_output: str = ""


def write_files(lab: Lab, catalog: Catalog, directory: Path) -> tuple[Path, Path]:
    """The lab's catalog, and a GP's gateway holding the sender's eID."""
    settings = {
        "target_group": "gp",
        "health_interval": "200ms",
        "identities": eid_identity(SENDER),
    }
    return gateway_files(directory, catalog, settings, endpoints=lab.endpoints)


def message(lab: Lab, n: int) -> bytes:
    contract = next(c for c in lab.simulators[SERVICE].contracts.values() if c.id == OPERATION)
    ns = contract.namespace
    element = etree.Element(soap.qn(ns, contract.request_element))
    for name, value in (
        ("RecipientType", "NIHII"),
        ("Recipient", RECIPIENT),
        ("Subject", f"lab result {n}"),
        ("Content", "cmVzdWx0"),
    ):
        etree.SubElement(element, soap.qn(ns, name)).text = value
    return soap.build_envelope(element)


async def post(
    port: int,
    body: bytes,
    key: str,
    action: str,
    identity: str | None = SENDER,
    path: str = "/ehBoxPublication/v3",
) -> int:
    """One call over a fresh connection; the HTTP status, or 0 if the connection failed.
    ``identity`` None: no ``Garde-Identity`` (the body carries the caller's own token)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            who = f"Garde-Identity: {identity}\r\n" if identity else ""
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                f'SOAPAction: "{action}"\r\nPrefer: respond-async\r\n{who}'
                f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head + body)
            status_line = await reader.readline()
            return int(status_line.split()[1])
    except (OSError, TimeoutError, IndexError, ValueError, asyncio.IncompleteReadError):
        return 0
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def crash_run(
    lab: Lab,
    catalog: Catalog,
    directory: Path,
    *,
    kills: int,
    clients: int = 8,
    seed: int = 5,
    journal: str | None = None,
    lease: float = 3.0,
    progress: Callable[[str], None] = lambda text: None,
) -> CrashReport:
    rng = random.Random(seed)
    catalog_file, config_file = write_files(lab, catalog, directory)
    journal = journal or f"sqlite:///{directory / 'journal.db'}"
    service = catalog.services[SERVICE]
    action = service.soap_action_of(service.operations[OPERATION]) or ""
    for dc in service.endpoints:
        lab.faults.set(SERVICE, dc, "down")
    report = CrashReport()
    # A killed gateway may die holding leases on entries it was sending; they go to the
    # next replayer only once they run out. Short leases (and sends that give up before
    # them, as the policy demands) keep the recovery at the end from idling for a minute.
    gateway = GatewayProcess(
        catalog_file,
        config_file,
        journal,
        env={"GARDE_REPLAY_LEASE": f"{lease}s", "GARDE_REPLAY_SEND_TIMEOUT": f"{lease / 2}s"},
    )
    port = await gateway.start()
    counter = iter(range(10**9))

    async def client(k: int) -> None:
        while True:
            n = next(counter)
            key = f"crash-{seed}-{n}"
            report.sent += 1
            status = await post(port_box[0], message(lab, n), key, action)
            if status == 202:
                report.acknowledged.append(key)
            else:
                report.refused += 1
                await asyncio.sleep(0.05)  # the gateway is restarting: do not spin

    port_box = [port]
    tasks = [asyncio.create_task(client(k)) for k in range(clients)]
    try:
        for kill in range(kills):
            # A random moment of load, then kill -9 in the middle of whatever it was doing.
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            await gateway.kill()
            report.kills = kill + 1
            port_box[0] = await gateway.start()
            progress(f"kill {kill + 1}/{kills}: {len(report.acknowledged)} acknowledged")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # The service comes back. The gateway would drain the journal itself once the back-off
    # the failures earned has passed (30 s); the operator's `replay --now` does not wait.
    await gateway.stop()
    lab.faults.heal(service=SERVICE)
    wanted = set(report.acknowledged)
    started = time.monotonic()
    replay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "garde", "journal", "replay", "--now", "--journal", journal,
        "--journal-no-encryption", "--catalog", str(catalog_file), "--config", str(config_file),
        "--timeout", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await replay.communicate()
    report.replay_output = output.decode(errors="replace")[-2000:]
    report.drained_in = time.monotonic() - started
    counts: dict[str, int] = {}
    for effect in lab.ledger.effects(service=SERVICE):
        if effect.idempotency_key is not None:
            counts[effect.idempotency_key] = counts.get(effect.idempotency_key, 0) + 1
    report.missing = sorted(k for k in wanted if counts.get(k, 0) == 0)
    report.doubled = sorted(k for k, n in counts.items() if n > 1)
    return report
