"""The ETK depot: each care provider's or organisation's public encryption token.

An ETK is long-lived, so the gateway may cache it. The lab derives a stable token per
identifier, and refuses identifiers that are not valid for their type.
"""

from __future__ import annotations

import hashlib
from typing import Any

from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, SimulatedService, operation
from garde.lab.services.identifiers import check_nihii, check_niss

IDENTIFIER_TYPES = ("NIHII", "SSIN", "CBE")


class EtkDepot(SimulatedService):
    @operation(
        "getEtk",
        request=(
            group("SearchCriteria", f("Type"), f("Value"), f("ApplicationId", optional=True)),
        ),
        response=(f("Type"), f("Value"), f("ETK", "base64Binary")),
        published="GetEtk",
        # The ETK depot is public: anyone may fetch a recipient's encryption token.
        authenticated=False,
    )
    def get_etk(self, call: Call) -> dict[str, Any]:
        criteria = call.values["SearchCriteria"]
        kind, value = str(criteria["Type"]), str(criteria["Value"])
        if kind == "NIHII":
            value = check_nihii(value)
        elif kind == "SSIN":
            value = check_niss(value, "owner")
        elif kind == "CBE":
            from stdnum.be import vat
            from stdnum.exceptions import ValidationError

            try:
                value = str(vat.compact(vat.validate(value)))
            except ValidationError:
                raise BusinessFault(
                    "INVALID_IDENTIFIER", "the CBE number is not valid (10 digits, mod-97 check)"
                ) from None
        else:
            raise BusinessFault(
                "INVALID_IDENTIFIER", f"Type {kind!r} is not one of {IDENTIFIER_TYPES}"
            )
        application = criteria.get("ApplicationId", "")
        etk = b"LAB-ETK\x00" + hashlib.sha256(f"{kind}:{value}:{application}".encode()).digest()
        return {"Type": kind, "Value": value, "ETK": etk}
