"""The STS codec: the request for a token, and the token read from the answer.

``token_request`` writes what connectors send to the eHealth STS (a SAML 1.1
``samlp:Request`` signed in WS-Security, see ``garde.soap.saml``); ``read_token_response``
reads the ``samlp:Response``: the assertion itself (what goes in ``wsse:Security``) and its
``Conditions NotBefore / NotOnOrAfter``. The lab's former dialect
(``RequestSecurityTokenRequest`` with ``Identity`` and ``Credential``, answered by
``Token``, ``NotBefore``, ``NotOnOrAfter``) is still read and written
(``legacy_token_request``) while it is deprecated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from garde.errors import MalformedMessage
from garde.soap.build import build_envelope
from garde.soap.envelope import parse_envelope
from garde.soap.names import MAX_MESSAGE_BYTES, STS_NS, qn
from garde.soap.saml import RESPONSE, Credentials, read_assertion_response, saml_token_request

_RESPONSE = qn(STS_NS, "RequestSecurityTokenResponse")
_FIELDS = {qn(STS_NS, name): name for name in ("Token", "NotBefore", "NotOnOrAfter")}


def token_request(
    identity: str, credentials: Credentials | None = None, *, now: datetime | None = None
) -> bytes:
    """The signed envelope of ``RequestSecureToken`` for ``identity`` (an SSIN, or the
    number the certificate stands for), as connectors send it.

    Without ``credentials`` the request is signed with this process's session certificate
    for ``identity`` (``session_credentials``): self-signed, which the lab accepts and the
    real STS does not.
    """
    return saml_token_request(identity, credentials or session_credentials(identity), now=now)


@functools.lru_cache(maxsize=256)
def session_credentials(identity: str, kind: str = "keystore") -> Credentials:
    """A self-signed certificate and key for ``identity``, made once per process and kind
    (a 2048-bit RSA key takes tens of milliseconds)."""
    return Credentials.self_signed(f"garde {kind} {identity}", serial_number=identity)


def legacy_token_request(identity: str, credential: str, kind: str = "keystore") -> bytes:
    """The lab's former dialect, deprecated: ``RequestSecurityTokenRequest``."""
    request = etree.Element(qn(STS_NS, "RequestSecurityTokenRequest"), nsmap={"sts": STS_NS})
    etree.SubElement(request, qn(STS_NS, "Identity")).text = identity
    etree.SubElement(request, qn(STS_NS, "Credential"), type=kind).text = credential
    return build_envelope(request)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as the STS issued it, with its validity window as ISO 8601 UTC strings.

    ``token`` is what goes in ``wsse:Security``: the STS's ``saml:Assertion`` as XML text
    (``assertion`` gives its bytes), or a lab token of the deprecated dialect.
    """

    token: str
    not_before: str
    not_on_or_after: str

    @property
    def assertion(self) -> bytes | None:
        """The SAML assertion's XML, or None for a lab token of the deprecated dialect."""
        return self.token.encode() if self.token.startswith("<") else None

    def window(self) -> tuple[float, float]:
        """``(not_before, not_on_or_after)`` as POSIX timestamps; ``MalformedMessage`` if
        either is not a time."""
        start, end = utc_instant(self.not_before), utc_instant(self.not_on_or_after)
        if start is None or end is None:
            raise MalformedMessage(
                f"the STS answer's NotBefore {self.not_before!r} or NotOnOrAfter"
                f" {self.not_on_or_after!r} is not an ISO 8601 time"
            )
        return start, end


def read_token_response(data: bytes, *, max_bytes: int | None = MAX_MESSAGE_BYTES) -> IssuedToken:
    """The token in an STS answer; ``MalformedMessage`` if the answer carries none."""
    envelope = parse_envelope(data, max_bytes=max_bytes)
    fault = envelope.fault()
    if fault is not None:
        raise MalformedMessage(f"the STS answered a fault: {fault.local}: {fault.string}")
    payload = envelope.payload
    if payload is not None and payload.tag == RESPONSE:
        assertion, start, end = read_assertion_response(payload)
        return IssuedToken(assertion.decode(), start, end)
    if payload is None or payload.tag != _RESPONSE:
        raise MalformedMessage(
            "expected samlp:Response (or the deprecated sts:RequestSecurityTokenResponse)"
            " in the STS answer"
        )
    found: dict[str, str] = {}
    for child in payload:
        name = _FIELDS.get(child.tag) if isinstance(child.tag, str) else None
        if name is not None and name not in found:
            found[name] = (child.text or "").strip()
    token, not_before, not_after = (found.get(n) for n in ("Token", "NotBefore", "NotOnOrAfter"))
    if not token or not not_before or not not_after:
        raise MalformedMessage("the STS answer lacks Token, NotBefore or NotOnOrAfter")
    return IssuedToken(token, not_before, not_after)


def utc_instant(text: str) -> float | None:
    """An ISO 8601 time as a POSIX timestamp (UTC when it names no zone), or None.

    WS-Security, SAML and the STS contract write their times in UTC.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
