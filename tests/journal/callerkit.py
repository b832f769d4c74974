"""Care software that signs in itself: its own STS tokens, an outage, kill -9, expiry.

The 27 January 2020 incident, as a site lived it: eHealthBox is down in every data center,
so every message sent is journaled; each practice's software keeps its own STS token (from
the lab's STS, over HTTP, as a connector obtains it) and renews it when it runs out, while
the gateway is killed with SIGKILL at random moments. Tokens are short-lived, so the tokens
of the journaled writes have all expired when the service comes back: the gateway must set
them aside as ``needs_token`` (shown to the operator), and each practice's next call, with
a fresh token, must release its own writes, none of the others'. The lab's ledger counts
what arrived.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from garde import soap
from garde.catalog import Catalog
from garde.drill import GatewayProcess
from garde.lab import Lab
from tests.polling import until

from .crashkit import (
    BOX,
    BOX_PATH,
    OPERATION,
    SERVICE,
    message,
    post,
    write_files,
)

SUBJECTS = ("19012345001", "19012345002", "19012345003", "19012345004")
"""The practices: each signs in with its own identity."""
STS_ACTION = soap.REQUEST_SECURE_TOKEN


@dataclass
class CallerReport:
    kills: int = 0
    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    """Per subject, the idempotency keys of the writes acknowledged (202)."""
    sent: dict[str, list[str]] = field(default_factory=dict)
    """Per subject, every write sent (a kill may journal one whose 202 never arrived)."""
    refused: int = 0
    waiting_after_recovery: dict[str, int] = field(default_factory=dict)
    """Per state, the entries left once the gateway had replayed what it could."""
    listing: str = ""
    """``garde journal ls --state needs_token`` at that moment."""
    metrics: str = ""
    released_by_first: list[str] = field(default_factory=list)
    """Keys delivered after the first practice's call (must be exactly its own)."""
    missing: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)


class Practice:
    """One care provider's software: its identity and the token it got from the STS."""

    def __init__(self, lab: Lab, subject: str) -> None:
        self.subject = subject
        target = urlsplit(lab.endpoints["sts"]["dc1"])
        self.host = target.hostname or "127.0.0.1"
        self.port = target.port or 80
        self.path = target.path
        self.token: soap.IssuedToken | None = None
        self.logins = 0

    def _valid(self) -> bool:
        if self.token is None:
            return False
        _, until = self.token.window()
        return until - time.time() > 0.5

    async def sign_in(self) -> soap.IssuedToken:
        """The token this practice sends: reused while valid, else asked of the STS."""
        if self.token is not None and self._valid():
            return self.token
        body = soap.token_request(self.subject)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: text/xml\r\n"
                f'SOAPAction: "{STS_ACTION}"\r\nContent-Length: {len(body)}\r\n'
                "Connection: close\r\n\r\n".encode()
                + body
            )
            answer = await reader.read()
        finally:
            writer.close()
        self.token = soap.read_token_response(answer.split(b"\r\n\r\n", 1)[1])
        self.logins += 1
        return self.token

    async def signed(self, body: bytes) -> bytes:
        return soap.with_token(body, (await self.sign_in()).token)


def list_action_of(catalog: Catalog) -> str:
    box = catalog.services[BOX]
    return box.soap_action_of(box.operations["getMessagesList"]) or ""


def _list_request(lab: Lab) -> bytes:
    contract = next(c for c in lab.simulators[BOX].contracts.values() if c.id == "getMessagesList")
    return soap.build_envelope(etree.Element(soap.qn(contract.namespace, contract.request_element)))


def _delivered(lab: Lab) -> dict[str, int]:
    counts: dict[str, int] = {}
    for effect in lab.ledger.effects(service=SERVICE):
        if effect.idempotency_key is not None:
            counts[effect.idempotency_key] = counts.get(effect.idempotency_key, 0) + 1
    return counts


async def _get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        return (await reader.read()).split(b"\r\n\r\n", 1)[1].decode()
    finally:
        writer.close()


def _journal_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "garde", "journal", *args, "--journal-no-encryption"]


