"""garde.soap: safe parsing, envelopes, faults and tokens."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from garde import soap
from garde.errors import MalformedMessage, MessageTooLarge
from garde.soap import qn

RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"


def _request(token: str | None = None) -> bytes:
    element = etree.Element(qn(RECIPE, "GetPrescriptionRequest"))
    etree.SubElement(element, qn(RECIPE, "Rid")).text = "BEP0AB12CD34"
    header = [soap.security_header(token)] if token else []
    return soap.build_envelope(element, header=header)


def test_envelope_round_trip_gives_payload_qname_and_token() -> None:
    envelope = soap.parse_envelope(_request("tok-1"))
    assert envelope.payload_qname == qn(RECIPE, "GetPrescriptionRequest")
    assert envelope.token == "tok-1"
    assert envelope.fault() is None


def test_missing_header_means_no_token() -> None:
    assert soap.parse_envelope(_request()).token is None


def test_with_token_replaces_and_without_security_strips() -> None:
    signed = soap.with_token(_request("old"), "new")
    assert soap.parse_envelope(signed).token == "new"
    assert signed.count(b"BinarySecurityToken") == 2  # one element: open and close tags
    bare = soap.without_security(signed)
    envelope = soap.parse_envelope(bare)
    assert envelope.token is None
    assert envelope.header is not None and len(envelope.header) == 0  # as journaled
    assert envelope.payload_qname == qn(RECIPE, "GetPrescriptionRequest")


def test_xxe_is_refused() -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><a>&x;</a></soap:Body></soap:Envelope>"
    )
    with pytest.raises(MalformedMessage, match="DTD"):
        soap.parse_envelope(evil)


def test_billion_laughs_is_refused_without_expansion() -> None:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    evil = (
        f'<?xml version="1.0"?><!DOCTYPE r [{entities}]>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soap:Body><a>&l9;</a></soap:Body></soap:Envelope>"
    ).encode()
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(evil)


def test_oversize_is_refused_before_parsing() -> None:
    with pytest.raises(MessageTooLarge, match="over the limit"):
        soap.parse_xml(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)
    assert MessageTooLarge.status == 413


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"<a><b></a>", "malformed XML"),
        (b"<a/>", "expected a SOAP 1.1 Envelope"),
        (
            b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
            "SOAP 1.2",
        ),
        (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>', "no Body"),
    ],
)
def test_bad_envelopes_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        soap.parse_envelope(data, soap12=False)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        soap.parse_envelope(data)


def test_business_fault_is_read_back() -> None:
    fault = soap.parse_envelope(soap.business_fault("RID_REVOKED", "revoked")).fault()
    assert fault is not None
    assert fault.is_client
    assert fault.is_business
    assert (fault.business_code, fault.business_reason) == ("RID_REVOKED", "revoked")


def test_security_fault_code_resolves_its_namespace() -> None:
    fault = soap.parse_envelope(soap.build_fault("wsse:MessageExpired", "expired")).fault()
    assert fault is not None
    assert fault.code == qn(soap.WSSE_NS, "MessageExpired")
    assert fault.local == "MessageExpired"
    assert not fault.is_business


def test_fault_code_prefix_must_be_known() -> None:
    with pytest.raises(ValueError, match="fault code"):
        soap.build_fault("x:Nope", "no")


def test_token_request_and_response_contract() -> None:
    request = soap.parse_envelope(soap.legacy_token_request("85073003328", "secret", "eid"))
    payload = request.payload
    assert payload is not None
    assert payload.findtext(qn(soap.STS_NS, "Identity")) == "85073003328"
    credential = payload.find(qn(soap.STS_NS, "Credential"))
    assert credential is not None
    assert credential.get("type") == "eid"

    response = etree.Element(qn(soap.STS_NS, "RequestSecurityTokenResponse"))
    for name, value in (("Token", "T"), ("NotBefore", "a"), ("NotOnOrAfter", "b")):
        etree.SubElement(response, qn(soap.STS_NS, name)).text = value
    issued = soap.read_token_response(soap.build_envelope(response))
    assert issued == soap.IssuedToken("T", "a", "b")
    with pytest.raises(MalformedMessage, match="fault"):
        soap.read_token_response(soap.build_fault("soap:Server", "down"))


@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd">',
        b"<!DOCTYPE a>",
        b'<!DOCTYPE a PUBLIC "p" "s">',
    ],
)
def test_any_doctype_is_refused(doctype: bytes) -> None:
    with pytest.raises(MalformedMessage, match="DTD"):
        soap.parse_xml(doctype + b"<a/>")


SOAP12_FAULT = (
    b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault>'
    b"<e:Code><e:Value>e:Sender</e:Value></e:Code><e:Reason><e:Text>no</e:Text></e:Reason>"
    b"</e:Fault></e:Body></e:Envelope>"
)


def test_soap12_is_read_unless_refused_and_its_fault_too() -> None:
    """The gateway passes SOAP 1.2 on (and reads its faults); the lab's services refuse it."""
    envelope = soap.parse_envelope(SOAP12_FAULT)
    assert envelope.soap_namespace == soap.SOAP12_ENV_NS
    fault = soap.read_fault(SOAP12_FAULT)
    assert fault is not None
    assert (fault.raw_code, fault.local, fault.string) == ("e:Sender", "Sender", "no")
    assert fault.is_client
    with pytest.raises(MalformedMessage, match=r"SOAP 1\.2"):
        soap.parse_envelope(SOAP12_FAULT, soap12=False)


