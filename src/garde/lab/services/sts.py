"""The IAM Secure Token Service: issues the tokens every other simulated service demands.

Contract (COMMON to lab and gateway): ``RequestSecurityTokenRequest`` with ``Identity`` and
``Credential type="eid|keystore"``; the answer carries ``Token``, ``NotBefore`` and
``NotOnOrAfter`` (ISO 8601 UTC). Tokens are HMAC-signed by the lab and expire after the lab's
configured validity, so drills can make expiry happen in minutes.
"""

from __future__ import annotations

from typing import Any

from garde.lab.schema import f
from garde.lab.services.base import BusinessFault, Call, SimulatedService, operation

CREDENTIAL_TYPES = ("eid", "keystore")


class Sts(SimulatedService):
    @operation(
        "requestSecurityToken",
        request=(f("Identity"), f("Credential", attributes=("type",))),
        response=(f("Token"), f("NotBefore"), f("NotOnOrAfter")),
        authenticated=False,
    )
    def request_security_token(self, call: Call) -> dict[str, Any]:
        identity = str(call.values["Identity"]).strip()
        credential = call.values["Credential"]
        kind = credential.get("type") or "eid"
        if not identity:
            raise BusinessFault("INVALID_IDENTITY", "Identity is empty: give the caller's id")
        if kind not in CREDENTIAL_TYPES:
            raise BusinessFault(
                "INVALID_CREDENTIAL_TYPE",
                f"Credential type {kind!r} is not one of {', '.join(CREDENTIAL_TYPES)}",
            )
        if not str(credential["value"]).strip():
            raise BusinessFault("FAILED_AUTHENTICATION", "the credential is empty")
        issued = self.ctx.tokens.issue(identity, kind)
        return {
            "Token": issued.token,
            "NotBefore": issued.not_before,
            "NotOnOrAfter": issued.not_on_or_after,
        }