async def _journal_states(journal: str) -> dict[str, int]:
    """Entries per state, as ``garde journal ls --json`` counts them."""
    process = await asyncio.create_subprocess_exec(
        *_journal_cli("ls", "--json", "--journal", journal),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    states: dict[str, int] = {}
    for row in json.loads(output)["counts"]:
        states[row["state"]] = states.get(row["state"], 0) + int(row["count"])
    return states


async def caller_crash_run(
    lab: Lab,
    catalog: Catalog,
    directory: Path,
    *,
    kills: int,
    validity: float,
    seed: int = 11,
    progress: Callable[[str], None] = lambda text: None,
) -> CallerReport:
    """Run the scenario; ``validity`` must be the lab's token validity (seconds)."""
    rng = random.Random(seed)
    catalog_file, config_file = write_files(lab, catalog, directory)
    journal = f"sqlite:///{directory / 'journal.db'}"
    service = catalog.services[SERVICE]
    action = service.soap_action_of(service.operations[OPERATION]) or ""
    list_action = list_action_of(catalog)
    for dc in service.endpoints:
        lab.faults.set(SERVICE, dc, "down")
        lab.faults.set(BOX, dc, "down")
    report = CallerReport(acknowledged={s: [] for s in SUBJECTS}, sent={s: [] for s in SUBJECTS})
    practices = [Practice(lab, s) for s in SUBJECTS]
    gateway = GatewayProcess(
        catalog_file,
        config_file,
        journal,
        env={"GARDE_REPLAY_LEASE": "3s", "GARDE_REPLAY_SEND_TIMEOUT": "1.5s"},
    )
    port_box = [await gateway.start()]
    counter = iter(range(10**9))

    async def client(practice: Practice) -> None:
        while True:
            n = next(counter)
            key = f"caller-{seed}-{n}"
            body = await practice.signed(message(lab, n))
            report.sent[practice.subject].append(key)
            status = await post(port_box[0], body, key, action, identity=None)
            if status == 202:
                report.acknowledged[practice.subject].append(key)
            else:
                report.refused += 1
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(client(p)) for p in practices]
    try:
        for kill in range(kills):
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            await gateway.kill()
            report.kills = kill + 1
            port_box[0] = await gateway.start()
            progress(f"kill {kill + 1}/{kills}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    wanted = {k for keys in report.acknowledged.values() for k in keys}
    # Every token a journaled write carries runs out before the service is back.
    await asyncio.sleep(validity + 1.0)
    lab.faults.heal(service=SERVICE)
    lab.faults.heal(service=BOX)
    port = port_box[0]

    async def settled() -> bool:
        states = await _journal_states(journal)
        return sum(states.get(s, 0) for s in ("journaled", "delivering")) == 0

    deadline = time.monotonic() + 60
    while not await settled():
        assert time.monotonic() < deadline, "the journal did not settle after recovery"
        await asyncio.sleep(0.3)
    report.waiting_after_recovery = await _journal_states(journal)
    process = await asyncio.create_subprocess_exec(
        *_journal_cli("ls", "--state", "needs_token", "--journal", journal),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    report.listing = (await process.communicate())[0].decode()
    report.metrics = await _get(port, "/metrics")
    # The first practice calls again (a read of its box) with a fresh token.
    first = practices[0]
    before = set(_delivered(lab))
    await first.sign_in()
    status = await post(
        port,
        await first.signed(_list_request(lab)),
        "list-1",
        list_action,
        identity=None,
        path=BOX_PATH,
    )
    assert status == 200, status
    own = set(report.acknowledged[first.subject])
    await until(lambda: own <= set(_delivered(lab)), 30, "the first practice's writes")
    await asyncio.sleep(0.5)  # nothing else may follow
    report.released_by_first = sorted(set(_delivered(lab)) - before)
    for practice in practices[1:]:
        await practice.sign_in()
        body = await practice.signed(_list_request(lab))
        assert (
            await post(port, body, f"list-{practice.subject}", list_action, None, BOX_PATH) == 200
        )
    await until(lambda: wanted <= set(_delivered(lab)), 30, "every acknowledged write")
    await gateway.stop()
    counts = _delivered(lab)
    report.missing = sorted(k for k in wanted if counts.get(k, 0) == 0)
    report.doubled = sorted(k for k, n in counts.items() if n > 1)
    return report
