"""SOAP 1.1 on the wire, safely: parse untrusted XML, build envelopes and faults, read tokens.

Every part that touches the chain's messages goes through here (the lab's services, the
gateway, the monitor's probes), so there is one place where XML is parsed and it is parsed
defensively: size bounded before parsing, no DTD, no entity expansion, no network access.
lxml's errors never leave this module: they become ``MalformedMessage``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from lxml import etree

from garde.errors import MalformedMessage, MessageTooLarge

SOAP_ENV_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV_NS: Final = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
GARDE_LAB_NS: Final = "urn:garde:lab:v1"
STS_NS: Final = "urn:be:fgov:ehealth:sts:protocol:v1"
TOKEN_VALUE_TYPE: Final = "urn:garde:lab:token"  # noqa: S105 (a URN, not a secret)

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""The default bound on a message: the chain's requests are a few kilobytes (1 MiB is lavish)."""

CONTENT_TYPE: Final = "text/xml; charset=utf-8"


def qn(namespace: str, local: str) -> str:
    """A qualified name in Clark notation, ``{namespace}local``, as lxml writes tags."""
    return f"{{{namespace}}}{local}"


_PREFIXES: Final = {"soap": SOAP_ENV_NS, "wsse": WSSE_NS, "garde": GARDE_LAB_NS}
"""Prefixes understood in fault codes written as ``prefix:Local``."""

_ENVELOPE = qn(SOAP_ENV_NS, "Envelope")
_HEADER = qn(SOAP_ENV_NS, "Header")
_BODY = qn(SOAP_ENV_NS, "Body")
_FAULT = qn(SOAP_ENV_NS, "Fault")
_SECURITY = qn(WSSE_NS, "Security")
_BINARY_TOKEN = qn(WSSE_NS, "BinarySecurityToken")
_BUSINESS_ERROR = qn(GARDE_LAB_NS, "BusinessError")


def _parser() -> etree.XMLParser:
    # resolve_entities=False: no entity is ever expanded (billion laughs, XXE);
    # load_dtd/no_network: nothing is fetched; huge_tree=False keeps libxml2's depth and
    # text-size limits. A DTD is refused outright after parsing (see parse_xml).
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_LOCAL = threading.local()


def _thread_parser() -> etree.XMLParser:
    # One parser per thread: lxml parser objects keep state while they parse.
    parser: etree.XMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = _parser()
    return parser


