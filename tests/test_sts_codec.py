"""The STS codec against answers shaped like the published ones (tests/fixtures/sts/), and
the request it writes against the published shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from garde import soap
from garde.errors import MalformedMessage
from garde.gateway.tokens import parse_token_response
from garde.soap.saml import (
    HOLDER_OF_KEY,
    IDENTIFICATION_NS,
    PERSON_SSIN,
    SAMLP1_NS,
    SignatureRejected,
    read_token_query,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sts"
SAML = soap.SAML1_NS
SUBJECT = "SERIALNUMBER=85073003328, GIVENNAME=Test, SURNAME=Pharmacist"


def test_the_answer_gives_the_assertion_and_its_window() -> None:
    """NotBefore / NotOnOrAfter come from the assertion's Conditions; the token is the
    assertion itself, namespaces declared on it."""
    issued = soap.read_token_response((FIXTURES / "response.xml").read_bytes())
    assert issued.not_before == "2026-01-27T08:59:59.512Z"
    assert issued.not_on_or_after == "2026-01-28T08:59:59.512Z"
    start, end = issued.window()
    assert end - start == 24 * 3600
    assert issued.assertion is not None
    assertion = etree.fromstring(issued.assertion)
    assert assertion.tag == f"{{{SAML}}}Assertion"
    assert assertion.get("Issuer") == "urn:be:fgov:ehealth:sts:1_0"
    assert assertion.find(f"{{{soap.DSIG_NS}}}Signature") is not None


def test_the_assertion_goes_in_wsse_security_as_it_is() -> None:
    """with_token puts the assertion in wsse:Security; the gateway reads its subject and
    validity there, as it does for a caller's own assertion."""
    issued = soap.read_token_response((FIXTURES / "response.xml").read_bytes())
    request = soap.build_envelope(etree.Element("{urn:example}Ping"))
    sent = soap.parse_envelope(soap.with_token(request, issued.token))
    security = soap.security_of(sent)
    assert security is not None
    assert security.token_count() == 1
    ((subject, until),) = list(security.assertions())
    assert subject.startswith(SUBJECT)
    assert until == issued.not_on_or_after
    assert not security.signed, "the STS's signature is inside the assertion, not the message's"
    assert sent.token is not None and sent.token.startswith("<")
    again = etree.fromstring(sent.token.encode())
    assert again.get("AssertionID") == "_9c2b6e1f0d3a4b5c8e7f6a5b4c3d2e1f"


def test_the_gateway_reads_the_window_from_the_assertion() -> None:
    token = parse_token_response((FIXTURES / "response.xml").read_bytes())
    assert token.value.startswith("<")
    assert token.not_on_or_after - token.not_before == 24 * 3600


def test_a_refusal_says_the_status_and_message() -> None:
    with pytest.raises(MalformedMessage, match=r"samlp:Requester.*could not be certified"):
        soap.read_token_response((FIXTURES / "refused.xml").read_bytes())


def test_an_assertion_without_conditions_is_no_token() -> None:
    data = (FIXTURES / "response.xml").read_bytes()
    root = etree.fromstring(data)
    conditions = root.find(f".//{{{SAML}}}Conditions")
    assert conditions is not None
    conditions.getparent().remove(conditions)  # type: ignore[union-attr]
    with pytest.raises(MalformedMessage, match="NotOnOrAfter"):
        soap.read_token_response(etree.tostring(root))


def test_the_request_has_the_published_shape() -> None:
    """A SAML 1.1 samlp:Request with an AttributeQuery for the identity, holder-of-key,
    signed in WS-Security (body and timestamp) with the certificate it carries."""
    credentials = soap.Credentials.self_signed("test", serial_number="85073003328")
    data = soap.token_request("85073003328", credentials)
    root = etree.fromstring(data)
    ns = {
        "s": soap.SOAP_ENV_NS,
        "wsse": soap.WSSE_NS,
        "wsu": soap.WSU_NS,
        "ds": soap.DSIG_NS,
        "samlp": SAMLP1_NS,
        "saml": SAML,
    }
    request = root.find("s:Body/samlp:Request", ns)
    assert request is not None
    assert (request.get("MajorVersion"), request.get("MinorVersion")) == ("1", "1")
    assert request.get("RequestID") and request.get("IssueInstant")
    query = request.find("samlp:AttributeQuery", ns)
    assert query is not None
    assert (
        query.findtext("saml:Subject/saml:SubjectConfirmation/saml:ConfirmationMethod", None, ns)
        == HOLDER_OF_KEY
    )
    values = {
        a.get("AttributeName"): a.findtext("saml:AttributeValue", None, ns)
        for a in query.iterfind(".//saml:Attribute", ns)
        if a.get("AttributeNamespace") == IDENTIFICATION_NS
    }
    assert values[PERSON_SSIN] == "85073003328"
    assert query.findall("saml:AttributeDesignator", ns)
    security = root.find("s:Header/wsse:Security", ns)
    assert security is not None
    assert security.find("wsse:BinarySecurityToken", ns) is not None
    assert security.find("wsu:Timestamp", ns) is not None
    references = {
        r.get("URI") for r in security.iterfind("ds:Signature/ds:SignedInfo/ds:Reference", ns)
    }
    body = root.find("s:Body", ns)
    timestamp = security.find("wsu:Timestamp", ns)
    assert body is not None and timestamp is not None
    assert references == {
        f"#{body.get(f'{{{soap.WSU_NS}}}Id')}",
        f"#{timestamp.get(f'{{{soap.WSU_NS}}}Id')}",
    }
    assert read_token_query(soap.parse_xml(data)).identity == "85073003328"


def test_a_request_signed_by_another_key_is_refused() -> None:
    """The certificate in the header must be the one that signed: swapping it fails."""
    mine = soap.token_request("85073003328", soap.Credentials.self_signed("me"))
    other = etree.fromstring(
        soap.token_request("85073003328", soap.Credentials.self_signed("other"))
    )
    root = etree.fromstring(mine)
    token = f"{{{soap.WSSE_NS}}}BinarySecurityToken"
    theirs = other.find(f".//{token}")
    assert theirs is not None
    root.find(f".//{token}").text = theirs.text  # type: ignore[union-attr]
    with pytest.raises(SignatureRejected) as refused:
        read_token_query(soap.parse_xml(etree.tostring(root)))
    assert refused.value.code == "wsse:FailedCheck"


def test_the_deprecated_dialect_is_still_read() -> None:
    response = etree.Element(soap.qn(soap.STS_NS, "RequestSecurityTokenResponse"))
    for name, value in (("Token", "T"), ("NotBefore", "a"), ("NotOnOrAfter", "b")):
        etree.SubElement(response, soap.qn(soap.STS_NS, name)).text = value
    issued = soap.read_token_response(soap.build_envelope(response))
    assert issued == soap.IssuedToken("T", "a", "b")
    assert issued.assertion is None