def test_read_fault_is_none_for_answers_that_are_not_faults() -> None:
    assert soap.read_fault(_request()) is None
    assert soap.read_fault(b"<Fault>not soap</Fault>") is None
    assert soap.read_fault(b"Fault, and not even XML") is None


def test_a_token_added_to_a_parsed_envelope_is_stripped_from_it_again() -> None:
    """The header with_token adds is the envelope's from then on: a write that fails after
    the token was attached is journaled without it."""
    envelope = soap.parse_envelope(_request())
    assert envelope.header is None
    assert b"tok-9" in soap.with_token(envelope, "tok-9")
    assert envelope.header is not None
    assert b"tok-9" not in soap.without_security(envelope)


def test_rewrites_change_nothing_but_the_security_header() -> None:
    """Comments and processing instructions are kept: the gateway forwards what it rewrites."""
    data = _request().replace(b"<soap:Body>", b"<soap:Body><!-- kept --><?pi kept?>")
    signed = soap.with_token(data, "t")
    assert b"<!-- kept --><?pi kept?>" in signed
    assert b"<!-- kept -->" in soap.without_security(signed)
    assert soap.parse_envelope(data).payload_qname == qn(RECIPE, "GetPrescriptionRequest")


def test_the_caller_security_header_is_read_without_lxml_outside_the_stack() -> None:
    security = (
        f'<wsse:Security xmlns:wsse="{soap.WSSE_NS}" xmlns:wsu="{soap.WSU_NS}">'
        "<wsu:Timestamp><wsu:Expires>2026-01-27T10:00:00Z</wsu:Expires></wsu:Timestamp>"
        "<wsse:BinarySecurityToken> a.b </wsse:BinarySecurityToken></wsse:Security>"
    ).encode()
    envelope = soap.parse_envelope(soap.with_security(_request(), security))
    header = soap.security_of(envelope)
    assert header is not None
    assert not header.signed
    assert header.expires == "2026-01-27T10:00:00Z"
    assert list(header.binary_tokens()) == ["a.b"]
    assert list(header.assertions()) == []
    assert soap.parse_xml(header.serialize()).tag == qn(soap.WSSE_NS, "Security")
    assert soap.security_of(soap.parse_envelope(_request())) is None


def test_with_security_takes_only_a_security_element() -> None:
    with pytest.raises(MalformedMessage, match="wsse:Security"):
        soap.with_security(_request(), b"<a/>")


def test_an_issued_token_window_is_utc() -> None:
    issued = soap.IssuedToken("T", "2026-01-27T09:00:00Z", "2026-01-27T10:00:00")
    assert issued.window() == (1769504400.0, 1769508000.0)
    with pytest.raises(MalformedMessage, match="not an ISO 8601 time"):
        soap.IssuedToken("T", "soon", "later").window()


def test_a_key_rule_xpath_that_does_not_compile_says_so() -> None:
    from garde.errors import UsageError

    with pytest.raises(UsageError, match="does not compile"):
        soap.XPathKey("//r:Rid[", {"r": RECIPE})
