"""garde.soap is the only place that parses XML: no other module of ``src`` does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from garde import soap
from garde.errors import MalformedMessage, MessageTooLarge, RequestRejected, UnsupportedEncoding

SRC = Path(__file__).resolve().parent.parent / "src" / "garde"
STACK = SRC / "soap"

PARSING = frozenset(
    {
        "fromstring",
        "fromstringlist",
        "XML",
        "XMLID",
        "XMLDTDID",
        "HTML",
        "parse",
        "iterparse",
        "XMLParser",
        "XMLPullParser",
        "HTMLParser",
        "HTMLPullParser",
        "DTD",
        "XMLSchema",
        "RelaxNG",
        "XSLT",
    }
)
"""What parses XML in lxml.etree (a document, a schema or a stylesheet)."""
XML_LIBRARIES = ("xml.dom", "xml.etree", "xml.parsers", "xml.sax", "defusedxml", "lxml")
ALLOWED = frozenset({"lxml.etree", "xml.sax.saxutils"})
"""Modules that may be imported outside the stack: lxml.etree to build XML (its parsing
functions are refused below), saxutils to escape text."""


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if STACK not in p.parents)


def _violations(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PARSING:
            value = node.value
            if isinstance(value, ast.Name) and value.id == "etree":
                found.append(f"{where}:{node.lineno}: etree.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            module, names = node.module, {alias.name for alias in node.names}
            if module == "lxml":
                refused = names - {"etree"}
            elif module == "lxml.etree":
                refused = names & PARSING
            elif module.startswith(XML_LIBRARIES) and module not in ALLOWED:
                refused = names
            else:
                refused = set()
            if refused:
                found.append(f"{where}:{node.lineno}: from {module} import {sorted(refused)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if name.startswith(XML_LIBRARIES) and name not in ALLOWED | {"lxml"}:
                    found.append(f"{where}:{node.lineno}: import {name}")
    return found


def test_no_module_outside_garde_soap_parses_xml() -> None:
    """Every XML that garde reads goes through garde.soap's one hardened parser: a parse
    call, a parser or an XML library anywhere else is a second, differently configured one."""
    modules = _modules()
    assert len(modules) > 50, "the scan found the sources"
    violations = [
        v
        for path in modules
        for v in _violations(path.read_text(encoding="utf-8"), str(path.relative_to(SRC.parent)))
    ]
    assert violations == [], "parse XML with garde.soap (parse_xml, parse_envelope...):\n" + (
        "\n".join(violations)
    )


def test_the_scan_sees_a_parse_call() -> None:
    """The check above would notice the parsers it is meant to keep out."""
    source = (
        "from lxml import etree\nfrom lxml.etree import XML\nimport xml.dom.minidom\n"
        "from xml.sax.saxutils import escape\netree.fromstring(b'<a/>', etree.XMLParser())\n"
        "etree.Element('a')\n"
    )
    assert sorted(v.split(": ", 1)[1] for v in _violations(source, "x.py")) == [
        "etree.XMLParser",
        "etree.fromstring",
        "from lxml.etree import ['XML']",
        "import xml.dom.minidom",
    ]


def test_one_parser_configuration() -> None:
    """One ``XMLParser(`` in the whole of src: garde.soap.parser's."""
    makers = [
        path.relative_to(SRC.parent)
        for path in SRC.rglob("*.py")
        if "XMLParser(" in path.read_text(encoding="utf-8")
    ]
    assert [str(p) for p in makers] == ["garde/soap/parser.py"]


@pytest.mark.parametrize(
    ("error", "status"),
    [(MalformedMessage, 400), (MessageTooLarge, 413), (UnsupportedEncoding, 415)],
)
def test_one_error_type_carries_its_status(error: type[MalformedMessage], status: int) -> None:
    """What the gateway refuses and what the lab answers is the same error, with one status."""
    exc = error("why")
    assert isinstance(exc, RequestRejected)
    assert exc.status == status
    assert str(exc) == "why"


UTF7_DTD = b'<?xml version="1.0" encoding="UTF-7"?>' + (
    '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&x;</s:Body>'
    "</s:Envelope>"
).replace("<!", "+ADwAIQ-").encode("utf-7")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (UTF7_DTD, 415),
        (("\ufeff<!DOCTYPE a><a/>").encode("utf-16-le"), 415),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>', 415),
        (b"<!DOCTYPE a><a/>", 400),
        (b"<a>" + b"x" * 2000 + b"</a>", 413),
    ],
    ids=["utf7-dtd", "utf16-dtd", "latin1", "dtd", "too-large"],
)
def test_every_reader_refuses_what_the_gateway_refuses(data: bytes, status: int) -> None:
    """parse_xml, parse_envelope and the fault reader agree: one policy for every part."""
    for read in (
        lambda: soap.parse_xml(data, max_bytes=1000),
        lambda: soap.parse_envelope(data, max_bytes=1000),
    ):
        with pytest.raises(MalformedMessage) as caught:
            read()
        assert caught.value.status == status
    assert soap.read_fault(data + b"<!-- Fault -->", max_bytes=1000) is None


def test_the_deprecated_gateway_module_is_the_stack() -> None:
    """garde.gateway.soapxml (deprecated) hands out garde.soap's own objects, parsing nothing."""
    from garde.gateway import soapxml

    assert soapxml.Envelope is soap.Envelope
    assert soapxml.check_envelope is soap.check_envelope
    assert soapxml.SOAP11 == soap.SOAP_ENV_NS
    body = soap.build_fault("wsse:MessageExpired", "expired")
    assert soapxml.fault_of(body) == ("wsse:MessageExpired", "expired", None)
    assert soapxml.parse_envelope(body).payload is not None
