"""Building SOAP 1.1: envelopes, the lab token's WS-Security header, faults."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from garde.soap.names import (
    BINARY_TOKEN,
    BODY,
    BUSINESS_ERROR,
    ENVELOPE,
    FAULT,
    GARDE_LAB_NS,
    HEADER,
    SECURITY,
    SOAP_ENV_NS,
    TOKEN_VALUE_TYPE,
    WSSE_NS,
)
from garde.soap.parser import Element, parse_xml

_PREFIXES = {"soap": SOAP_ENV_NS, "wsse": WSSE_NS, "garde": GARDE_LAB_NS}
"""Prefixes understood in fault codes written as ``prefix:Local``."""


def _nsmap(extra: dict[str, str] | None = None) -> dict[str, str]:
    nsmap: dict[str, str] = {"soap": SOAP_ENV_NS}
    if extra:
        nsmap.update(extra)
    return nsmap


def build_envelope(
    payload: Element | Iterable[Element] | None,
    *,
    header: Iterable[Element] = (),
) -> bytes:
    """A SOAP 1.1 envelope around ``payload`` (one element, several, or none), as UTF-8 bytes."""
    envelope = etree.Element(ENVELOPE, nsmap=_nsmap())
    headers = list(header)
    if headers:
        head = etree.SubElement(envelope, HEADER)
        head.extend(headers)
    body = etree.SubElement(envelope, BODY)
    if payload is not None:
        if isinstance(payload, etree._Element):
            body.append(payload)
        else:
            body.extend(payload)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def security_header(token: str) -> Element:
    """The ``wsse:Security`` header element carrying ``token``: an STS assertion (XML text,
    as ``IssuedToken.token`` holds it) as it is, or a lab token of the deprecated dialect in
    a ``wsse:BinarySecurityToken``."""
    security = etree.Element(SECURITY, nsmap={"wsse": WSSE_NS})
    if token.startswith("<"):
        security.append(parse_xml(token.encode(), max_bytes=None))
        return security
    element = etree.SubElement(security, BINARY_TOKEN, ValueType=TOKEN_VALUE_TYPE)
    element.text = token
    return security


def build_fault(code: str, string: str, *, detail: Iterable[Element] = ()) -> bytes:
    """A SOAP 1.1 Fault envelope. ``code`` is ``prefix:Local`` with prefix soap, wsse or garde.

    Answered with HTTP 500, as SOAP 1.1 over HTTP requires.
    """
    prefix, _, local = code.partition(":")
    if prefix not in _PREFIXES or not local:
        raise ValueError(f"fault code must be soap:, wsse: or garde: followed by a name: {code!r}")
    extra: dict[str, str] = {prefix: _PREFIXES[prefix]}
    envelope = etree.Element(ENVELOPE, nsmap=_nsmap(extra))
    body = etree.SubElement(envelope, BODY)
    fault = etree.SubElement(body, FAULT)
    # faultcode/faultstring/detail are unqualified in SOAP 1.1.
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = string
    details = list(detail)
    if details:
        etree.SubElement(fault, "detail").extend(details)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def business_fault(code: str, reason: str, detail: Iterable[etree._Element] = ()) -> bytes:
    """A ``soap:Client`` fault whose detail is ``<garde:BusinessError code=...>reason``, then
    ``detail`` (a service's own error elements, e.g. MyCareNet's acknowledge).

    A gateway or replayer reads it as a conflict: the service refused the write on purpose.
    """
    element = etree.Element(BUSINESS_ERROR, code=code, nsmap={"garde": GARDE_LAB_NS})
    element.text = reason
    return build_fault("soap:Client", reason, detail=[element, *detail])
