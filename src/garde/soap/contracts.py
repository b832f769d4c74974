"""Service contracts (WSDL 1.1 and XML Schema documents) as a proxy passes them on.

A SOAP stack that loads a WSDL calls the address the WSDL gives (``soap:address``) and fetches
the schemas it imports from where they say. A gateway that hands on a data center's WSDL as
it is would send the client around itself on its next call. ``rebase_contract`` rewrites the
absolute addresses that lead to a service the gateway serves so that they lead to the gateway,
keeping their path and query; relative ones already do, and addresses elsewhere (a schema on
w3.org) are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from lxml import etree

from garde.soap.names import qn
from garde.soap.parser import parse_xml

WSDL_NS: Final = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_SOAP12_NS: Final = "http://schemas.xmlsoap.org/wsdl/soap12/"
XSD_NS: Final = "http://www.w3.org/2001/XMLSchema"
MAX_CONTRACT_BYTES: Final = 8 << 20
"""Largest WSDL or schema document passed on (the chain's largest bundle is well under)."""

_ADDRESSES: Final = {
    qn(WSDL_SOAP_NS, "address"): "location",
    qn(WSDL_SOAP12_NS, "address"): "location",
    qn(WSDL_NS, "import"): "location",
    qn(XSD_NS, "import"): "schemaLocation",
    qn(XSD_NS, "include"): "schemaLocation",
    qn(XSD_NS, "redefine"): "schemaLocation",
}


def rebase_contract(data: bytes, base: str, routable: Callable[[str], bool]) -> bytes:
    """``data`` (a WSDL or a schema) with every absolute address whose path ``routable``
    accepts moved onto ``base`` (``http://host:port`` of the gateway, as the caller reached
    it). ``MalformedMessage`` if ``data`` is not safe, well-formed XML."""
    root = parse_xml(data, max_bytes=MAX_CONTRACT_BYTES)
    target = urlsplit(base)
    changed = False
    for element in root.iter(*_ADDRESSES):
        attribute = _ADDRESSES[str(element.tag)]
        value = element.get(attribute)
        if not value:
            continue
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not routable(parts.path or "/"):
            continue
        moved = urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
        if moved != value:
            element.set(attribute, moved)
            changed = True
    if not changed:
        return data
    return bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8"))
