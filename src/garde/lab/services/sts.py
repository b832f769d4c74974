"""The IAM Secure Token Service: issues the tokens every other simulated service demands.

Contract: the eHealth STS's (``garde.soap.saml``): a SAML 1.1 ``samlp:Request`` signed in
WS-Security with the caller's certificate, answered by a ``samlp:Response`` whose
``saml:Assertion`` (signed with the lab STS's key) holds ``Conditions NotBefore /
NotOnOrAfter``; the lab's configured validity sets that window, so drills can make expiry
happen in minutes. A bad signature or certificate gets a WS-Security SOAP fault
(``wsse:FailedCheck``, ``wsse:InvalidSecurityToken``, ``wsse:InvalidSecurity``); a request
the STS cannot answer, a ``samlp:Response`` with status ``samlp:Requester``.

Deprecated, still served: the lab's former dialect (``RequestSecurityTokenRequest`` with
``Identity`` and ``Credential type="eid|keystore"``, answered by ``Token``, ``NotBefore``
and ``NotOnOrAfter``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from garde import soap
from garde.errors import MalformedMessage
from garde.lab.http import Request, Response
from garde.lab.schema import f
from garde.lab.services.base import DC_HEADER, BusinessFault, Call, SimulatedService, operation

CREDENTIAL_TYPES = ("eid", "keystore")
_SAML_REQUEST = soap.SAMLP1_NS.encode()
REQUESTER = "samlp:Requester"


class Sts(SimulatedService):
    def handle(self, request: Request, dc: str) -> Response:
        if request.method == "POST" and _SAML_REQUEST in request.body:
            response = self._saml(request)
            response.headers.append((DC_HEADER, dc))
            return response
        return super().handle(request, dc)

    def _saml(self, request: Request) -> Response:
        """The real exchange: check the request's signature and certificate, then issue."""
        try:
            root = soap.parse_xml(request.body, max_bytes=self.ctx.settings.max_body)
            query = soap.read_token_query(root, now=datetime.fromtimestamp(self.ctx.clock(), UTC))
        except soap.SignatureRejected as exc:
            return Response(500, soap.build_fault(exc.code, exc.reason))
        except MalformedMessage as exc:
            return Response(exc.status, soap.build_fault("soap:Client", str(exc)))
        if not query.identity:
            now = datetime.fromtimestamp(self.ctx.clock(), UTC)
            message = (
                "the request asserts no urn:be:fgov:person:ssin (or certificate holder's"
                " ssin) attribute: say whose token it is"
            )
            return Response(
                200, soap.status_response(query.request_id, REQUESTER, message, now=now)
            )
        return Response(200, self.ctx.tokens.issue_assertion(query))

    @operation(
        "requestSecureToken",
        request=(f("AttributeQuery"),),
        response=(f("Status"), f("Assertion")),
        authenticated=False,
        published="RequestSecureToken",
    )
    def request_secure_token(self, call: Call) -> dict[str, Any]:
        """Described here for the WSDL and the catalog; served by ``_saml`` (``handle``
        takes every body in the SAML protocol namespace before the generic path)."""
        raise BusinessFault(
            "INVALID_REQUEST", "send a samlp:Request signed in WS-Security (see docs/lab.md)"
        )

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
