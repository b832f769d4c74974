"""Recip-e's shared backend: prescriptions and their lifecycle, seen by prescribers and executors.

Lifecycle, with Recip-e's status names: ``NotDelivered`` -> ``InProcess`` (an executor
reserved it) -> ``Delivered``; ``NotDelivered`` or ``InProcess`` -> ``Revoked``; past its
expiration date an undelivered prescription is ``Expired``. A delivered one can be marked
undelivered (back to ``NotDelivered``) by the executor who delivered it. Each conflict is a
business fault that names the reason, as the real service's.
"""

from __future__ import annotations

import base64
import secrets
from datetime import date
from typing import Any

from garde.lab.schema import f
from garde.lab.services.base import BusinessFault, Call, SimulatedService
from garde.lab.services.identifiers import RID_ALPHABET, check_rid
from garde.masking import mask

# The statuses as Recip-e names them (its prescriptionStatus); Archived is a flag here.
OPEN = "NotDelivered"
IN_PROCESS = "InProcess"
DELIVERED = "Delivered"
REVOKED = "Revoked"
EXPIRED = "Expired"


PRESCRIPTION_FIELDS = (
    f("Rid"),
    f("Status"),
    f("PatientId"),
    f("PrescriberNihii"),
    f("PrescriptionType"),
    f("ExpirationDate", "date"),
    f("Prescription", "base64Binary"),
)


class RecipeService(SimulatedService):
    """Base of both faces of Recip-e: one store of prescriptions."""

    backend = "recipe"

    def new_rid(self) -> str:
        """A fresh RID in the real format (``BEP0`` + 8), unique in the store."""
        while True:
            rid = "BEP0" + "".join(secrets.choice(RID_ALPHABET) for _ in range(8))
            if not self.records.exists("prescription", rid):
                return rid

    def status_of(self, record: dict[str, Any]) -> str:
        status = str(record["status"])
        if status in (OPEN, IN_PROCESS) and self.today() > date.fromisoformat(record["expires"]):
            return EXPIRED
        return status

    def load(self, rid: str) -> dict[str, Any]:
        record = self.records.get("prescription", check_rid(rid))
        if record is None:
            raise BusinessFault("RID_UNKNOWN", f"no prescription with RID {mask(rid)}")
        record["status"] = self.status_of(record)
        return record

    def describe(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "Rid": record["rid"],
            "Status": record["status"],
            "PatientId": record["patient"],
            "PrescriberNihii": record["prescriber"],
            "PrescriptionType": record["type"],
            "ExpirationDate": date.fromisoformat(record["expires"]),
            "Prescription": base64.b64decode(record["kmehr"]),
        }

    def open_rids(self, patient: str) -> list[str]:
        return [
            r["rid"]
            for r in self.records.by_owner("prescription", patient)
            if self.status_of(r) == OPEN
        ]

    def refuse_unless(self, record: dict[str, Any], *allowed: str) -> None:
        """A business fault naming why ``record`` cannot change now."""
        status = record["status"]
        if status in allowed:
            return
        rid = mask(record["rid"])
        reasons = {
            REVOKED: ("RID_REVOKED", f"prescription {rid} was revoked"),
            DELIVERED: ("ALREADY_DELIVERED", f"prescription {rid} was already delivered"),
            EXPIRED: ("RID_EXPIRED", f"prescription {rid} expired on {record['expires']}"),
            IN_PROCESS: (
                "RID_IN_PROCESS",
                f"prescription {rid} is being delivered by another executor",
            ),
            OPEN: ("NOT_DELIVERED", f"prescription {rid} is not delivered"),
        }
        code, reason = reasons[status]
        raise BusinessFault(code, reason)

    def revoke(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        self.refuse_unless(record, OPEN, IN_PROCESS)
        record["status"] = REVOKED
        record["revoked_reason"] = call.values.get("Reason", "")
        call.put("prescription", record["rid"], record, owner=record["patient"])
        call.effect("prescription.revoked", record["rid"], {"by": self.id})
        return {"Rid": record["rid"], "Status": REVOKED}
