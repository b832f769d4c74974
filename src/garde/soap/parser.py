"""The one XML parser of garde, and the checks a message gets before (or instead of) parsing.

Every XML that garde reads passes ``parse_xml``: size bounded, no document type declaration
in any encoding (refused from the bytes, then again from the parsed document), UTF-8 only,
no entity expansion, no network access, libxml2's depth and text-size limits kept. The fast
paths of the gateway read a few bytes without parsing (``check_envelope``,
``first_body_child``); they live here too, so that what is refused is decided in one place.
lxml's errors never leave this package: they become ``MalformedMessage``.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from garde.errors import MalformedMessage, MessageTooLarge, UnsupportedEncoding
from garde.soap.names import MAX_MESSAGE_BYTES

Element = etree._Element
"""A parsed element (lxml's): what the readers of this package hand out."""


def _new_parser() -> etree.XMLParser:
    # resolve_entities=False: no entity is ever expanded (billion laughs, XXE);
    # load_dtd/no_network: nothing is fetched; huge_tree=False keeps libxml2's depth and
    # text-size limits. Comments and processing instructions are kept: the gateway forwards
    # what it rewrites (a token attached, a token stripped for the journal) and must change
    # nothing else; readers skip them (their tag is not a string).
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )


_LOCAL = threading.local()


def _parser() -> etree.XMLParser:
    # One parser per thread: an lxml parser serializes the threads that share it.
    parser: etree.XMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = _new_parser()
    return parser


_DTD_REFUSED = (
    "a document type declaration (<!DOCTYPE>, a DTD) is refused (XXE protection): send the"
    " envelope without <!DOCTYPE>"
)


def parse_xml(data: bytes, *, max_bytes: int | None = MAX_MESSAGE_BYTES) -> Element:
    """The root element of ``data``; ``MalformedMessage`` if it is not safe, well-formed XML.

    ``MessageTooLarge`` if ``data`` is over ``max_bytes`` (checked before parsing; None when
    the caller bounded what it read), ``UnsupportedEncoding`` if it is not in UTF-8.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise MessageTooLarge(
            f"message of {len(data)} bytes is over the limit of {max_bytes} bytes;"
            " send a smaller message"
        )
    # "!" is searched first: a one-byte search is the fastest there is, and both need one.
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise MalformedMessage(_DTD_REFUSED)
    check_encoding(data)
    if not data or data.isspace():
        raise MalformedMessage("the message is empty: expected XML")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedMessage(f"malformed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. a declared encoding lxml does not accept
        raise MalformedMessage(f"malformed XML: {exc}") from None
    # The bytes were searched for a declaration; the document is asked too, so that no
    # spelling of one the search did not foresee gets through.
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedMessage(_DTD_REFUSED)
    # No entity reference can remain: without a DTD, an undeclared entity is a syntax error
    # (only the five predefined ones parse, and they are plain characters).
    return root


# -- encodings -------------------------------------------------------------------------------

_ENCODINGS = frozenset((b"utf-8", b"utf8", b"us-ascii", b"ascii"))
"""The encodings a body may declare: UTF-8 and its subset. The DTD check reads bytes; in
UTF-16 or UTF-7 a ``<!DOCTYPE`` is other bytes, which a data center's parser decodes back
(SOAP 1.1 needs no other encoding: WS-I's UTF-16 is refused too, rather than decoded)."""
_DECLARED = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]*)["']""")
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([^\s;"']*)""", re.IGNORECASE)
_UTF8_FIX = 'send the body as UTF-8 (encoding="utf-8" or no encoding declaration)'


def _unsupported(what: str) -> UnsupportedEncoding:
    return UnsupportedEncoding(
        f"{what}: garde reads SOAP bodies in UTF-8 only (a document type declaration could"
        f" pass unseen in another encoding): {_UTF8_FIX}"
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
        raise MalformedMessage("the XML declaration does not end within the first 1024 bytes")
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


# -- reading without parsing (the gateway's fast paths) --------------------------------------


def check_envelope(data: bytes) -> None:
    """The checks every SOAP body gets without being parsed (the rest when it is).

    Refuses what XXE needs (a document type declaration), and bodies that are not shaped
    like an envelope: empty, not markup, no Envelope or Body, or cut short. A body the
    gateway has no other reason to read is then passed on; the service's own parser has the
    last word on the details (``xml_validation: full`` parses every body instead).
    """
    # Each test looks where the answer is (bytes searches cost about a nanosecond per byte
    # scanned, and this runs for every request on the fast path).
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise MalformedMessage(_DTD_REFUSED)
    head = data[:1024].lstrip()
    _check_encoding(data, head)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.startswith(b"<") or b"Envelope" not in head:
        raise MalformedMessage("the body is not a SOAP Envelope: it must start with <Envelope")
    # The Body's end tag comes right before the Envelope's: both are in the last bytes.
    tail = data[-128:].rstrip()
    if not tail.endswith(b"Envelope>") or b"Body" not in tail:
        raise MalformedMessage("malformed SOAP: no Body, or the Envelope is not closed")


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


def indented(data: bytes) -> str:
    """``data`` re-indented for people to read (documentation of the lab's envelopes)."""
    root = parse_xml(data, max_bytes=None)
    etree.indent(root, space="  ")
    return str(etree.tostring(root, encoding="unicode"))
