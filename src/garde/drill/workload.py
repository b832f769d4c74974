"""The care software of a drill: each site sends, through its gateways, the SOAP envelopes its
software sends, at the scenario's rate and mix, in sequences that make sense.

A prescription is created before it is read, and read before it is delivered; an eAttest is
sent on the day of care (the lab's today when it is sent), and cancelled by the invoicing
number its answer gave, for the same patient, with a reason; every write carries an
``Idempotency-Key``; a hospital sends its SUMEHRs for patients it has a therapeutic link
with. Every answer is kept as a ``Call`` (what the user saw); the report turns them into
outcomes, and the ledger says what became of the writes that were acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from lxml import etree

from garde import soap
from garde.catalog import Catalog
from garde.errors import GardeError
from garde.lab import kmehr

SERVED, FAILED_OVER, STALE = "served", "failed over", "stale read"
JOURNALED, DELIVERED = "journaled", "journaled then delivered"
REFUSED, CONFLICT, EXPIRED = "refused with procedure", "conflict", "expired"
ERROR, LOST = "error", "lost"
OUTCOMES = (SERVED, FAILED_OVER, DELIVERED, STALE, REFUSED, CONFLICT, EXPIRED, ERROR, LOST)
"""Every outcome a request can have in the report, in the order it shows them."""

GARDE_NS = b"urn:garde:gateway:v1"
PLAYED = (
    "recipe-prescriber.createPrescription",
    "recipe-prescriber.revokePrescription",
    "recipe-executor.getPrescriptionForExecutor",
    "recipe-executor.listOpenPrescriptions",
    "recipe-executor.markAsDelivered",
    "insurability.getInsurability",
    "eattest.sendAttestation",
    "eattest.cancelAttestation",
    "hub.putTransaction",
    "efact.postRequest",
)
"""The operations the workload knows how to play in a sequence that makes sense."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the care software saw it."""

    t: float
    """Seconds from the timeline's start when it was sent."""
    took: float
    site: str
    group: str
    gateway: str
    service: str
    operation: str
    status: int
    """HTTP status; 0 when no answer came (refused connection, timeout)."""
    outcome: str
    key: str | None = None
    receipt: str | None = None
    dc: str | None = None


def lab_today() -> date:
    """The lab's date of care: its clock in Brussels (an eAttest is sent on that day)."""
    return datetime.now(ZoneInfo("Europe/Brussels")).date()


def request_body(catalog: Catalog, service: str, operation: str, fields: dict[str, Any]) -> bytes:
    """The envelope care software sends for ``service.operation`` (no security header: the
    gateway adds the token of the ``Garde-Identity``)."""
    svc = catalog.services[service]
    spec = svc.operations.get(operation)
    if spec is not None:
        element_name = svc.body_element_of(spec)
    else:  # an operation the catalog does not list (the hub's putTherapeuticLink)
        element_name = f"{{{svc.namespace}}}{operation[:1].upper()}{operation[1:]}Request"
    if element_name is None or (svc.namespace is None and spec is None):
        raise GardeError(f"{service}.{operation} is not a SOAP operation")
    namespace = etree.QName(element_name).namespace or ""
    element = etree.Element(element_name)
    for name, value in fields.items():
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
        etree.SubElement(element, soap.qn(namespace, name)).text = text
    return soap.build_envelope(element)


def classify(status: int, headers: Any, body: bytes, primary: str) -> str:
    """The outcome of one answer, as the user saw it."""
    if status == 202:
        return JOURNALED
    if status == 200:
        if "Garde-Stale" in headers:
            return STALE
        dc = headers.get("Garde-Data-Center")
        return FAILED_OVER if dc is not None and dc != primary else SERVED
    if status == 503 and GARDE_NS in body:
        return REFUSED
    if status in (409, 500) and b"BusinessError" in body:
        return CONFLICT
    return ERROR


@dataclass
class Pool:
    """Prescriptions of the day, shared by the sites: created, then read, then delivered."""

    open: deque[str] = field(default_factory=deque)


