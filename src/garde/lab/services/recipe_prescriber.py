"""Recip-e prescriber v4: create, read, list, revoke prescriptions; notify; read feedback.

createPrescription checks the prescriber's NIHII, the patient's NISS, the KMEHR (a
``pharmaceuticalprescription`` for that patient with at least one ``medication`` item) and the
expiration date (default three months minus a day, at most a year), then assigns a new RID.
"""

from __future__ import annotations

import base64
from datetime import date, timedelta
from typing import Any

from garde.lab.kmehr import read_kmehr
from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, digest, operation, per_contract
from garde.lab.services.identifiers import INDIVIDUAL, check_nihii, check_niss
from garde.lab.services.recipe_common import (
    OPEN,
    PRESCRIPTION_FIELDS,
    RecipeService,
)

PRESCRIPTION_TYPES = ("P0", "P1")


def _default_expiry(today: date) -> date:
    # Three months minus a day, as the real service defaults.
    month = today.month + 3
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    day = today.day
    while True:
        try:
            return date(year, month, day) - timedelta(days=1)
        except ValueError:
            day -= 1


class RecipePrescriber(RecipeService):
    contract_only = (
        per_contract(
            "listRidsHistory",
            request=(f("PatientId"), f("StartDate", "date", optional=True)),
            response=(
                f("PatientId"),
                group("Rid", f("Rid"), f("Status"), f("CreationDate", "date"), many=True),
            ),
        ),
        per_contract(
            "putFeedbackFlag",
            request=(f("Rid"), f("FeedbackAllowed", "boolean")),
            response=(f("Rid"), f("FeedbackAllowed", "boolean")),
        ),
        per_contract(
            "putVisionForPrescriber",
            request=(f("Rid"), f("Vision")),
            response=(f("Rid"), f("Vision")),
        ),
        per_contract(
            "getValidationProperties",
            request=(f("PrescriptionType", optional=True),),
            response=(
                f("PrescriptionVersion"),
                f("KmehrVersion"),
                f("MaxValidityDays", "int"),
            ),
            PrescriptionVersion="4",
            KmehrVersion="1.19.0",
            MaxValidityDays=365,
        ),
    )

    @operation(
        "createPrescription",
        request=(
            f("PrescriberNihii"),
            f("PatientId"),
            f("PrescriptionType", optional=True),
            f("ExpirationDate", "date", optional=True),
            f("Prescription", "base64Binary"),
        ),
        response=(f("Rid"), f("CreationDate", "dateTime")),
    )
    def create_prescription(self, call: Call) -> dict[str, Any]:
        values = call.values
        prescriber = check_nihii(values["PrescriberNihii"], "prescriber", INDIVIDUAL)
        patient = check_niss(values["PatientId"])
        kind = values.get("PrescriptionType", "P1")
        if kind not in PRESCRIPTION_TYPES:
            raise BusinessFault(
                "INVALID_PRESCRIPTION_TYPE", f"PrescriptionType {kind!r} is not P0 or P1"
            )
        today = self.today()
        expires = values.get("ExpirationDate") or _default_expiry(today)
        if expires < today or expires > today + timedelta(days=366):
            raise BusinessFault(
                "INVALID_EXPIRATION_DATE",
                f"ExpirationDate {expires} must be between today and one year from now",
            )
        kmehr_bytes: bytes = values["Prescription"]
        kmehr = read_kmehr(kmehr_bytes, max_bytes=self.ctx.settings.max_body)
        if check_niss(kmehr.patient) != patient:
            raise BusinessFault(
                "PATIENT_MISMATCH", "the KMEHR patient is not the PatientId of the request"
            )
        transaction = kmehr.transactions[0]
        if (
            transaction.type != "pharmaceuticalprescription"
            or "medication" not in transaction.items
        ):
            raise BusinessFault(
                "INVALID_KMEHR",
                "expected a pharmaceuticalprescription transaction with a medication item",
            )
        rid = self.new_rid()
        created = self.now()
        record = {
            "rid": rid,
            "prescriber": prescriber,
            "patient": patient,
            "type": kind,
            "expires": expires.isoformat(),
            "status": OPEN,
            "executor": None,
            "generation": 0,
            "kmehr": base64.b64encode(kmehr_bytes).decode("ascii"),
            "created": created.isoformat(),
        }
        call.put("prescription", rid, record, owner=patient)
        # The same content created twice is a duplicate: the key is the content, not the RID.
        call.effect(
            "prescription.created",
            digest(prescriber, patient, kind, expires, kmehr_bytes),
            {"rid": rid},
        )
        return {"Rid": rid, "CreationDate": created}

    @operation("getPrescription", request=(f("Rid"),), response=PRESCRIPTION_FIELDS)
    def get_prescription(self, call: Call) -> dict[str, Any]:
        return self.describe(self.load(call.values["Rid"]))

    @operation("getPrescriptionStatus", request=(f("Rid"),), response=(f("Rid"), f("Status")))
    def get_prescription_status(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        return {"Rid": record["rid"], "Status": record["status"]}

    @operation("listOpenRids", request=(f("PatientId"),), response=(f("Rid", many=True),))
    def list_open_rids(self, call: Call) -> dict[str, Any]:
        return {"Rid": self.open_rids(check_niss(call.values["PatientId"]))}

    @operation(
        "revokePrescription",
        request=(f("Rid"), f("Reason", optional=True)),
        response=(f("Rid"), f("Status")),
    )
    def revoke_prescription(self, call: Call) -> dict[str, Any]:
        return self.revoke(call)

    @operation(
        "sendNotification",
        request=(f("Rid"), f("ExecutorNihii"), f("Content")),
        response=(f("NotificationId"),),
    )
    def send_notification(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        content = str(call.values["Content"])
        notification_id = digest(record["rid"], executor, content, self.ctx.clock())[:16]
        call.put(
            "notification",
            notification_id,
            {"rid": record["rid"], "executor": executor, "content": content},
            owner=executor,
        )
        call.effect("notification.sent", digest(record["rid"], executor, content))
        return {"NotificationId": notification_id}

    @operation(
        "listFeedbacks",
        request=(f("PrescriberNihii"),),
        response=(
            group(
                "Feedback",
                f("Rid"),
                f("ExecutorNihii"),
                f("Content"),
                f("CreationDate", "dateTime"),
                many=True,
            ),
        ),
    )
    def list_feedbacks(self, call: Call) -> dict[str, Any]:
        prescriber = check_nihii(call.values["PrescriberNihii"], "prescriber", INDIVIDUAL)
        feedbacks = self.records.by_owner("feedback", prescriber)
        return {
            "Feedback": [
                {
                    "Rid": fb["rid"],
                    "ExecutorNihii": fb["executor"],
                    "Content": fb["content"],
                    "CreationDate": fb["created"],
                }
                for fb in feedbacks
            ]
        }
