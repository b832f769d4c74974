"""The live part of ``garde demo``: a pharmacy and a GP practice through an outage.

The lab (the simulated chain) and a gateway with its journal run in this process; a
pharmacist's and a GP's software call the gateway as they would the chain. Recip-e's primary
data center fails, then every data center of Recip-e and MyCareNet, then all heal; after each
step the story says what the users got, and at the end it checks the lab's ledger: every
write the gateway acknowledged was applied exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree
from rich.console import Console
from rich.table import Table

from garde import soap
from garde.catalog import Catalog
from garde.lab import Lab, kmehr

GP = "10012378004"
PHARMACIST = "20012385001"


def _niss(born: str, serial: int) -> str:
    """A valid NISS for someone born in the 1900s (``YYMMDD``): 97 - (number mod 97)."""
    base = f"{born}{serial:03d}"
    return f"{base}{97 - int(base) % 97:02d}"


PATIENTS = (_niss("850730", 33), _niss("900101", 12), _niss("720215", 7))
RECIPE = ("recipe-prescriber", "recipe-executor")
MYCARENET = ("insurability", "eattest")


@dataclass
class Tally:
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    procedures: dict[str, str] = field(default_factory=dict)
    journaled: list[tuple[str, str]] = field(default_factory=list)
    """(receipt, idempotency key) of every write the gateway acknowledged with 202."""


def envelope(lab: Lab, service: str, operation: str, fields: dict[str, Any]) -> bytes:
    contract = next(c for c in lab.simulators[service].contracts.values() if c.id == operation)
    ns = contract.namespace
    element = etree.Element(soap.qn(ns, contract.request_element))
    for name, value in fields.items():
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
        etree.SubElement(element, soap.qn(ns, name)).text = text
    return soap.build_envelope(element)


class Desk:
    """One care provider's software, calling the gateway instead of the chain."""

    def __init__(
        self, who: str, identity: str, group: str, base: str, lab: Lab, catalog: Catalog
    ) -> None:
        self.who, self.identity, self.group = who, identity, group
        self.base, self.lab, self.catalog = base, lab, catalog
        self.counter = 0
        self.acts = 0
        """Care acts attested so far: each eAttest is for a different act."""

    async def call(
        self,
        session: aiohttp.ClientSession,
        tally: Tally,
        service: str,
        operation: str,
        fields: dict[str, Any],
    ) -> str | None:
        svc = self.catalog.services[service]
        action = svc.soap_action_of(svc.operations[operation]) or ""
        self.counter += 1
        key = f"{self.who}-{operation}-{self.counter}-{time.time_ns()}"
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{action}"',
            "Garde-Identity": self.identity,
            "Garde-Target-Group": self.group,
            "Idempotency-Key": key,
        }
        body = envelope(self.lab, service, operation, fields)
        async with session.post(self.base + svc.path_prefix, data=body, headers=headers) as reply:
            data = await reply.read()
            if reply.status == 202:
                outcome = "journaled with a receipt"
                tally.journaled.append((reply.headers.get("Garde-Receipt", "?"), key))
            elif reply.status == 200 and "Garde-Stale" in reply.headers:
                outcome = "stale (last good answer)"
            elif reply.status == 200 and reply.headers.get("Garde-Data-Center") not in (
                None,
                "dc1",
            ):
                outcome = f"failed over to {reply.headers['Garde-Data-Center']}"
            elif reply.status == 200:
                outcome = "served"
            elif reply.status == 503:
                outcome = "refused with the procedure"
                fault = soap.parse_envelope(data).fault()
                if fault is not None:
                    tally.procedures[f"{service}.{operation}"] = fault.string
            else:
                outcome = f"error {reply.status}"
            tally.outcomes[(self.who, operation, outcome)] += 1
            if reply.status == 200 and operation == "createPrescription":
                found = soap.parse_envelope(data).payload
                for element in found.iter() if found is not None else ():
                    if isinstance(element.tag, str) and etree.QName(element).localname == "Rid":
                        return element.text
            return None


async def work(
    pharmacist: Desk,
    gp: Desk,
    session: aiohttp.ClientSession,
    tally: Tally,
    rids: list[str],
    seconds: float,
) -> None:
    """A few seconds of a pharmacy's and a practice's day."""
    today = gp.lab.context.today()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        gp.acts += 1
        n = gp.acts
        patient = PATIENTS[n % len(PATIENTS)]
        calls = [
            gp.call(session, tally, "insurability", "getInsurability", {"Ssin": patient}),
            gp.call(
                session,
                tally,
                "eattest",
                "sendAttestation",
                {
                    "ProviderNihii": GP,
                    "Ssin": patient,
                    "Attestation": kmehr.attestation(
                        GP, patient, when=today, nomenclature=f"10{n:04d}"
                    ),
                },
            ),
            pharmacist.call(session, tally, "insurability", "getInsurability", {"Ssin": patient}),
        ]
        if rids and n % 2 == 0:  # a delivery every other round: prescriptions last the day
            rid = rids.pop()
            calls.append(
                pharmacist.call(
                    session, tally, "recipe-executor", "getPrescriptionForExecutor", {"Rid": rid}
                )
            )
            calls.append(
                pharmacist.call(
                    session,
                    tally,
                    "recipe-executor",
                    "markAsDelivered",
                    {"Rid": rid, "ExecutorNihii": PHARMACIST},
                )
            )
        await asyncio.gather(*calls, return_exceptions=True)
        await asyncio.sleep(0.25)  # the pace of a busy desk, not a load test


