"""SOAP envelopes as read: the one ``Envelope``, its fault, and the WS-Security rewrites.

Rewriting is limited to what garde must do: attach a WS-Security token at send time and
strip it when journaling (a signed or timed token cannot be replayed hours later); the rest
of the message leaves as it came.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from garde.errors import MalformedMessage, UsageError
from garde.soap.build import security_header
from garde.soap.names import (
    BINARY_TOKEN,
    BODY,
    BODY12,
    ENVELOPE,
    ENVELOPE12,
    FAULT,
    FAULT12,
    HEADER,
    HEADER12,
    MAX_MESSAGE_BYTES,
    SAML1_NS,
    SECURITY,
    SOAP12_ENV_NS,
    SOAP_ENV_NS,
    local_name,
    qn,
)
from garde.soap.parser import Element, parse_xml

_ASSERTION = qn(SAML1_NS, "Assertion")


def _standalone(element: Element) -> str:
    copy = parse_xml(etree.tostring(element), max_bytes=None)
    etree.cleanup_namespaces(copy)
    return str(etree.tostring(copy, encoding="unicode"))


_PARTS = {ENVELOPE: (HEADER, BODY), ENVELOPE12: (HEADER12, BODY12)}


@dataclass(slots=True)
class Envelope:
    """A parsed SOAP 1.1 (or 1.2) envelope: its header (maybe absent), body, first element.

    Not frozen: it is built for every request the gateway parses, and a frozen dataclass
    costs more to build; only the rewrites below change it (``header`` when they add one).
    """

    root: Element
    header: Element | None
    body: Element
    payload: Element | None
    """The first element of the body (the operation's request or response element)."""

    @property
    def soap_namespace(self) -> str:
        return SOAP_ENV_NS if self.root.tag == ENVELOPE else SOAP12_ENV_NS

    @property
    def payload_qname(self) -> str | None:
        """The first body element's name in Clark notation, ``{namespace}LocalName``."""
        payload = self.payload
        return None if payload is None else str(payload.tag)

    @property
    def token(self) -> str | None:
        """The token in ``wsse:Security``: a SAML 1.1 assertion as XML text (with the
        namespaces it uses declared on it), else the lab token of the deprecated dialect in
        ``wsse:BinarySecurityToken``; None if there is neither."""
        if self.header is None:
            return None
        # Plain iteration: cheaper than find() with its path parsing, on every request.
        for security in self.header:
            if security.tag == SECURITY:
                binary = None
                for element in security:
                    if element.tag == _ASSERTION:
                        return _standalone(element)
                    if binary is None and element.tag == BINARY_TOKEN and element.text:
                        binary = element.text.strip()
                return binary
        return None

    def fault(self) -> Fault | None:
        """The SOAP Fault in the body, if this envelope carries one."""
        payload = self.payload
        if payload is None or (payload.tag != FAULT and payload.tag != FAULT12):
            return None
        return _read_fault(payload)


def parse_envelope(
    data: bytes, *, max_bytes: int | None = MAX_MESSAGE_BYTES, soap12: bool = True
) -> Envelope:
    """Parse a SOAP envelope; ``MalformedMessage`` says what is wrong with it.

    ``soap12=False`` refuses SOAP 1.2 (the lab's services speak 1.1 only; the gateway passes
    either on). An empty Body parses (``payload`` is None): what to answer is the reader's.
    """
    # Every body the gateway serves with ``xml_validation: full`` passes here: plain
    # iteration below, since find() parses its path and costs more than the loop over the
    # envelope's two or three children.
    if not data or data.isspace():
        raise MalformedMessage("the body is empty, not a SOAP Envelope")
    root = parse_xml(data, max_bytes=max_bytes)
    parts = _PARTS.get(root.tag)
    if parts is None or (not soap12 and root.tag == ENVELOPE12):
        if root.tag == ENVELOPE12:
            raise MalformedMessage(
                f"SOAP 1.2 envelope received: this service speaks SOAP 1.1 ({SOAP_ENV_NS})"
            )
        raise MalformedMessage(
            f"the document element is {root.tag!s}, not a SOAP Envelope (expected a SOAP 1.1"
            f" Envelope, {ENVELOPE})"
        )
    header_tag, body_tag = parts
    header = None
    body = None
    for child in root:
        tag = child.tag
        if tag == body_tag:
            if body is None:
                body = child
        elif tag == header_tag and header is None:
            header = child
    if body is None:
        raise MalformedMessage("the SOAP Envelope has no Body")
    # Comments and processing instructions have a function, not a string, as their tag.
    payload = None
    for child in body:
        if isinstance(child.tag, str):
            payload = child
            break
    return Envelope(root, header, body, payload)


# -- faults ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP Fault as read from an answer (1.1, or 1.2's Code/Reason).

    ``code`` is the fault code in Clark notation (``{ns}Client``), ``local`` its local part,
    ``raw_code`` as written (``soap:Client``). A business fault (a ``BusinessError`` in the
    detail, as the lab writes it) sets ``business_code``.
    """

    code: str
    local: str
    string: str
    business_code: str | None = None
    business_reason: str | None = None
    raw_code: str = ""

    @property
    def is_client(self) -> bool:
        return self.code in (qn(SOAP_ENV_NS, "Client"), qn(SOAP12_ENV_NS, "Sender"))

    @property
    def is_server(self) -> bool:
        return self.code in (qn(SOAP_ENV_NS, "Server"), qn(SOAP12_ENV_NS, "Receiver"))

    @property
    def is_business(self) -> bool:
        return self.business_code is not None


_CODE12 = f"{{{SOAP12_ENV_NS}}}Code/{{{SOAP12_ENV_NS}}}Value"
_REASON12 = f"{{{SOAP12_ENV_NS}}}Reason/{{{SOAP12_ENV_NS}}}Text"


def _read_fault(element: Element) -> Fault:
    # faultcode/faultstring are unqualified in SOAP 1.1.
    raw_code = (element.findtext("faultcode") or element.findtext(_CODE12) or "").strip()
    prefix, _, local = raw_code.rpartition(":")
    # lxml's nsmap holds every prefix in scope, the Envelope's too.
    namespace = element.nsmap.get(prefix) if prefix else None
    business = None
    for node in element.iter():
        if isinstance(node.tag, str) and local_name(node.tag) == "BusinessError":
            business = node
            break
    return Fault(
        code=qn(namespace, local) if namespace else local,
        local=local,
        string=(element.findtext("faultstring") or element.findtext(_REASON12) or "").strip(),
        business_code=None if business is None else business.get("code"),
        business_reason=None if business is None else (business.text or "").strip(),
        raw_code=raw_code,
    )


def read_fault(data: bytes, *, max_bytes: int | None = MAX_MESSAGE_BYTES) -> Fault | None:
    """The SOAP Fault that ``data`` carries; None if it carries none or is not SOAP."""
    if b"Fault" not in data:
        return None
    try:
        return parse_envelope(data, max_bytes=max_bytes).fault()
    except MalformedMessage:
        return None


# -- WS-Security rewrites --------------------------------------------------------------------


def _header_of(envelope: Envelope) -> Element:
    """The envelope's Header, added first in the Envelope if it has none."""
    header = envelope.header
    if header is None:
        header = etree.Element(qn(envelope.soap_namespace, "Header"))
        envelope.root.insert(0, header)
        envelope.header = header
    return header


def _serialized(envelope: Envelope) -> bytes:
    return bytes(etree.tostring(envelope.root, xml_declaration=True, encoding="utf-8"))


def _without(header: Element) -> None:
    for old in header.findall(SECURITY):
        header.remove(old)


def _envelope(message: Envelope | bytes, max_bytes: int | None) -> Envelope:
    if isinstance(message, Envelope):
        return message
    return parse_envelope(message, max_bytes=max_bytes)


def with_token(
    message: Envelope | bytes, token: str, *, max_bytes: int | None = MAX_MESSAGE_BYTES
) -> bytes:
    """The message with its WS-Security header replaced by one carrying ``token``.

    ``message`` is a parsed envelope (changed in place) or its bytes (parsed first).
    """
    envelope = _envelope(message, max_bytes)
    header = _header_of(envelope)
    _without(header)
    header.append(security_header(token))
    return _serialized(envelope)


def with_security(
    message: Envelope | bytes, security: bytes, *, max_bytes: int | None = MAX_MESSAGE_BYTES
) -> bytes:
    """The message with its WS-Security header replaced by ``security`` (a whole
    ``wsse:Security`` element, as a caller sent it); ``message`` as for ``with_token``."""
    envelope = _envelope(message, max_bytes)
    element = parse_xml(security, max_bytes=None)
    if element.tag != SECURITY:
        raise MalformedMessage(f"expected a wsse:Security element ({SECURITY}), got {element.tag}")
    header = _header_of(envelope)
    _without(header)
    header.append(element)
    return _serialized(envelope)


def without_security(
    message: Envelope | bytes, *, max_bytes: int | None = MAX_MESSAGE_BYTES
) -> bytes:
    """The business payload: the message minus any WS-Security header (tokens expire).

    The Header stays, empty if the token was all it held: journaled payloads have that
    shape, and the replayer splices a token into it without parsing.
    """
    envelope = _envelope(message, max_bytes)
    if envelope.header is not None:
        _without(envelope.header)
    return _serialized(envelope)


def body_bytes(envelope: Envelope) -> bytes:
    """The Body alone, canonical enough to key a cache (the header carries varying tokens)."""
    return bytes(etree.tostring(envelope.body, method="c14n"))


class XPathKey:
    """An XPath into the SOAP body (a key rule's), compiled once with its namespaces."""

    def __init__(self, expression: str, namespaces: dict[str, str]) -> None:
        self.expression = expression
        try:
            self._xpath = etree.XPath(expression, namespaces=namespaces)
        except etree.XPathSyntaxError as exc:
            raise UsageError(
                f"the XPath {expression!r} does not compile ({exc}): check its brackets, quotes"
                " and prefixes (XPath 1.0, prefixes from the service's namespaces)"
            ) from None

    def extract(self, envelope: Envelope) -> str | None:
        """The first match's text, stripped; None when nothing (or only blank) matches."""
        found = self._xpath(envelope.body)
        if isinstance(found, list):
            if not found:
                return None
            first = found[0]
            if isinstance(first, etree._Element):
                text = "".join(str(t) for t in first.itertext()).strip()
                return text or None
            return str(first).strip() or None
        if isinstance(found, (str, bytes, float, bool)):
            value = found.decode() if isinstance(found, bytes) else str(found)
            return value.strip() or None
        return None
