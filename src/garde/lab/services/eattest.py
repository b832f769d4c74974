"""MyCareNet eAttest v3: electronic certificates of care, sent on the day of care.

The rules are those of the published eAttest error list (MyCareNet's ``CD-ERROR-MYCARENET``
codes, as open-source connectors map them):

- sendAttestation carries a KMEHR ``cga`` transaction whose date is the day of care. A date
  after today is refused with code 146, a date before today with 191 (in the lab's timezone):
  an eAttest is sent on the day of care, which is why a gateway may journal one only until
  midnight. The answer's ``InvoicingNumber`` (MyCareNet's receipt number) is what a
  cancellation quotes.
- cancelAttestation (MyCareNet's ``cgacancellation``) needs that invoicing number (100 when
  missing, 141 when unknown) and a reason (100 when missing); the number must be the same
  patient's (244) and the same provider's (245); a cancelled eAttest cannot be cancelled again
  (240), nor one whose day of care is more than ``CANCEL_WINDOW_DAYS`` old (239).

A refusal is a ``soap:Client`` fault whose ``garde:BusinessError`` names the lab's code (what
a gateway reads as a conflict), followed by the MyCareNet acknowledge: ``Iscomplete`` false and
one ``Error`` with its ``Code`` and the ``Url`` (the XPath, in the KMEHR request, of what was
wrong).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from lxml import etree

from garde.lab.kmehr import read_kmehr
from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, SimulatedService, digest, operation
from garde.lab.services.identifiers import check_nihii, check_niss
from garde.masking import mask

NAMESPACE = "urn:be:fgov:ehealth:mycarenet:attest:protocol:v3"
CANCEL_WINDOW_DAYS = 30
"""A lab choice: the published error list has "cancellation out of time" (239), not the window."""

_REQUEST = "/SendTransactionRequest/kmehrmessage/folder"
_CGA_DATE = f"{_REQUEST}/transaction[cga]/date"
_NUMBER = f"{_REQUEST}/transaction[cgacancellation]/item[invoicingnumber]"
_REASON = f"{_NUMBER}/content/cd[NIHDI-CANCELLATION-REASON]"


def refused(code: str, mycarenet: str, url: str, reason: str) -> BusinessFault:
    """A refusal as eAttest gives it: the lab's code, then MyCareNet's acknowledge."""
    acknowledge = etree.Element(etree.QName(NAMESPACE, "Acknowledge"), nsmap={"attest": NAMESPACE})
    etree.SubElement(acknowledge, etree.QName(NAMESPACE, "Iscomplete")).text = "false"
    error = etree.SubElement(acknowledge, etree.QName(NAMESPACE, "Error"))
    etree.SubElement(error, etree.QName(NAMESPACE, "Code"), S="CD-ERROR-MYCARENET").text = mycarenet
    etree.SubElement(error, etree.QName(NAMESPACE, "Url")).text = url
    etree.SubElement(error, etree.QName(NAMESPACE, "Description")).text = reason
    return BusinessFault(code, reason, (acknowledge,))


def _acknowledge() -> dict[str, Any]:
    return {"Iscomplete": True}


class EAttest(SimulatedService):
    @operation(
        "sendAttestation",
        request=(f("ProviderNihii"), f("Ssin"), f("Attestation", "base64Binary")),
        response=(
            group("Acknowledge", f("Iscomplete", "boolean")),
            f("InvoicingNumber"),
            f("AttestationId"),
            f("EncounterDate", "date"),
            f("Status"),
        ),
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
            care = transaction.date
            raise refused(
                "NOT_SAME_DAY",
                "100" if care is None else ("146" if care > today else "191"),
                _CGA_DATE,
                f"an eAttest must be sent on the day of care: care on {care or 'no date'},"
                f" today {today}; give the patient a paper certificate of care",
            )
        number = "EA" + digest(provider, niss, data, self.ctx.clock())[:14].upper()
        call.put(
            "attestation",
            number,
            {"provider": provider, "patient": niss, "date": today.isoformat(), "status": "sent"},
            owner=niss,
        )
        call.effect("attestation.recorded", digest(provider, niss, data), {"id": number})
        return {
            "Acknowledge": _acknowledge(),
            "InvoicingNumber": number,
            "AttestationId": number,
            "EncounterDate": today,
            "Status": "accepted",
        }

    @operation(
        "cancelAttestation",
        request=(
            f("InvoicingNumber", optional=True),
            f("AttestationId", optional=True),
            f("Reason", optional=True),
            f("Ssin", optional=True),
            f("ProviderNihii", optional=True),
        ),
        response=(
            group("Acknowledge", f("Iscomplete", "boolean")),
            f("InvoicingNumber"),
            f("AttestationId"),
            f("Status"),
        ),
    )
    def cancel_attestation(self, call: Call) -> dict[str, Any]:
        # AttestationId is the lab's first name for the invoicing number (kept for old callers).
        number = str(call.values.get("InvoicingNumber") or call.values.get("AttestationId") or "")
        if not number.strip():
            raise refused(
                "INVOICING_NUMBER_MISSING",
                "100",
                _NUMBER,
                "a cancellation quotes the InvoicingNumber that sendAttestation answered",
            )
        reason = str(call.values.get("Reason") or "").strip()
        if not reason:
            raise refused(
                "REASON_MISSING",
                "100",
                _REASON,
                "a cancellation gives a Reason (NIHDI-CANCELLATION-REASON)",
            )
        record = self.records.get("attestation", number)
        if record is None:
            raise refused(
                "ATTESTATION_UNKNOWN",
                "141",
                f"{_NUMBER}/content/text",
                f"no eAttest {mask(number)}",
            )
        given_patient = call.values.get("Ssin")
        if given_patient is not None and check_niss(given_patient) != record["patient"]:
            raise refused(
                "PATIENT_MISMATCH",
                "244",
                f"{_NUMBER}/content/text",
                f"eAttest {mask(number)} is not this patient's",
            )
        given_provider = call.values.get("ProviderNihii")
        if (
            given_provider is not None
            and check_nihii(given_provider, "provider") != record["provider"]
        ):
            raise refused(
                "AUTHOR_MISMATCH",
                "245",
                f"{_NUMBER}/content/text",
                f"eAttest {mask(number)} was sent by another provider",
            )
        if record["status"] == "cancelled":
            raise refused(
                "ALREADY_CANCELLED",
                "240",
                f"{_NUMBER}/content/text",
                f"eAttest {mask(number)} was already cancelled",
            )
        if self.today() - date.fromisoformat(record["date"]) > timedelta(days=CANCEL_WINDOW_DAYS):
            raise refused(
                "CANCEL_TOO_LATE",
                "239",
                f"{_NUMBER}/content/text",
                f"eAttest {mask(number)} is over {CANCEL_WINDOW_DAYS} days old: correct it on"
                " paper with the insurer",
            )
        record["status"] = "cancelled"
        record["reason"] = reason
        call.put("attestation", number, record, owner=record["patient"])
        call.effect("attestation.cancelled", number, {"reason": reason})
        return {
            "Acknowledge": _acknowledge(),
            "InvoicingNumber": number,
            "AttestationId": number,
            "Status": "cancelled",
        }
