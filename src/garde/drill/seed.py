"""The morning before the drill: what must exist in the chain before the sites start.

Prescriptions the pharmacies will read and deliver (made by a GP before the drill starts),
and the therapeutic links a hospital needs before it may store a SUMEHR. Sent straight to the
lab's services (primary data center, with an STS token), not through a gateway: this is the
state of the chain, not part of what is measured.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from garde import soap
from garde.catalog import Catalog
from garde.drill.workload import lab_today, request_body, rid_of
from garde.errors import DrillError
from garde.lab import kmehr

TIMEOUT = aiohttp.ClientTimeout(total=15)


class Direct:
    """Calls the lab's services as a client that holds its own tokens."""

    def __init__(
        self, session: aiohttp.ClientSession, catalog: Catalog, endpoints: dict[str, dict[str, str]]
    ) -> None:
        self.session, self.catalog, self.endpoints = session, catalog, endpoints
        self.tokens: dict[str, str] = {}

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            async with self.session.post(
                url, data=body, headers={"Content-Type": soap.CONTENT_TYPE, **headers},
                timeout=TIMEOUT,
            ) as reply:  # fmt: skip
                return reply.status, await reply.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DrillError(f"the lab did not answer at {url}: {exc}") from None

    async def token(self, identity: str) -> str:
        if identity not in self.tokens:
            sts = self.catalog.token_service
            service = sts.service if sts is not None else "sts"
            url = next(iter(self.endpoints[service].values()))
            request = await asyncio.to_thread(soap.token_request, identity)  # signing: off the loop
            status, body = await self._post(url, request, {"SOAPAction": soap.REQUEST_SECURE_TOKEN})
            if status != 200:
                raise DrillError(f"the lab's STS refused a token for the drill ({status})")
            self.tokens[identity] = soap.read_token_response(body).token
        return self.tokens[identity]

    async def call(
        self,
        identity: str,
        service: str,
        operation: str,
        fields: dict[str, Any],
        key: str | None = None,
    ) -> tuple[int, bytes]:
        """``service.operation`` on its primary data center; ``key`` as ``Idempotency-Key``."""
        token = await self.token(identity)
        body = request_body(self.catalog, service, operation, fields)
        body = soap.with_token(body, token)
        url = next(iter(self.endpoints[service].values()))
        headers = {"Idempotency-Key": key} if key else {}
        return await self._post(url, body, headers)


async def prescriptions(
    direct: Direct, prescriber: str, patients: list[str], count: int
) -> list[str]:
    """``count`` prescriptions of the day, each a different medicine dose (the same content
    twice would be one prescription made twice, which the ledger counts as doubled)."""
    today = lab_today()
    semaphore = asyncio.Semaphore(8)

    async def one(n: int) -> str | None:
        patient = patients[n % len(patients)]
        document = kmehr.prescription(
            prescriber, patient, when=today, posology=f"{n + 1} mg a day, morning round"
        )
        fields = {"PrescriberNihii": prescriber, "PatientId": patient, "Prescription": document}
        async with semaphore:
            status, body = await direct.call(
                prescriber, "recipe-prescriber", "createPrescription", fields
            )
        return rid_of(body) if status == 200 else None

    rids = await asyncio.gather(*(one(n) for n in range(count)))
    found = [rid for rid in rids if rid is not None]
    if count and not found:
        raise DrillError("the lab created none of the morning's prescriptions")
    return found


async def links(direct: Direct, identities: list[str], patients: list[str]) -> None:
    """A therapeutic link between each hospital identity and each patient."""
    semaphore = asyncio.Semaphore(8)

    async def one(identity: str, patient: str) -> None:
        async with semaphore:
            await direct.call(identity, "hub", "putTherapeuticLink", {"Ssin": patient})

    await asyncio.gather(*(one(i, p) for i in identities for p in patients))
