"""eHealthBox v3: a care providers' mailbox; send now (publication), read later (consultation).

The box belongs to the identity of the caller's STS token: a message sent to recipient R is
listed and read by a caller whose token was issued to R. Sending is store-and-forward, so a
gateway journals it freely.
"""

from __future__ import annotations

import base64
from typing import Any

from garde.lab.schema import f, group
from garde.lab.services.base import (
    BusinessFault,
    Call,
    SimulatedService,
    digest,
    operation,
    per_contract,
)
from garde.lab.services.identifiers import check_nihii, check_niss
from garde.masking import mask

BOXES = ("INBOX", "SENTBOX", "BININBOX", "BINSENTBOX")
RECIPIENT_TYPES = ("NIHII", "SSIN")
MAX_BOX_BYTES = 1_073_741_824
"""The lab's box size limit, as getBoxInfo reports it (nothing is refused for size)."""

_LISTED = group(
    "Message", f("MessageId"), f("Sender"), f("Subject"), f("Date", "dateTime"), many=True
)


class _Boxes(SimulatedService):
    """The store both eHealthBox services share: publication writes it, consultation reads it."""

    backend = "ehbox"

    def _message(self, call: Call) -> dict[str, Any]:
        message_id = str(call.values["MessageId"])
        record = self.records.get("message", message_id)
        # Someone else's message is "unknown", not "forbidden": do not confirm it exists.
        if record is None or record["box_owner"] != call.identity:
            raise BusinessFault("MESSAGE_UNKNOWN", f"no message {mask(message_id)} in your box")
        return record


class EHealthBoxPublication(_Boxes):
    """eHealthBox publication v3: send a message to a care provider's or patient's box."""

    @operation(
        "sendMessage",
        request=(
            f("RecipientType"),
            f("Recipient"),
            f("Subject"),
            f("Content", "base64Binary"),
        ),
        response=(f("MessageId"),),
    )
    def send_message(self, call: Call) -> dict[str, Any]:
        kind = str(call.values["RecipientType"])
        if kind == "NIHII":
            recipient = check_nihii(call.values["Recipient"], "recipient")
        elif kind == "SSIN":
            recipient = check_niss(call.values["Recipient"], "recipient")
        else:
            raise BusinessFault(
                "INVALID_RECIPIENT", f"RecipientType {kind!r} is not one of {RECIPIENT_TYPES}"
            )
        content: bytes = call.values["Content"]
        subject = str(call.values["Subject"])
        message_id = "MB" + digest(call.identity, recipient, content, self.ctx.clock())[:14]
        record = {
            "id": message_id,
            "sender": call.identity,
            "recipient": recipient,
            "box_owner": recipient,
            "box": "INBOX",
            "subject": subject,
            "content": base64.b64encode(content).decode("ascii"),
            "at": self.now().isoformat(timespec="seconds"),
        }
        call.put("message", message_id, record, owner=recipient)
        call.effect(
            "message.stored", digest(call.identity, recipient, subject, content), {"id": message_id}
        )
        return {"MessageId": message_id}


class EHealthBox(_Boxes):
    """eHealthBox consultation v3: the caller's own box."""

    contract_only = (
        per_contract(
            "getMessageHistory",
            request=(f("MessageId"),),
            response=(f("MessageId"), group("Event", f("Type"), f("Date", "dateTime"), many=True)),
        ),
        per_contract(
            "getMessageAcknowledgmentsStatus",
            request=(f("MessageId"),),
            response=(
                f("MessageId"),
                group("Acknowledgment", f("Recipient"), f("Received", "dateTime"), many=True),
            ),
        ),
        per_contract(
            "insertOoO",
            request=(f("StartDate", "date"), f("EndDate", "date"), f("Substitute", optional=True)),
            response=(f("OoOId"),),
        ),
        per_contract(
            "deleteOoO", request=(f("OoOId"),), response=(f("OoOId"), f("Status")), Status="deleted"
        ),
        per_contract(
            "getOoOList",
            request=(),
            response=(
                group("OoO", f("OoOId"), f("StartDate", "date"), f("EndDate", "date"), many=True),
            ),
        ),
    )

    def _in_box(self, call: Call, box: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.records.by_owner("message", call.identity or "")
            if m["box"] == box and m["box_owner"] == call.identity
        ]

    @operation(
        "getBoxInfo",
        request=(),
        response=(
            f("BoxId"),
            f("NbrMessagesInStandBy", "int"),
            f("CurrentSize", "int"),
            f("MaxSize", "int"),
        ),
    )
    def get_box_info(self, call: Call) -> dict[str, Any]:
        inbox = self._in_box(call, "INBOX")
        size = sum(len(base64.b64decode(m["content"])) for m in inbox)
        return {
            "BoxId": call.identity or "",
            "NbrMessagesInStandBy": 0,
            "CurrentSize": size,
            "MaxSize": MAX_BOX_BYTES,
        }

    @operation(
        "getAllEhboxesMessagesList",
        request=(f("Source", optional=True),),
        response=(_LISTED,),
    )
    def get_all_ehboxes_messages_list(self, call: Call) -> dict[str, Any]:
        """The caller's own box only: the lab gives an identity one box, not mandates."""
        return self.get_messages_list(call)

    @operation(
        "getMessagesList",
        request=(f("Source", optional=True),),
        response=(_LISTED,),
    )
    def get_messages_list(self, call: Call) -> dict[str, Any]:
        box = call.values.get("Source", "INBOX")
        if box not in BOXES:
            raise BusinessFault("INVALID_BOX", f"Source {box!r} is not one of {BOXES}")
        messages = self._in_box(call, box)
        return {
            "Message": [
                {
                    "MessageId": m["id"],
                    "Sender": m["sender"],
                    "Subject": m["subject"],
                    "Date": m["at"],
                }
                for m in messages
            ]
        }

    @operation(
        "getFullMessage",
        request=(f("MessageId"),),
        response=(
            f("MessageId"),
            f("Sender"),
            f("Subject"),
            f("Content", "base64Binary"),
        ),
    )
    def get_full_message(self, call: Call) -> dict[str, Any]:
        record = self._message(call)
        return {
            "MessageId": record["id"],
            "Sender": record["sender"],
            "Subject": record["subject"],
            "Content": base64.b64decode(record["content"]),
        }

    @operation(
        "moveMessage",
        request=(f("MessageId"), f("Destination")),
        response=(f("MessageId"), f("Box")),
    )
    def move_message(self, call: Call) -> dict[str, Any]:
        record = self._message(call)
        destination = str(call.values["Destination"])
        if destination not in BOXES:
            raise BusinessFault("INVALID_BOX", f"Destination {destination!r} is not one of {BOXES}")
        if record["box"] != destination:
            record["box"] = destination
            call.put("message", record["id"], record, owner=record["box_owner"])
            call.effect("message.moved", f"{record['id']}>{destination}")
        return {"MessageId": record["id"], "Box": destination}

    @operation("deleteMessage", request=(f("MessageId"),), response=(f("MessageId"), f("Status")))
    def delete_message(self, call: Call) -> dict[str, Any]:
        record = self._message(call)
        record["box_owner"] = None
        call.put("message", record["id"], record, owner=None)
        call.effect("message.deleted", record["id"])
        return {"MessageId": record["id"], "Status": "deleted"}
