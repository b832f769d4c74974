"""A caller's ``wsse:Security`` header, read: its tokens, timestamp and signature.

What the header means (whose token, valid until when, whether a write can wait) is the
gateway's to decide (``garde.gateway.callers``); this module only reads the XML.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from garde.soap.envelope import Envelope
from garde.soap.names import (
    BINARY_TOKEN,
    DSIG_NS,
    SAML1_NS,
    SAML2_NS,
    SECURITY,
    WSU_NS,
    qn,
)
from garde.soap.parser import Element, parse_xml

_SIGNATURE = qn(DSIG_NS, "Signature")
_EXPIRES = f"{{{WSU_NS}}}Timestamp/{{{WSU_NS}}}Expires"
_SAML = tuple(
    (qn(ns, "Assertion"), qn(ns, "Conditions"), f".//{{{ns}}}Subject/{{{ns}}}{name}")
    for ns, name in ((SAML1_NS, "NameIdentifier"), (SAML2_NS, "NameID"))
)


class SecurityHeader:
    """The ``wsse:Security`` block of a parsed envelope, read on demand."""

    __slots__ = ("_element",)

    def __init__(self, element: Element) -> None:
        self._element = element

    @property
    def signed(self) -> bool:
        """A ``ds:Signature`` directly in ``wsse:Security``: the caller signed the message.

        One inside a SAML assertion is the STS's own (every assertion has one) and is not
        counted: it travels with the token unharmed.
        """
        return self._element.find(_SIGNATURE) is not None

    @property
    def expires(self) -> str | None:
        """The text of ``wsu:Timestamp/wsu:Expires``, as written (None without one)."""
        return self._element.findtext(_EXPIRES)

    def binary_tokens(self) -> Iterator[str]:
        """The text of every ``wsse:BinarySecurityToken`` in the header, stripped."""
        for binary in self._element.iter(BINARY_TOKEN):
            yield (binary.text or "").strip()

    def assertions(self) -> Iterator[tuple[str, str]]:
        """``(subject, NotOnOrAfter)`` of each SAML 1.1 assertion, then each SAML 2.0 one,
        that has ``Conditions`` and a subject's name (``NotOnOrAfter`` "" when absent)."""
        for assertion_tag, conditions_tag, subject_path in _SAML:
            for assertion in self._element.iter(assertion_tag):
                conditions = assertion.find(conditions_tag)
                subject = assertion.findtext(subject_path)
                if conditions is None or not subject or not subject.strip():
                    continue
                yield subject.strip(), conditions.get("NotOnOrAfter") or ""

    def token_count(self) -> int:
        """How many tokens the header holds: binary tokens and SAML 1.1/2.0 assertions."""
        tags = (BINARY_TOKEN, *(assertion for assertion, _, _ in _SAML))
        return sum(1 for _ in self._element.iter(*tags))

    def serialize(self) -> bytes:
        """The element alone, with the namespaces it uses from the envelope declared on it."""
        copy = parse_xml(etree.tostring(self._element), max_bytes=None)
        etree.cleanup_namespaces(copy)
        return bytes(etree.tostring(copy, encoding="utf-8"))


def security_of(envelope: Envelope) -> SecurityHeader | None:
    """The envelope's ``wsse:Security`` header block, if it has one."""
    header = envelope.header
    if header is None:
        return None
    security = header.find(SECURITY)
    return None if security is None else SecurityHeader(security)
