"""SOAP on the wire, safely: garde's only XML reader, and its SOAP vocabulary.

Every part that reads XML calls this package (the gateway, the journal's sender, the lab's
services, the monitor's probes and settings, the CLI): no other module parses XML, and a
test (``tests/test_soap_stack.py``) keeps it so. Here are the one hardened parser
(``parse_xml``: size bounded, UTF-8 only, no DTD, no entity, no network), the one
``Envelope`` (``parse_envelope``), the one fault reader (``read_fault``,
``Envelope.fault``), the STS codec (``token_request``, ``read_token_response``; the SAML
1.1 exchange and its XML signatures in ``garde.soap.saml``), the WS-Security rewrites
(``with_token``, ``with_security``, ``without_security``) and the reading of a caller's
security header (``security_of``). Whatever is wrong with a message is a
``MalformedMessage`` (``garde.errors``); lxml's errors never leave the package.

Building XML may stay where it is built; the builders every part shares are here too.
"""

from __future__ import annotations

from garde.soap.build import build_envelope, build_fault, business_fault, security_header
from garde.soap.contracts import MAX_CONTRACT_BYTES, rebase_contract
from garde.soap.envelope import (
    Envelope,
    Fault,
    XPathKey,
    body_bytes,
    parse_envelope,
    read_fault,
    with_security,
    with_token,
    without_security,
)
from garde.soap.names import (
    CONTENT_TYPE,
    DSIG_NS,
    GARDE_LAB_NS,
    MAX_MESSAGE_BYTES,
    SAML1_NS,
    SAML2_NS,
    SOAP12_ENV_NS,
    SOAP_ENV_NS,
    STS_NS,
    TOKEN_VALUE_TYPE,
    WSSE_NS,
    WSU_NS,
    local_name,
    qn,
)
from garde.soap.parser import (
    Element,
    check_charset,
    check_encoding,
    check_envelope,
    first_body_child,
    indented,
    parse_xml,
)
from garde.soap.saml import (
    REQUEST_SECURE_TOKEN,
    SAMLP1_NS,
    AssertionFacts,
    Credentials,
    SignatureRejected,
    TokenQuery,
    assertion_response,
    read_token_query,
    status_response,
    verify_assertion,
)
from garde.soap.sts import (
    IssuedToken,
    legacy_token_request,
    read_token_response,
    session_credentials,
    token_request,
    utc_instant,
)
from garde.soap.wssec import SecurityHeader, security_of

__all__ = [
    "CONTENT_TYPE",
    "DSIG_NS",
    "GARDE_LAB_NS",
    "MAX_CONTRACT_BYTES",
    "MAX_MESSAGE_BYTES",
    "REQUEST_SECURE_TOKEN",
    "SAML1_NS",
    "SAML2_NS",
    "SAMLP1_NS",
    "SOAP12_ENV_NS",
    "SOAP_ENV_NS",
    "STS_NS",
    "TOKEN_VALUE_TYPE",
    "WSSE_NS",
    "WSU_NS",
    "AssertionFacts",
    "Credentials",
    "Element",
    "Envelope",
    "Fault",
    "IssuedToken",
    "SecurityHeader",
    "SignatureRejected",
    "TokenQuery",
    "XPathKey",
    "assertion_response",
    "body_bytes",
    "build_envelope",
    "build_fault",
    "business_fault",
    "check_charset",
    "check_encoding",
    "check_envelope",
    "first_body_child",
    "indented",
    "legacy_token_request",
    "local_name",
    "parse_envelope",
    "parse_xml",
    "qn",
    "read_fault",
    "read_token_query",
    "read_token_response",
    "rebase_contract",
    "security_header",
    "security_of",
    "session_credentials",
    "status_response",
    "token_request",
    "utc_instant",
    "verify_assertion",
    "with_security",
    "with_token",
    "without_security",
]