class Site:
    """One copy of a site: its software, its provider, its gateways (used in turn)."""

    def __init__(
        self,
        *,
        name: str,
        group: str,
        identity: str,
        gateways: list[str],
        mix: dict[str, float],
        rate: float,
        think_time: float,
        catalog: Catalog,
        pool: Pool,
        patients: list[str],
        rng: random.Random,
        record: Any,
        clock: Any,
    ) -> None:
        self.name, self.group, self.identity = name, group, identity
        self.gateways = gateways
        self.ops, self.weights = list(mix), list(mix.values())
        self.rate, self.think_time = rate, think_time
        self.catalog, self.pool, self.patients, self.rng = catalog, pool, patients, rng
        self.record, self.clock = record, clock
        self.read: deque[str] = deque(maxlen=500)
        self.created: deque[str] = deque(maxlen=500)
        self.attested: deque[tuple[str, str]] = deque(maxlen=500)
        """(invoicing number, patient) of the eAttests this site sent and saw accepted."""
        self.turn = 0
        self.acts = 0
        self.today = lab_today()
        self.warming = False

    async def warm(self, session: aiohttp.ClientSession) -> None:
        """The morning before the drill: the software has looked up its regular patients'
        insurability (as it does when they come in), so the gateway has a recent answer."""
        if "insurability.getInsurability" not in self.ops:
            return
        self.warming = True
        try:
            # Through each gateway: each keeps its own last good answers.
            for gateway in self.gateways:
                for patient in self.patients:
                    fields = {"Ssin": patient}
                    await self.call(session, "insurability.getInsurability", fields, gateway)
        finally:
            self.warming = False

    def _gateway(self) -> str:
        self.turn += 1
        return self.gateways[self.turn % len(self.gateways)]

    async def call(
        self,
        session: aiohttp.ClientSession,
        operation: str,
        fields: dict[str, Any],
        gateway: str | None = None,
    ) -> tuple[str, bytes]:
        service, _, op = operation.partition(".")
        svc = self.catalog.services[service]
        spec = svc.operations[op]
        self.acts += 1
        write = spec.kind.value == "write"
        key = f"{self.name}-{op}-{self.acts}-{time.time_ns()}" if write else None
        headers = {
            "Content-Type": soap.CONTENT_TYPE,
            "SOAPAction": f'"{svc.soap_action_of(spec) or ""}"',
            # The drill's software is garde-aware: it reads receipts (202 with
            # garde:Journaled), whatever the catalog answers generated clients.
            "Prefer": "respond-async",
            "Garde-Identity": self.identity,
            "Garde-Target-Group": self.group,
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        gateway = gateway or self._gateway()
        body = request_body(self.catalog, service, op, fields)
        t, started = self.clock(), time.monotonic()
        status, data, reply_headers = 0, b"", {}
        # A blackholed data center holds a call until the gateway's own timeouts: longer
        # than the operation's, so that the client does not give up before garde does.
        timeout = aiohttp.ClientTimeout(total=svc.timeout_of(spec) * 3 + 5)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with session.post(
                gateway + svc.path_prefix, data=body, headers=headers, timeout=timeout
            ) as reply:
                data = await reply.read()
                status, reply_headers = reply.status, dict(reply.headers)
        outcome = classify(status, reply_headers, data, next(iter(svc.endpoints)))
        if self.warming:
            return outcome, data
        self.record(
            Call(
                t=t,
                took=time.monotonic() - started,
                site=self.name,
                group=self.group,
                gateway=gateway,
                service=service,
                operation=op,
                status=status,
                outcome=outcome,
                key=key,
                receipt=reply_headers.get("Garde-Receipt"),
                dc=reply_headers.get("Garde-Data-Center"),
            )
        )
        return outcome, data

    async def run(self, session: aiohttp.ClientSession, until: float, limit: int = 64) -> None:
        """Send until ``until`` (the clock's seconds), at most ``limit`` sequences in flight."""
        tasks: set[asyncio.Task[None]] = set()
        while self.clock() < until:
            if len(tasks) < limit:
                operation = self.rng.choices(self.ops, self.weights)[0]
                task = asyncio.create_task(self.act(session, operation))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            pause = self.rng.expovariate(self.rate)
            await asyncio.sleep(min(pause, max(0.0, until - self.clock())))
        if tasks:
            await asyncio.wait(tasks, timeout=60)

    async def think(self) -> None:
        if self.think_time:
            await asyncio.sleep(self.think_time)

    async def act(self, session: aiohttp.ClientSession, operation: str) -> None:
        """One business sequence ending with ``operation``."""
        patient = self.rng.choice(self.patients)
        me, n = self.identity, self.acts
        if operation == "recipe-executor.markAsDelivered":
            rid = self.read.popleft() if self.read else await self._read_one(session)
            if rid is not None:
                await self.call(session, operation, {"Rid": rid, "ExecutorNihii": me})
        elif operation == "recipe-executor.getPrescriptionForExecutor":
            await self._read_one(session, keep="markAsDelivered" in " ".join(self.ops))
        elif operation == "recipe-executor.listOpenPrescriptions":
            await self.call(session, operation, {"PatientId": patient})
        elif operation == "recipe-prescriber.createPrescription":
            await self._create(session, patient)
        elif operation == "recipe-prescriber.revokePrescription":
            rid = self.created.popleft() if self.created else await self._create(session, patient)
            if rid is not None:
                await self.think()
                await self.call(session, operation, {"Rid": rid, "Reason": "dose changed"})
        elif operation == "insurability.getInsurability":
            await self.call(session, operation, {"Ssin": patient})
        elif operation == "eattest.sendAttestation":
            sent = await self._attest(session, patient)
            if sent is not None:
                self.attested.append(sent)  # for a later cancellation
        elif operation == "eattest.cancelAttestation":
            sent = (
                self.attested.popleft() if self.attested else await self._attest(session, patient)
            )
            if sent is not None:
                await self.think()
                number, patient = sent
                fields = {
                    "InvoicingNumber": number,
                    "Reason": "1",
                    "Ssin": patient,
                    "ProviderNihii": me,
                }
                await self.call(session, operation, fields)
        elif operation == "hub.putTransaction":
            document = kmehr.sumehr(me, patient, when=self.today, problem=f"problem {n}")
            await self.call(session, operation, {"Ssin": patient, "Transaction": document})
        elif operation == "efact.postRequest":
            batch = f"invoice batch {self.name} {n}".encode()
            await self.call(session, operation, {"SenderNihii": me, "Batch": batch})

    async def _read_one(self, session: aiohttp.ClientSession, keep: bool = False) -> str | None:
        if not self.pool.open:
            return None
        rid = self.pool.open.popleft()
        outcome, _ = await self.call(
            session, "recipe-executor.getPrescriptionForExecutor", {"Rid": rid}
        )
        if outcome not in (SERVED, FAILED_OVER, STALE):
            # Not read, so not dispensed: the prescription stays for another try.
            self.pool.open.append(rid)
            return None
        if keep:
            self.read.append(rid)
            return None
        await self.think()
        return rid

    async def _attest(self, session: aiohttp.ClientSession, patient: str) -> tuple[str, str] | None:
        """Send an eAttest for care given now; (invoicing number, patient) once accepted.

        The day of care is the lab's today at the time of sending, not when the drill began:
        an eAttest for another day is refused (MyCareNet codes 146, 191).
        """
        me, code = self.identity, f"{self.acts % 10**6:06d}"
        document = kmehr.attestation(me, patient, when=lab_today(), nomenclature=code)
        fields = {"ProviderNihii": me, "Ssin": patient, "Attestation": document}
        outcome, data = await self.call(session, "eattest.sendAttestation", fields)
        if outcome not in (SERVED, FAILED_OVER):
            return None  # journaled: no number yet, so nothing a cancellation could quote
        number = text_of(data, "InvoicingNumber")
        return None if number is None else (number, patient)

    async def _create(self, session: aiohttp.ClientSession, patient: str) -> str | None:
        me = self.identity
        document = kmehr.prescription(
            me, patient, when=self.today, posology=f"{self.acts + 1} tablet(s), {self.name}"
        )
        fields = {"PrescriberNihii": me, "PatientId": patient, "Prescription": document}
        outcome, data = await self.call(session, "recipe-prescriber.createPrescription", fields)
        if outcome not in (SERVED, FAILED_OVER):
            return None
        rid = rid_of(data)
        if rid is not None:
            self.pool.open.append(rid)
            self.created.append(rid)
        return rid


def rid_of(data: bytes) -> str | None:
    """The ``Rid`` of a createPrescription answer."""
    return text_of(data, "Rid")


def text_of(data: bytes, name: str) -> str | None:
    """The text of the first ``name`` element of an answer's body."""
    with contextlib.suppress(GardeError):
        payload = soap.parse_envelope(data).payload
        for element in payload.iter() if payload is not None else ():
            if isinstance(element.tag, str) and etree.QName(element).localname == name:
                return element.text
    return None
