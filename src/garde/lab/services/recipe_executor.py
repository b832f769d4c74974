"""Recip-e executor v4: read a prescription by RID, reserve, deliver, undo, archive, revoke.

markAsDelivered is the write a pharmacy's gateway journals during an outage, so its conflicts
are what a replay meets: the prescription was revoked, delivered elsewhere, expired, or is
being delivered by another executor. Each is a business fault naming the reason.
"""

from __future__ import annotations

from typing import Any

from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, digest, operation, per_contract
from garde.lab.services.identifiers import check_nihii, check_niss
from garde.lab.services.recipe_common import (
    DELIVERED,
    IN_PROCESS,
    OPEN,
    PRESCRIPTION_FIELDS,
    RecipeService,
)
from garde.masking import mask

MAX_RIDS_IN_PROCESS = 10


_RID_HISTORY = group("Rid", f("Rid"), f("Status"), f("CreationDate", "date"), many=True)


class RecipeExecutor(RecipeService):
    contract_only = (
        per_contract(
            "listRidsHistory",
            request=(f("PatientId"), f("StartDate", "date", optional=True)),
            response=(f("PatientId"), _RID_HISTORY),
        ),
        per_contract(
            "listReservations",
            request=(f("ExecutorNihii"),),
            response=(f("ExecutorNihii"), group("Reservation", f("Rid"), f("Status"), many=True)),
        ),
        per_contract(
            "listRelations",
            request=(f("ExecutorNihii"),),
            response=(
                f("ExecutorNihii"),
                group("Relation", f("PatientId"), f("Status"), many=True),
            ),
        ),
    )

    @operation("getPrescriptionForExecutor", request=(f("Rid"),), response=PRESCRIPTION_FIELDS)
    def get_prescription_for_executor(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        self.refuse_unless(record, OPEN, IN_PROCESS)
        return self.describe(record)

    @operation("getPrescriptionStatus", request=(f("Rid"),), response=(f("Rid"), f("Status")))
    def get_prescription_status(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        return {"Rid": record["rid"], "Status": record["status"]}

    @operation("listRidsInProcess", request=(f("ExecutorNihii"),), response=(f("Rid", many=True),))
    def list_rids_in_process(self, call: Call) -> dict[str, Any]:
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        rids = []
        for reservation in self.records.by_owner("reservation", executor):
            record = self.load(reservation["rid"])
            if record["status"] == IN_PROCESS and record["executor"] == executor:
                rids.append(record["rid"])
        return {"Rid": sorted(rids)}

    @operation(
        "listNotifications",
        request=(f("ExecutorNihii"),),
        response=(group("Notification", f("Rid"), f("Content"), many=True),),
    )
    def list_notifications(self, call: Call) -> dict[str, Any]:
        """What prescribers sent this pharmacy with sendNotification."""
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        found = self.records.by_owner("notification", executor)
        return {"Notification": [{"Rid": n["rid"], "Content": n["content"]} for n in found]}

    @operation("listOpenPrescriptions", request=(f("PatientId"),), response=(f("Rid", many=True),))
    def list_open_prescriptions(self, call: Call) -> dict[str, Any]:
        return {"Rid": self.open_rids(check_niss(call.values["PatientId"]))}

    @operation(
        "putRidsInProcess",
        request=(f("ExecutorNihii"), f("Rid", many=True)),
        response=(group("Result", f("Rid"), f("Status"), many=True),),
    )
    def put_rids_in_process(self, call: Call) -> dict[str, Any]:
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        rids: list[str] = call.values["Rid"]
        if not 1 <= len(rids) <= MAX_RIDS_IN_PROCESS:
            raise BusinessFault(
                "TOO_MANY_RIDS",
                f"put 1 to {MAX_RIDS_IN_PROCESS} RIDs in process at once, not {len(rids)}",
            )
        # All or nothing: a refused RID leaves the others untouched (the transaction rolls back).
        results = []
        for rid in rids:
            record = self.load(rid)
            if not (record["status"] == IN_PROCESS and record["executor"] == executor):
                self.refuse_unless(record, OPEN)
                record["status"] = IN_PROCESS
                record["executor"] = executor
                call.put("prescription", record["rid"], record, owner=record["patient"])
                call.put("reservation", record["rid"], {"rid": record["rid"]}, owner=executor)
                call.effect("prescription.in_process", f"{record['rid']}#{record['generation']}")
            results.append({"Rid": record["rid"], "Status": IN_PROCESS})
        return {"Result": results}

    @operation(
        "markAsDelivered",
        request=(f("Rid"), f("ExecutorNihii")),
        response=(f("Rid"), f("Status")),
    )
    def mark_as_delivered(self, call: Call) -> dict[str, Any]:
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        record = self.load(call.values["Rid"])
        if record["status"] == IN_PROCESS and record["executor"] != executor:
            self.refuse_unless(record)  # RID_IN_PROCESS: reserved by someone else
        self.refuse_unless(record, OPEN, IN_PROCESS)
        record["status"] = DELIVERED
        record["executor"] = executor
        record["generation"] += 1
        call.put("prescription", record["rid"], record, owner=record["patient"])
        # A delivery after an undelivery is a new generation: a legitimate second delivery.
        call.effect(
            "prescription.delivered",
            f"{record['rid']}#{record['generation']}",
            {"executor": mask(executor)},
        )
        return {"Rid": record["rid"], "Status": DELIVERED}

    @operation(
        "markAsUnDelivered",
        request=(f("Rid"), f("ExecutorNihii")),
        response=(f("Rid"), f("Status")),
    )
    def mark_as_undelivered(self, call: Call) -> dict[str, Any]:
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        record = self.load(call.values["Rid"])
        self.refuse_unless(record, DELIVERED)
        if record["executor"] != executor:
            raise BusinessFault(
                "DELIVERED_BY_ANOTHER_EXECUTOR",
                f"prescription {mask(record['rid'])} was delivered by another executor",
            )
        record["status"] = OPEN
        record["executor"] = None
        call.put("prescription", record["rid"], record, owner=record["patient"])
        call.effect("prescription.undelivered", f"{record['rid']}#{record['generation']}")
        return {"Rid": record["rid"], "Status": OPEN}

    @operation("markAsArchived", request=(f("Rid"),), response=(f("Rid"), f("Archived", "boolean")))
    def mark_as_archived(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        self.refuse_unless(record, DELIVERED)
        if not record.get("archived"):
            record["archived"] = True
            call.put("prescription", record["rid"], record, owner=record["patient"])
            call.effect("prescription.archived", record["rid"])
        return {"Rid": record["rid"], "Archived": True}

    @operation(
        "revokePrescription",
        request=(f("Rid"), f("Reason", optional=True)),
        response=(f("Rid"), f("Status")),
    )
    def revoke_prescription(self, call: Call) -> dict[str, Any]:
        return self.revoke(call)

    @operation(
        "createFeedback",
        request=(f("Rid"), f("ExecutorNihii"), f("Content")),
        response=(f("FeedbackId"),),
    )
    def create_feedback(self, call: Call) -> dict[str, Any]:
        record = self.load(call.values["Rid"])
        executor = check_nihii(call.values["ExecutorNihii"], "executor")
        content = str(call.values["Content"])
        now = self.now()
        feedback_id = digest(record["rid"], executor, content, now)[:16]
        call.put(
            "feedback",
            feedback_id,
            {
                "rid": record["rid"],
                "executor": executor,
                "content": content,
                "created": now.isoformat(timespec="seconds"),
            },
            owner=record["prescriber"],
        )
        call.effect("feedback.created", digest(record["rid"], executor, content))
        return {"FeedbackId": feedback_id}
