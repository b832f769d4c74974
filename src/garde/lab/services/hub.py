"""A hub (RSW, RSB/Abrumet, Vitalink) with SumEHR: shared health records, behind consent.

Every transaction operation requires a therapeutic link between the caller (the identity of
its STS token) and the patient, declared with putTherapeuticLink as on the real hubs;
without one the hub answers ``NO_THERAPEUTIC_LINK``. The patient's consent is recorded and
read back (putPatientConsent, getPatientConsent, revokePatientConsent) but not yet required
before a read: a simplification that keeps older drills valid.

The published WSDL (intra-hub v3) has its target namespace in ``intrahub/protocol/v3`` and
its body elements in ``hubservices/protocol/v3``; operations are named with a capital.
"""

from __future__ import annotations

import base64
from typing import Any

from garde.lab.kmehr import read_kmehr
from garde.lab.schema import f, group
from garde.lab.services.base import (
    BusinessFault,
    Call,
    SimulatedService,
    digest,
    operation,
    per_contract,
)
from garde.lab.services.identifiers import check_niss
from garde.masking import mask

_PATIENT = (f("Ssin"),)
_HCPARTY = (f("HcpNihii"),)
_TRANSACTION_REF = (f("Ssin"), f("TransactionId"))


class Hub(SimulatedService):
    wsdl_namespace = "http://www.ehealth.fgov.be/intrahub/protocol/v3"
    capitalised_names = True
    contract_only = (
        per_contract(
            "getPatientAuditTrail",
            request=_PATIENT,
            response=(f("Ssin"), group("Event", f("Action"), f("Date", "dateTime"), many=True)),
        ),
        per_contract(
            "requestPublication", request=_TRANSACTION_REF, response=(f("TransactionId"),)
        ),
        per_contract(
            "declareTransaction", request=(f("Ssin"), f("Type")), response=(f("TransactionId"),)
        ),
        per_contract(
            "putPatient", request=_PATIENT, response=(f("Ssin"), f("Status")), Status="stored"
        ),
        per_contract("getPatient", request=_PATIENT, response=(f("Ssin"), f("InHub", "boolean"))),
        per_contract(
            "putHCParty", request=_HCPARTY, response=(f("HcpNihii"), f("Status")), Status="stored"
        ),
        per_contract("getHCParty", request=_HCPARTY, response=(f("HcpNihii"), f("Name"))),
        per_contract(
            "putHCPartyConsent",
            request=_HCPARTY,
            response=(f("HcpNihii"), f("Status")),
            Status="consented",
        ),
        per_contract(
            "getHCPartyConsent", request=_HCPARTY, response=(f("HcpNihii"), f("Consent", "boolean"))
        ),
        per_contract(
            "revokeHCPartyConsent",
            request=_HCPARTY,
            response=(f("HcpNihii"), f("Status")),
            Status="revoked",
        ),
        per_contract(
            "putAccessRight",
            request=(*_TRANSACTION_REF, f("HcpNihii")),
            response=(f("TransactionId"), f("Status")),
            Status="granted",
        ),
        per_contract(
            "getAccessRight",
            request=_TRANSACTION_REF,
            response=(f("TransactionId"), group("AccessRight", f("HcpNihii"), many=True)),
        ),
        per_contract(
            "revokeAccessRight",
            request=(*_TRANSACTION_REF, f("HcpNihii")),
            response=(f("TransactionId"), f("Status")),
            Status="revoked",
        ),
        per_contract(
            "putTransactionSet",
            request=(f("Ssin"), f("TransactionSet", "base64Binary")),
            response=(f("TransactionSetId"),),
        ),
        per_contract(
            "getTransactionSet",
            request=(f("Ssin"), f("TransactionSetId")),
            response=(f("TransactionSetId"), f("TransactionSet", "base64Binary")),
        ),
        per_contract(
            "getLatestUpdate", request=_PATIENT, response=(f("Ssin"), f("LatestUpdate", "dateTime"))
        ),
    )

    def _consent(self, niss: str) -> dict[str, Any] | None:
        record = self.records.get("consent", niss)
        return record if record is not None and not record.get("revoked") else None

    @operation("putPatientConsent", request=_PATIENT, response=(f("Ssin"), f("Status")))
    def put_patient_consent(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        if self._consent(niss) is None:
            signed = self.now().isoformat(timespec="seconds")
            call.put("consent", niss, {"patient": niss, "signed": signed, "by": call.identity})
            call.effect("consent.given", niss)
        return {"Ssin": niss, "Status": "consented"}

    @operation(
        "getPatientConsent",
        request=_PATIENT,
        response=(f("Ssin"), f("Consent", "boolean"), f("SignDate", "dateTime", optional=True)),
    )
    def get_patient_consent(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        consent = self._consent(niss)
        if consent is None:
            return {"Ssin": niss, "Consent": False}
        return {"Ssin": niss, "Consent": True, "SignDate": consent["signed"]}

    @operation("revokePatientConsent", request=_PATIENT, response=(f("Ssin"), f("Status")))
    def revoke_patient_consent(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        consent = self._consent(niss)
        if consent is None:
            raise BusinessFault("NO_CONSENT", f"patient {mask(niss)} has no consent to revoke")
        consent["revoked"] = True
        call.put("consent", niss, consent)
        call.effect("consent.revoked", niss)
        return {"Ssin": niss, "Status": "revoked"}

    @operation(
        "getTherapeuticLink",
        request=_PATIENT,
        response=(f("Ssin"), f("Linked", "boolean")),
    )
    def get_therapeutic_link(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        return {"Ssin": niss, "Linked": self._linked_to(call, niss)}

    @operation("revokeTherapeuticLink", request=_PATIENT, response=(f("Ssin"), f("Status")))
    def revoke_therapeutic_link(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        key = digest(call.identity, niss)
        record = self.records.get("link", key)
        if record is None or record.get("revoked"):
            raise BusinessFault(
                "NO_THERAPEUTIC_LINK", f"no therapeutic link with patient {mask(niss)} to revoke"
            )
        record["revoked"] = True
        call.put("link", key, record, owner=niss)
        call.effect("therapeutic_link.revoked", key)
        return {"Ssin": niss, "Status": "revoked"}

    def _linked_to(self, call: Call, niss: str) -> bool:
        record = self.records.get("link", digest(call.identity, niss))
        return record is not None and not record.get("revoked")

    def _linked(self, call: Call) -> str:
        niss = check_niss(call.values["Ssin"])
        if not self._linked_to(call, niss):
            raise BusinessFault(
                "NO_THERAPEUTIC_LINK",
                f"no therapeutic link between {mask(call.identity or '')} and patient"
                f" {mask(niss)}: declare one with putTherapeuticLink",
            )
        return niss

    def _transaction(self, niss: str, transaction_id: str) -> dict[str, Any]:
        record = self.records.get("transaction", transaction_id)
        if record is None or record["patient"] != niss:
            raise BusinessFault(
                "TRANSACTION_UNKNOWN", f"no transaction {mask(transaction_id)} for this patient"
            )
        return record

    @operation("putTherapeuticLink", request=(f("Ssin"),), response=(f("Ssin"), f("Status")))
    def put_therapeutic_link(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        key = digest(call.identity, niss)
        if not self._linked_to(call, niss):
            call.put("link", key, {"caregiver": call.identity, "patient": niss}, owner=niss)
            call.effect("therapeutic_link.created", key)
        return {"Ssin": niss, "Status": "linked"}

    @operation(
        "putTransaction",
        request=(f("Ssin"), f("Transaction", "base64Binary")),
        response=(f("TransactionId"),),
    )
    def put_transaction(self, call: Call) -> dict[str, Any]:
        niss = self._linked(call)
        data: bytes = call.values["Transaction"]
        kmehr = read_kmehr(data, max_bytes=self.ctx.settings.max_body)
        if check_niss(kmehr.patient) != niss:
            raise BusinessFault("PATIENT_MISMATCH", "the KMEHR patient is not the Ssin")
        transaction = kmehr.transactions[0]
        transaction_id = "TX" + digest(niss, data, self.ctx.clock())[:14].upper()
        call.put(
            "transaction",
            transaction_id,
            {
                "id": transaction_id,
                "patient": niss,
                "type": transaction.type,
                "date": transaction.date.isoformat() if transaction.date else None,
                "author": call.identity,
                "kmehr": base64.b64encode(data).decode("ascii"),
                "revoked": False,
            },
            owner=niss,
        )
        call.effect("transaction.stored", digest(niss, data), {"id": transaction_id})
        return {"TransactionId": transaction_id}

    @operation(
        "getTransaction",
        request=(f("Ssin"), f("TransactionId")),
        response=(f("TransactionId"), f("Type"), f("Transaction", "base64Binary")),
    )
    def get_transaction(self, call: Call) -> dict[str, Any]:
        record = self._transaction(self._linked(call), str(call.values["TransactionId"]))
        if record["revoked"]:
            raise BusinessFault("TRANSACTION_REVOKED", "this transaction was revoked")
        return {
            "TransactionId": record["id"],
            "Type": record["type"],
            "Transaction": base64.b64decode(record["kmehr"]),
        }

    @operation(
        "getTransactionList",
        request=(f("Ssin"),),
        response=(
            group(
                "Transaction",
                f("TransactionId"),
                f("Type"),
                f("Date", "date", optional=True),
                many=True,
            ),
        ),
    )
    def get_transaction_list(self, call: Call) -> dict[str, Any]:
        niss = self._linked(call)
        return {
            "Transaction": [
                {"TransactionId": r["id"], "Type": r["type"], "Date": r["date"]}
                for r in self.records.by_owner("transaction", niss)
                if not r["revoked"]
            ]
        }

    @operation(
        "revokeTransaction",
        request=(f("Ssin"), f("TransactionId")),
        response=(f("TransactionId"), f("Status")),
    )
    def revoke_transaction(self, call: Call) -> dict[str, Any]:
        niss = self._linked(call)
        record = self._transaction(niss, str(call.values["TransactionId"]))
        if record["revoked"]:
            raise BusinessFault("TRANSACTION_REVOKED", "this transaction was already revoked")
        record["revoked"] = True
        call.put("transaction", record["id"], record, owner=niss)
        call.effect("transaction.revoked", record["id"])
        return {"TransactionId": record["id"], "Status": "revoked"}
