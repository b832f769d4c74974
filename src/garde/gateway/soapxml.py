"""Deprecated: the gateway's SOAP reader is now ``garde.soap``, the one XML stack (issue 15).

Kept so that code outside garde importing these names still runs; garde itself imports
``garde.soap``, and this module parses nothing. ``Envelope`` is ``garde.soap.Envelope``: its
first body element is ``payload`` (``operation_element`` is gone). Remove after 0.2.
"""

from __future__ import annotations

from garde import soap
from garde.soap import (
    TOKEN_VALUE_TYPE,
    Envelope,
    XPathKey,
    body_bytes,
    check_charset,
    check_encoding,
    check_envelope,
    first_body_child,
    with_security,
    with_token,
    without_security,
)

SOAP11 = soap.SOAP_ENV_NS
SOAP12 = soap.SOAP12_ENV_NS
WSSE = soap.WSSE_NS

__all__ = [
    "SOAP11",
    "SOAP12",
    "TOKEN_VALUE_TYPE",
    "WSSE",
    "Envelope",
    "XPathKey",
    "body_bytes",
    "check_charset",
    "check_encoding",
    "check_envelope",
    "fault_of",
    "first_body_child",
    "parse_envelope",
    "with_security",
    "with_token",
    "without_security",
]


def parse_envelope(data: bytes) -> Envelope:
    """``garde.soap.parse_envelope`` as the gateway calls it: SOAP 1.1 or 1.2, no size bound
    (the gateway bounded the body as it read it)."""
    return soap.parse_envelope(data, max_bytes=None)


def fault_of(body: bytes) -> tuple[str, str, str | None] | None:
    """``(faultcode, faultstring, business code)`` of ``garde.soap.read_fault``."""
    fault = soap.read_fault(body, max_bytes=None)
    return None if fault is None else (fault.raw_code, fault.string, fault.business_code)
