"""The namespaces, qualified names and limits every part of garde shares about SOAP."""

from __future__ import annotations

from typing import Final

SOAP_ENV_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV_NS: Final = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
SAML1_NS: Final = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2_NS: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
GARDE_LAB_NS: Final = "urn:garde:lab:v1"
STS_NS: Final = "urn:be:fgov:ehealth:sts:protocol:v1"
TOKEN_VALUE_TYPE: Final = "urn:garde:lab:token"  # noqa: S105 (a URN, not a secret)

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""The default bound on a message: the chain's requests are a few kilobytes (1 MiB is lavish)."""

CONTENT_TYPE: Final = "text/xml; charset=utf-8"


def qn(namespace: str, local: str) -> str:
    """A qualified name in Clark notation, ``{namespace}local``, as lxml writes tags."""
    return f"{{{namespace}}}{local}"


def local_name(tag: str) -> str:
    """The local part of a tag in Clark notation (``{ns}Local`` or ``Local``)."""
    return tag.rpartition("}")[2]


ENVELOPE: Final = qn(SOAP_ENV_NS, "Envelope")
HEADER: Final = qn(SOAP_ENV_NS, "Header")
BODY: Final = qn(SOAP_ENV_NS, "Body")
FAULT: Final = qn(SOAP_ENV_NS, "Fault")
ENVELOPE12: Final = qn(SOAP12_ENV_NS, "Envelope")
HEADER12: Final = qn(SOAP12_ENV_NS, "Header")
BODY12: Final = qn(SOAP12_ENV_NS, "Body")
FAULT12: Final = qn(SOAP12_ENV_NS, "Fault")
SECURITY: Final = qn(WSSE_NS, "Security")
BINARY_TOKEN: Final = qn(WSSE_NS, "BinarySecurityToken")
BUSINESS_ERROR: Final = qn(GARDE_LAB_NS, "BusinessError")
