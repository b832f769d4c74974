"""A hub (RSW, RSB/Abrumet, Vitalink) with SumEHR: shared health records, behind consent.

Every transaction operation requires a therapeutic link between the caller (the identity of
its STS token) and the patient, declared with putTherapeuticLink as on the real hubs;
without one the hub answers ``NO_THERAPEUTIC_LINK``.
"""

from __future__ import annotations

import base64
from typing import Any

from garde.lab.kmehr import read_kmehr
from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, SimulatedService, digest, operation
from garde.lab.services.identifiers import check_niss
from garde.masking import mask


class Hub(SimulatedService):
    def _linked(self, call: Call) -> str:
        niss = check_niss(call.values["Ssin"])
        if not self.records.exists("link", digest(call.identity, niss)):
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

    @operation(
        "putTherapeuticLink", request=(f("Ssin"),), response=(f("Ssin"), f("Status")), write=True
    )
    def put_therapeutic_link(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        key = digest(call.identity, niss)
        if not self.records.exists("link", key):
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
