"""MyCareNet eFact (GenAsync): post an invoice batch now, get its acknowledgement later.

postRequest stores the batch and answers a reference at once; the acknowledgement appears on
getRequest only after the lab's ``efact_ack_delay``, as the real asynchronous flow; the sender
then confirms it with confirmRequest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from garde.lab.schema import f
from garde.lab.services.base import BusinessFault, Call, SimulatedService, digest, operation
from garde.lab.services.identifiers import check_nihii
from garde.masking import mask

RECEIVED = "received"
ACKNOWLEDGED = "acknowledged"
CONFIRMED = "confirmed"


class EFact(SimulatedService):
    def _load(self, reference: str) -> dict[str, Any]:
        record = self.records.get("batch", reference)
        if record is None:
            raise BusinessFault("REQUEST_UNKNOWN", f"no eFact request {mask(reference)}")
        if record["status"] == RECEIVED and (
            self.ctx.clock() >= record["posted"] + self.ctx.settings.efact_ack_delay
        ):
            record["status"] = ACKNOWLEDGED
        return record

    @operation(
        "postRequest",
        request=(f("SenderNihii"), f("Batch", "base64Binary")),
        response=(f("Reference"), f("Status")),
        published="post",
    )
    def post_request(self, call: Call) -> dict[str, Any]:
        sender = check_nihii(call.values["SenderNihii"], "sender")
        batch: bytes = call.values["Batch"]
        if not batch.strip():
            raise BusinessFault("INVALID_BATCH", "the invoice batch is empty")
        reference = "EF" + digest(sender, batch, self.ctx.clock())[:14].upper()
        call.put(
            "batch",
            reference,
            {"sender": sender, "size": len(batch), "posted": self.ctx.clock(), "status": RECEIVED},
            owner=sender,
        )
        call.effect("invoice.posted", digest(sender, batch), {"reference": reference})
        return {"Reference": reference, "Status": RECEIVED}

    @operation(
        "getRequest",
        request=(f("Reference"),),
        response=(
            f("Reference"),
            f("Status"),
            f("AcknowledgedAt", "dateTime", optional=True),
        ),
        published="get",
    )
    def get_request(self, call: Call) -> dict[str, Any]:
        record = self._load(str(call.values["Reference"]))
        acknowledged = None
        if record["status"] != RECEIVED:
            at = record["posted"] + self.ctx.settings.efact_ack_delay
            acknowledged = datetime.fromtimestamp(at, self.ctx.tz())
        return {
            "Reference": call.values["Reference"],
            "Status": record["status"],
            "AcknowledgedAt": acknowledged,
        }

    @operation(
        "confirmRequest",
        request=(f("Reference"),),
        response=(f("Reference"), f("Status")),
        published="confirm",
    )
    def confirm_request(self, call: Call) -> dict[str, Any]:
        reference = str(call.values["Reference"])
        record = self._load(reference)
        if record["status"] == RECEIVED:
            raise BusinessFault(
                "NOT_ACKNOWLEDGED", f"eFact request {mask(reference)} is not acknowledged yet"
            )
        if record["status"] != CONFIRMED:
            record["status"] = CONFIRMED
            call.put("batch", reference, record, owner=record["sender"])
            call.effect("invoice.confirmed", reference)
        return {"Reference": reference, "Status": CONFIRMED}
