"""MyCareNet eAttest v3: electronic certificates of care, sent on the day of care.

sendAttestation carries a KMEHR ``cga`` transaction whose date is the encounter date; an
encounter on any other day than today (in the lab's timezone) is refused with ``NOT_SAME_DAY``,
which is why a gateway may journal an eAttest only until midnight. cancelAttestation cancels
one by its id, once.
"""

from __future__ import annotations

from typing import Any

from garde.lab.kmehr import read_kmehr
from garde.lab.schema import f
from garde.lab.services.base import BusinessFault, Call, SimulatedService, digest, operation
from garde.lab.services.identifiers import check_nihii, check_niss
from garde.masking import mask


class EAttest(SimulatedService):
    @operation(
        "sendAttestation",
        request=(f("ProviderNihii"), f("Ssin"), f("Attestation", "base64Binary")),
        response=(f("AttestationId"), f("EncounterDate", "date"), f("Status")),
    )
    def send_attestation(self, call: Call) -> dict[str, Any]:
        provider = check_nihii(call.values["ProviderNihii"], "provider")
        niss = check_niss(call.values["Ssin"])
        data: bytes = call.values["Attestation"]
        kmehr = read_kmehr(data, max_bytes=self.ctx.settings.max_body)
        transaction = kmehr.transactions[0]
        if check_niss(kmehr.patient) != niss:
            raise BusinessFault("PATIENT_MISMATCH", "the KMEHR patient is not the Ssin")
        if transaction.type not in ("cga", "cgd") or "claim" not in transaction.items:
            raise BusinessFault(
                "INVALID_KMEHR", "expected a cga (or cgd) transaction with a claim item"
            )
        today = self.today()
        if transaction.date != today:
            raise BusinessFault(
                "NOT_SAME_DAY",
                f"an eAttest must be sent on the day of care: encounter {transaction.date},"
                f" today {today}; give the patient a paper certificate of care",
            )
        attestation_id = "EA" + digest(provider, niss, data, self.ctx.clock())[:14].upper()
        call.put(
            "attestation",
            attestation_id,
            {"provider": provider, "patient": niss, "date": today.isoformat(), "status": "sent"},
            owner=niss,
        )
        call.effect("attestation.recorded", digest(provider, niss, data), {"id": attestation_id})
        return {"AttestationId": attestation_id, "EncounterDate": today, "Status": "accepted"}

    @operation(
        "cancelAttestation",
        request=(f("AttestationId"), f("Reason", optional=True)),
        response=(f("AttestationId"), f("Status")),
    )
    def cancel_attestation(self, call: Call) -> dict[str, Any]:
        attestation_id = str(call.values["AttestationId"])
        record = self.records.get("attestation", attestation_id)
        if record is None:
            raise BusinessFault("ATTESTATION_UNKNOWN", f"no eAttest with id {mask(attestation_id)}")
        if record["status"] == "cancelled":
            raise BusinessFault(
                "ALREADY_CANCELLED", f"eAttest {mask(attestation_id)} was already cancelled"
            )
        record["status"] = "cancelled"
        call.put("attestation", attestation_id, record, owner=record["patient"])
        call.effect("attestation.cancelled", attestation_id)
        return {"AttestationId": attestation_id, "Status": "cancelled"}
