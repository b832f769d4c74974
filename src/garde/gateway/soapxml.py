"""Safe reading and minimal rewriting of SOAP envelopes.

Every SOAP body is parsed once, with a parser that loads no DTD, resolves no entity and
reaches no network, after refusing any document type declaration outright (XXE and entity
expansion need one). Malformed or hostile XML is refused before anything reaches a data
center. Rewriting is limited to what the gateway must do: attach a WS-Security token at send
time and strip it when journaling (a signed or timed token cannot be replayed hours later).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from garde.errors import RequestRejected

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
TOKEN_VALUE_TYPE = "urn:garde:lab:token"  # noqa: S105 - a type URI, not a secret

_ENVELOPES = {f"{{{SOAP11}}}Envelope": SOAP11, f"{{{SOAP12}}}Envelope": SOAP12}
_BODIES = {envelope: f"{{{namespace}}}Body" for envelope, namespace in _ENVELOPES.items()}
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,  # keeps libxml2's limits on depth and text size
    remove_comments=False,
)


@dataclass(slots=True)
class Envelope:
    """A parsed SOAP envelope and the first element of its body."""

    root: etree._Element
    body: etree._Element
    operation_element: etree._Element

    @property
    def operation_tag(self) -> str:
        """The first body element in Clark notation: ``{namespace}LocalName``."""
        return str(self.operation_element.tag)

    @property
    def soap_namespace(self) -> str:
        return SOAP11 if self.root.tag == f"{{{SOAP11}}}Envelope" else SOAP12


_ENCODINGS = frozenset((b"utf-8", b"utf8", b"us-ascii", b"ascii"))
"""The encodings a body may declare: UTF-8 and its subset. The DTD check reads bytes; in
UTF-16 or UTF-7 a ``<!DOCTYPE`` is other bytes, which a data center's parser decodes back
(SOAP 1.1 needs no other encoding: WS-I's UTF-16 is refused too, rather than decoded)."""
_DECLARED = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]*)["']""")
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([^\s;"']*)""", re.IGNORECASE)
_UTF8_FIX = 'send the body as UTF-8 (encoding="utf-8" or no encoding declaration)'


def _unsupported(what: str) -> RequestRejected:
    return RequestRejected(
        415,
        f"{what}: the gateway accepts SOAP bodies in UTF-8 only (a document type declaration"
        f" could pass unseen in another encoding): {_UTF8_FIX}",
    )


def check_encoding(data: bytes) -> None:
    """Refuse (415) a body not in UTF-8: a byte order mark of UTF-16 or UTF-32, the NUL
    bytes of either without one, or an XML declaration naming another encoding."""
    _check_encoding(data, data[:1024].lstrip())


def _check_encoding(data: bytes, head: bytes) -> None:
    """``check_encoding`` given ``head``, the first 1024 bytes without leading whitespace."""
    start = data[:4]
    if start[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in start:
        raise _unsupported("the body is in UTF-16 or UTF-32")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.startswith(b"<?xml"):
        return
    end = head.find(b"?>")
    if end < 0:
        raise RequestRejected(400, "the XML declaration does not end within the first 1024 bytes")
    declaration = head[:end]
    if b"encoding" in declaration:
        found = _DECLARED.search(declaration)
        name = found.group(1) if found is not None else b""
        if name.lower() not in _ENCODINGS:
            raise _unsupported(f"the body is declared in {name.decode('latin-1') or '?'}")


def check_charset(content_type: bytes | None) -> None:
    """Refuse (415) a ``Content-Type`` whose charset is not UTF-8 (a data center's parser
    may decode the body by it)."""
    if content_type is None or b"charset" not in content_type.lower():
        return
    found = _CHARSET.search(content_type)
    name = found.group(1) if found is not None else b""
    if name.lower() not in _ENCODINGS:
        raise _unsupported(f"Content-Type names charset={name.decode('latin-1')}")


_LEAD = re.compile(
    rb"[ \t\r\n\v\f]*(?:\xef\xbb\xbf)?(?:<\?xml[^>]*\?>)?[ \t\r\n\v\f]*"
    rb"<([A-Za-z_][\w.-]*:)?Envelope[ \t\r\n/>]"
)
_TAG_ENDS = (b" ", b"\t", b"\r", b"\n", b"/", b">")
_CHILD = re.compile(
    rb"""(?:[ \t\r\n\v\f](?:[^>"']|"[^"]*"|'[^']*')*)?>[ \t\r\n\v\f]*"""
    rb"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[ \t\r\n/>]"
)


def first_body_child(data: bytes) -> bytes | None:
    """The local name of the SOAP Body's first element, read without parsing (the fast
    paths compare it with the SOAPAction's operation); None when it cannot be told so simply
    (a comment or CDATA before it, a Header after the Body, the Body by another prefix than
    the Envelope's...), and the body is then parsed. ``_plane.c`` reads it the same way."""
    lead = _LEAD.match(data)
    if lead is None:
        return None
    prefix = lead.group(1) or b""
    if len(prefix) > 64:
        return None
    tag = b"<" + prefix + b"Body"
    end = len(tag)
    at = data.find(tag, lead.end() - 1)
    while at >= 0 and data[at + end : at + end + 1] not in _TAG_ENDS:
        at = data.find(tag, at + 1)
    # "<!" is a comment or CDATA (a DTD is refused before): markup could hide in them. A
    # Header closing after the "Body" found means that one was inside the Header.
    if at < 0 or data.find(b"<!", 0, at) >= 0 or data.find(b"</" + prefix + b"Header", at) >= 0:
        return None
    child = _CHILD.match(data, at + end)
    return None if child is None else child.group(1)


def parse_envelope(data: bytes) -> Envelope:
    """Parse ``data`` as a SOAP 1.1/1.2 envelope; ``RequestRejected`` (400) says what is wrong."""
    # Every body the gateway serves passes here (xml_validation: full), so the walk below
    # uses plain iteration: find() parses its path and iterchildren() builds an iterator,
    # each costing more than the loop over the envelope's two or three children.
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise RequestRejected(
            400,
            "document type declarations are refused (XXE protection): send the envelope"
            " without <!DOCTYPE>",
        )
    check_encoding(data)
    if not data.strip():
        raise RequestRejected(400, "the body is empty, not a SOAP Envelope")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RequestRejected(400, f"malformed XML: {exc}") from None
    body_tag = _BODIES.get(root.tag)
    if body_tag is None:
        raise RequestRejected(
            400,
            f"the document element is {root.tag!s}, not a SOAP Envelope ({{{SOAP11}}}Envelope)",
        )
    body = next((child for child in root if child.tag == body_tag), None)
    if body is None:
        raise RequestRejected(400, "the SOAP Envelope has no Body")
    # Comments and processing instructions have a function, not a string, as their tag.
    operation = next((child for child in body if isinstance(child.tag, str)), None)
    if operation is None:
        raise RequestRejected(400, "the SOAP Body is empty: it must hold the operation element")
    return Envelope(root, body, operation)


def check_envelope(data: bytes) -> None:
    """The checks every SOAP body gets without being parsed (the rest when it is).

    Refuses what XXE needs (a document type declaration), and bodies that are not shaped
    like an envelope: empty, not markup, no Envelope or Body, or cut short. A body the
    gateway has no other reason to read is then passed on; the service's own parser has the
    last word on the details (``xml_validation: full`` parses every body instead).
    """
    # Each test looks where the answer is (bytes searches cost about a nanosecond per byte
    # scanned, and this runs for every request on the fast path): "!" is searched first
    # because a one-byte search is the fastest there is, and a declaration needs one.
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise RequestRejected(
            400,
            "document type declarations are refused (XXE protection): send the envelope"
            " without <!DOCTYPE>",
        )
    head = data[:1024].lstrip()
    _check_encoding(data, head)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.startswith(b"<") or b"Envelope" not in head:
        raise RequestRejected(400, "the body is not a SOAP Envelope: it must start with <Envelope")
    # The Body's end tag comes right before the Envelope's: both are in the last bytes.
    tail = data[-128:].rstrip()
    if not tail.endswith(b"Envelope>") or b"Body" not in tail:
        raise RequestRejected(400, "malformed SOAP: no Body, or the Envelope is not closed")


def with_token(envelope: Envelope, token: str) -> bytes:
    """The envelope with its WS-Security header replaced by one carrying ``token``."""
    root = envelope.root
    soap = envelope.soap_namespace
    header = root.find(f"{{{soap}}}Header")
    if header is None:
        header = etree.Element(f"{{{soap}}}Header")
        root.insert(0, header)
    for old in header.findall(f"{{{WSSE}}}Security"):
        header.remove(old)
    security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
    binary = etree.SubElement(security, f"{{{WSSE}}}BinarySecurityToken")
    binary.set("ValueType", TOKEN_VALUE_TYPE)
    binary.text = token
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def with_security(envelope: Envelope, security: bytes) -> bytes:
    """The envelope with its WS-Security header replaced by ``security`` (a whole
    ``wsse:Security`` element, as a caller sent it)."""
    root = envelope.root
    soap = envelope.soap_namespace
    header = root.find(f"{{{soap}}}Header")
    if header is None:
        header = etree.Element(f"{{{soap}}}Header")
        root.insert(0, header)
    for old in header.findall(f"{{{WSSE}}}Security"):
        header.remove(old)
    header.append(etree.fromstring(security, _PARSER))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def without_security(envelope: Envelope) -> bytes:
    """The business payload: the envelope minus any WS-Security header (tokens expire)."""
    root = envelope.root
    header = root.find(f"{{{envelope.soap_namespace}}}Header")
    if header is not None:
        for old in header.findall(f"{{{WSSE}}}Security"):
            header.remove(old)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def body_bytes(envelope: Envelope) -> bytes:
    """The Body alone, canonical enough to key a cache (the header carries varying tokens)."""
    return bytes(etree.tostring(envelope.body, method="c14n"))


class XPathKey:
    """A key rule's XPath, compiled once with the service's namespace prefixes."""

    def __init__(self, expression: str, namespaces: dict[str, str]) -> None:
        self.expression = expression
        self._xpath = etree.XPath(expression, namespaces=namespaces)

    def extract(self, envelope: Envelope) -> str | None:
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


def fault_of(body: bytes) -> tuple[str, str, str | None] | None:
    """``(faultcode, faultstring, business code)`` if ``body`` is a SOAP Fault, else None."""
    if b"Fault" not in body:
        return None
    try:
        envelope = parse_envelope(body)
    except RequestRejected:
        return None
    element = envelope.operation_element
    if etree.QName(element).localname != "Fault":
        return None
    code = element.findtext("faultcode") or element.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    text = element.findtext("faultstring") or ""
    business = None
    for node in element.iter():
        if isinstance(node.tag, str) and etree.QName(node).localname == "BusinessError":
            business = node.get("code")
            break
    return (code or "").strip(), text.strip(), business