def parse_xml(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> etree._Element:
    """The root element of ``data``; ``MalformedMessage`` if it is not safe, well-formed XML.

    ``MessageTooLarge`` if ``data`` is over ``max_bytes`` (checked before parsing).
    """
    if len(data) > max_bytes:
        raise MessageTooLarge(
            f"message of {len(data)} bytes is over the limit of {max_bytes} bytes;"
            " send a smaller message"
        )
    if not data.strip():
        raise MalformedMessage("empty message: expected a SOAP 1.1 envelope")
    try:
        root = etree.fromstring(data, _thread_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedMessage(f"malformed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. a declared encoding lxml does not accept
        raise MalformedMessage(f"malformed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedMessage(
            "a DTD (<!DOCTYPE ...>) is not allowed: send the envelope without a DOCTYPE"
        )
    # No entity reference can remain: without a DTD, an undeclared entity is a syntax error
    # (only the five predefined ones parse, and they are plain characters).
    return root


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed SOAP 1.1 envelope: its header (maybe absent) and body."""

    root: etree._Element
    header: etree._Element | None
    body: etree._Element

    @property
    def payload(self) -> etree._Element | None:
        """The first element of the body (the operation's request or response element)."""
        for child in self.body:
            if isinstance(child.tag, str):
                return child
        return None

    @property
    def payload_qname(self) -> str | None:
        """The first body element's name in Clark notation, ``{namespace}LocalName``."""
        payload = self.payload
        return None if payload is None else str(payload.tag)

    @property
    def token(self) -> str | None:
        """The lab token in ``wsse:Security/wsse:BinarySecurityToken``, or None if absent."""
        if self.header is None:
            return None
        # Plain iteration: cheaper than find() with its path parsing, on every request.
        for security in self.header:
            if security.tag == _SECURITY:
                for element in security:
                    if element.tag == _BINARY_TOKEN and element.text:
                        return element.text.strip()
        return None

    def fault(self) -> Fault | None:
        """The SOAP Fault in the body, if this envelope carries one."""
        payload = self.payload
        if payload is None or payload.tag != _FAULT:
            return None
        return _read_fault(payload)


def parse_envelope(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Parse a SOAP 1.1 envelope; ``MalformedMessage`` says what is wrong with it."""
    root = parse_xml(data, max_bytes=max_bytes)
    if root.tag != _ENVELOPE:
        if root.tag == qn(SOAP12_ENV_NS, "Envelope"):
            raise MalformedMessage(
                f"SOAP 1.2 envelope received: this service speaks SOAP 1.1 ({SOAP_ENV_NS})"
            )
        raise MalformedMessage(f"expected a SOAP 1.1 Envelope ({SOAP_ENV_NS}), got {root.tag}")
    header = None
    body = None
    for child in root:
        if child.tag == _HEADER and header is None and body is None:
            header = child
        elif child.tag == _BODY and body is None:
            body = child
    if body is None:
        raise MalformedMessage("the SOAP envelope has no Body")
    return Envelope(root=root, header=header, body=body)


def _nsmap(extra: dict[str, str] | None = None) -> dict[str, str]:
    nsmap: dict[str, str] = {"soap": SOAP_ENV_NS}
    if extra:
        nsmap.update(extra)
    return nsmap


def build_envelope(
    payload: etree._Element | Iterable[etree._Element] | None,
    *,
    header: Iterable[etree._Element] = (),
) -> bytes:
    """A SOAP 1.1 envelope around ``payload`` (one element, several, or none), as UTF-8 bytes."""
    envelope = etree.Element(_ENVELOPE, nsmap=_nsmap())
    headers = list(header)
    if headers:
        head = etree.SubElement(envelope, _HEADER)
        head.extend(headers)
    body = etree.SubElement(envelope, _BODY)
    if payload is not None:
        if isinstance(payload, etree._Element):
            body.append(payload)
        else:
            body.extend(payload)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def security_header(token: str) -> etree._Element:
    """The ``wsse:Security`` header element carrying a lab token."""
    security = etree.Element(_SECURITY, nsmap={"wsse": WSSE_NS})
    element = etree.SubElement(security, _BINARY_TOKEN, ValueType=TOKEN_VALUE_TYPE)
    element.text = token
    return security


def with_token(data: bytes, token: str, *, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """``data`` with its WS-Security token replaced by ``token`` (added if there was none).

    Journaled writes keep the business payload only: the token is attached at send time,
    because tokens expire and a replay may come hours later.
    """
    envelope = parse_envelope(data, max_bytes=max_bytes)
    header = envelope.header
    if header is None:
        header = etree.Element(_HEADER)
        envelope.root.insert(0, header)
    for old in header.findall(_SECURITY):
        header.remove(old)
    header.insert(0, security_header(token))
    return bytes(etree.tostring(envelope.root, xml_declaration=True, encoding="UTF-8"))


def without_token(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """``data`` without its WS-Security header: what a journal keeps of a write."""
    envelope = parse_envelope(data, max_bytes=max_bytes)
    if envelope.header is not None:
        for old in envelope.header.findall(_SECURITY):
            envelope.header.remove(old)
        if len(envelope.header) == 0:
            envelope.root.remove(envelope.header)
    return bytes(etree.tostring(envelope.root, xml_declaration=True, encoding="UTF-8"))


# -- faults ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP 1.1 Fault as read from an answer.

    ``code`` is the fault code in Clark notation (``{ns}Client``); ``local`` its local part.
    A business fault (the lab's ``garde:BusinessError`` detail) sets ``business_code``.
    """

    code: str
    local: str
    string: str
    business_code: str | None = None
    business_reason: str | None = None

    @property
    def is_client(self) -> bool:
        return self.code == qn(SOAP_ENV_NS, "Client")

    @property
    def is_server(self) -> bool:
        return self.code == qn(SOAP_ENV_NS, "Server")

    @property
    def is_business(self) -> bool:
        return self.business_code is not None


def _read_fault(element: etree._Element) -> Fault:
    raw_code = (element.findtext("faultcode") or "").strip()
    prefix, _, local = raw_code.rpartition(":")
    namespace = element.nsmap.get(prefix) if prefix else None
    if namespace is None and prefix:
        # The prefix may be declared higher up (on the Envelope): search the ancestors.
        for ancestor in element.iterancestors():
            if prefix in ancestor.nsmap:
                namespace = ancestor.nsmap[prefix]
                break
    code = qn(namespace, local) if namespace else local
    business = element.find(f"detail/{_BUSINESS_ERROR}")
    return Fault(
        code=code,
        local=local,
        string=(element.findtext("faultstring") or "").strip(),
        business_code=None if business is None else business.get("code"),
        business_reason=None if business is None else (business.text or "").strip(),
    )


def build_fault(code: str, string: str, *, detail: Iterable[etree._Element] = ()) -> bytes:
    """A SOAP 1.1 Fault envelope. ``code`` is ``prefix:Local`` with prefix soap, wsse or garde.

    Answered with HTTP 500, as SOAP 1.1 over HTTP requires.
    """
    prefix, _, local = code.partition(":")
    if prefix not in _PREFIXES or not local:
        raise ValueError(f"fault code must be soap:, wsse: or garde: followed by a name: {code!r}")
    extra: dict[str, str] = {prefix: _PREFIXES[prefix]}
    envelope = etree.Element(_ENVELOPE, nsmap=_nsmap(extra))
    body = etree.SubElement(envelope, _BODY)
    fault = etree.SubElement(body, _FAULT)
    # faultcode/faultstring/detail are unqualified in SOAP 1.1.
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = string
    details = list(detail)
    if details:
        etree.SubElement(fault, "detail").extend(details)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def business_fault(code: str, reason: str) -> bytes:
    """A ``soap:Client`` fault whose detail is ``<garde:BusinessError code=...>reason``.

    A gateway or replayer reads it as a conflict: the service refused the write on purpose.
    """
    element = etree.Element(_BUSINESS_ERROR, code=code, nsmap={"garde": GARDE_LAB_NS})
    element.text = reason
    return build_fault("soap:Client", reason, detail=[element])


# -- the token contract (lab STS) ------------------------------------------------------------


def token_request(identity: str, credential: str, kind: str = "keystore") -> bytes:
    """The envelope of ``sts.requestSecurityToken`` for ``identity``."""
    request = etree.Element(qn(STS_NS, "RequestSecurityTokenRequest"), nsmap={"sts": STS_NS})
    etree.SubElement(request, qn(STS_NS, "Identity")).text = identity
    etree.SubElement(request, qn(STS_NS, "Credential"), type=kind).text = credential
    return build_envelope(request)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as the STS issued it, with its validity window as ISO 8601 UTC strings."""

    token: str
    not_before: str
    not_on_or_after: str


def read_token_response(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> IssuedToken:
    """The token in an STS answer; ``MalformedMessage`` if the answer carries none."""
    envelope = parse_envelope(data, max_bytes=max_bytes)
    fault = envelope.fault()
    if fault is not None:
        raise MalformedMessage(f"the STS answered a fault: {fault.local}: {fault.string}")
    payload = envelope.payload
    if payload is None or payload.tag != qn(STS_NS, "RequestSecurityTokenResponse"):
        raise MalformedMessage("expected sts:RequestSecurityTokenResponse in the STS answer")
    token = payload.findtext(qn(STS_NS, "Token"))
    not_before = payload.findtext(qn(STS_NS, "NotBefore"))
    not_after = payload.findtext(qn(STS_NS, "NotOnOrAfter"))
    if not token or not not_before or not not_after:
        raise MalformedMessage("the STS answer lacks Token, NotBefore or NotOnOrAfter")
    return IssuedToken(token.strip(), not_before.strip(), not_after.strip())
