"""KGSS: symmetric keys for sealing; Recip-e create needs a new one.

getNewKey creates a key (a business effect: the key must be found again by its id),
getKey returns it by identifier.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from garde.lab.schema import f
from garde.lab.services.base import BusinessFault, Call, SimulatedService, operation
from garde.masking import mask


class Kgss(SimulatedService):
    @operation(
        "getNewKey",
        request=(f("AllowedReader", many=True),),
        response=(f("KeyIdentifier"), f("Key", "base64Binary")),
        published="GetNewKey",
    )
    def get_new_key(self, call: Call) -> dict[str, Any]:
        key_id = secrets.token_hex(12)
        key = secrets.token_bytes(32)
        call.put(
            "key",
            key_id,
            {
                "key": base64.b64encode(key).decode("ascii"),
                "readers": call.values.get("AllowedReader", []),
            },
            owner=call.identity,
        )
        call.effect("key.created", key_id)
        return {"KeyIdentifier": key_id, "Key": key}

    @operation(
        "getKey",
        request=(f("KeyIdentifier"),),
        response=(f("KeyIdentifier"), f("Key", "base64Binary")),
        published="GetKey",
    )
    def get_key(self, call: Call) -> dict[str, Any]:
        key_id = str(call.values["KeyIdentifier"])
        record = self.records.get("key", key_id)
        if record is None:
            raise BusinessFault("KEY_UNKNOWN", f"no key {mask(key_id)}")
        return {"KeyIdentifier": key_id, "Key": base64.b64decode(record["key"])}