def show(out: Console, title: str, tally: Tally) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("who", "operation", "what they got", "times"):
        table.add_column(column)
    for (who, operation, outcome), count in sorted(tally.outcomes.items()):
        table.add_row(who, operation, outcome, str(count))
    out.print(table)
    for operation, text in sorted(tally.procedures.items()):
        out.print(f"  [yellow]{operation}[/]: {text}")


async def run_story(catalog: Catalog, lab: Lab, out: Console, minute: float) -> bool:
    """The story; True when the ledger shows nothing lost and nothing doubled."""
    from garde.gateway import Credential, GatewayConfig, IdentityConfig, RunningGateway
    from garde.journal import Keyring, ReplayPolicy, SqliteJournal

    chain = catalog.with_endpoints(lab.endpoints)
    identities = {who: IdentityConfig(Credential("eid", "1234")) for who in (GP, PHARMACIST)}
    config = GatewayConfig(port=0, identities=identities, health_interval=0.5)
    step = minute / 4
    with tempfile.TemporaryDirectory(prefix="garde-demo-") as tmp:
        journal = await SqliteJournal.open(
            Path(tmp) / "journal.db", Keyring({"demo": os.urandom(32)}, "demo")
        )
        policy = ReplayPolicy(poll_interval=0.2, backoff=0.5, backoff_max=2.0)
        async with RunningGateway(chain, config, journal, replay=policy) as running, \
                aiohttp.ClientSession() as session:  # fmt: skip
            pharmacist = Desk("pharmacist", PHARMACIST, "pharmacist", running.url, lab, catalog)
            gp = Desk("GP", GP, "gp", running.url, lab, catalog)
            setup = Tally()
            today = lab.context.today()
            rids: list[str] = []
            for n in range(int(minute * 1.2)):
                patient = PATIENTS[n % len(PATIENTS)]
                rid = await gp.call(
                    session,
                    setup,
                    "recipe-prescriber",
                    "createPrescription",
                    {
                        "PrescriberNihii": GP,
                        "PatientId": patient,
                        # Each a different medicine or dose: the same content twice
                        # would be the same prescription, which the ledger counts as doubled.
                        "Prescription": kmehr.prescription(
                            GP, patient, when=today, posology=f"{n + 1} tablet(s) a day"
                        ),
                    },
                )
                if rid:
                    rids.append(rid)
            out.print(
                f"garde gateway on {running.url}, lab on loopback; the GP prescribed"
                f" {len(rids)} prescriptions this morning.\n"
            )
            tally = Tally()
            await work(pharmacist, gp, session, tally, rids, step)
            show(out, "1. A normal morning: every service answers", tally)

            for service in RECIPE:
                lab.faults.set(service, "dc1", "down")
            tally = Tally()
            await work(pharmacist, gp, session, tally, rids, step)
            show(out, "2. Recip-e's primary data center fails", tally)

            for service in RECIPE + MYCARENET:
                for dc in chain.services[service].endpoints:
                    lab.faults.set(service, dc, "down")
            outage = Tally()
            await work(pharmacist, gp, session, outage, rids, step)
            show(out, "3. Every data center of Recip-e and MyCareNet fails", outage)
            out.print(
                f"  [bold]{len(outage.journaled)} writes journaled[/] (encrypted, on disk"
                " before the 202), each with a receipt the software can follow.\n"
            )

            lab.faults.heal()
            if running.replayer is not None:
                running.replayer.poke()
            # Timed from the healing, alongside the users' work: the replay runs meanwhile.
            draining = asyncio.create_task(_drained(journal, 60.0))
            tally = Tally()
            await work(pharmacist, gp, session, tally, rids, step)
            drained = await draining
            show(out, "4. The chain is back; garde drains its journal", tally)
            out.print(
                "  A data center that failed is not trusted at once: it returns to rotation"
                " when its ejection ends and one trial request succeeds (half-open breaker), so"
                " the first calls after an outage may still go to another data center.\n"
            )
            states: Counter[str] = Counter()
            for receipt_id, _ in outage.journaled:
                states[(await journal.receipt(receipt_id)).state.value] += 1
            return verdict(out, lab, outage, drained, await journal.depth(), states)


async def _drained(journal: Any, timeout: float) -> float:
    started = time.monotonic()
    while await journal.depth() and time.monotonic() - started < timeout:
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def verdict(
    out: Console, lab: Lab, outage: Tally, drained: float, depth: int, states: Counter[str]
) -> bool:
    applied = Counter(
        e.idempotency_key for e in lab.ledger.effects() if e.idempotency_key is not None
    )
    keys = [key for _, key in outage.journaled]
    lost = [k for k in keys if applied[k] == 0]
    doubled = [k for k in keys if applied[k] > 1]
    duplicates = lab.ledger.duplicates()
    ok = not lost and not doubled and not duplicates and depth == 0
    colour = "green" if ok else "red"
    receipts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    out.print(
        f"\n[bold {colour}]The journal drained {drained:.1f}s after the chain came back. Of"
        f" {len(keys)} writes"
        f" acknowledged during the outage, {len(keys) - len(lost)} reached the services,"
        f" {len(lost)} never did, {len(doubled)} were applied twice (receipts: {receipts});"
        f" the lab's ledger counts {len(duplicates)} business effects applied twice.[/]"
    )
    if ok:
        out.print(
            "Nothing the pharmacist or the GP did was lost, typed twice, or applied twice:"
            " checked against the lab's ground-truth ledger, not assumed."
        )
    return ok
