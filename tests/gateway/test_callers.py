"""Reading the caller's own token: SAML assertions as the STS issues them, and signatures."""

from __future__ import annotations

import pytest

from garde.gateway.callers import CannotJournal, caller_token
from garde.gateway.soapxml import parse_envelope
from tests.gateway.doubles import RECIPE, envelope

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
ASSERTION = (
    f'<saml:Assertion xmlns:saml="{SAML1}" AssertionID="a1">'
    '<saml:Conditions NotBefore="2026-01-27T08:00:00Z" NotOnOrAfter="2026-01-27T20:00:00Z"/>'
    "<saml:AuthenticationStatement><saml:Subject><saml:NameIdentifier>"
    "CN=SSIN=85073003328</saml:NameIdentifier></saml:Subject></saml:AuthenticationStatement>"
    f'<ds:Signature xmlns:ds="{DSIG}"><ds:SignedInfo/></ds:Signature>'
    "</saml:Assertion>"
)


def _security(inner: str) -> bytes:
    header = f'<wsse:Security xmlns:wsse="{WSSE}">{inner}</wsse:Security>'
    return envelope("MarkAsDeliveredRequest", RECIPE, "<x:Rid>R</x:Rid>", header)


def test_an_sts_signed_saml_assertion_is_a_token_the_gateway_can_keep() -> None:
    """The STS's signature inside the assertion is part of the token, not of the message."""
    token = caller_token(parse_envelope(_security(ASSERTION)))
    assert token is not None
    assert token.subject == "CN=SSIN=85073003328"
    assert token.not_on_or_after == 1769544000.0  # 2026-01-27T20:00:00Z
    assert b"NameIdentifier" in token.security


def test_a_timestamp_shortens_the_validity_and_a_message_signature_cannot_wait() -> None:
    stamp = (
        '<wsu:Timestamp xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-wssecurity-utility-1.0.xsd"><wsu:Expires>2026-01-27T09:05:00Z'
        "</wsu:Expires></wsu:Timestamp>"
    )
    token = caller_token(parse_envelope(_security(ASSERTION + stamp)))
    assert token is not None
    assert token.not_on_or_after == 1769504700.0  # the timestamp's end, not the token's
    signed = ASSERTION + f'<ds:Signature xmlns:ds="{DSIG}"/>'
    with pytest.raises(CannotJournal, match="signed by the calling software"):
        caller_token(parse_envelope(_security(signed)))
    assert caller_token(parse_envelope(envelope("X", RECIPE))) is None


def test_a_header_with_two_tokens_cannot_wait() -> None:
    """Two assertions (or an assertion and a binary token): whose name would the write be
    sent in later? The gateway refuses rather than guess."""
    twice = ASSERTION + ASSERTION.replace('AssertionID="a1"', 'AssertionID="a2"')
    with pytest.raises(CannotJournal, match="2 tokens"):
        caller_token(parse_envelope(_security(twice)))
