"""The replayer's token splice: the same bytes as parsing the envelope and adding the token."""

from __future__ import annotations

import pytest

from garde.errors import RequestRejected
from garde.gateway import sender
from garde.gateway.sender import add_token
from garde.soap import SOAP12_ENV_NS as SOAP12
from garde.soap import SOAP_ENV_NS as SOAP11
from garde.soap import Envelope, parse_envelope, with_token, without_security

BODY = '<r:MarkAsDelivered xmlns:r="urn:r"><r:Rid>BEP0ABCDEFGH</r:Rid></r:MarkAsDelivered>'
TOKEN = 'tok&en<"1">'


def _journaled(envelope: str) -> bytes:
    """What the gateway journals: the envelope re-serialized without its WS-Security."""
    return without_security(parse_envelope(envelope.encode()))


@pytest.mark.parametrize(
    ("envelope", "parsed"),
    [
        (
            f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>{BODY}</soap:Body></soap:Envelope>',
            False,
        ),
        (f'<s:Envelope xmlns:s="{SOAP12}"><s:Header/><s:Body>{BODY}</s:Body></s:Envelope>', False),
        (f'<Envelope xmlns="{SOAP11}"><Header></Header><Body>{BODY}</Body></Envelope>', False),
        (
            f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:x="urn:x"><soap:Header><wsse:Security'
            ' xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext'
            f'-1.0.xsd">old</wsse:Security></soap:Header><soap:Body>{BODY}</soap:Body>'
            "</soap:Envelope>",
            False,
        ),
        # Shapes the splice leaves to the parser: other headers kept, a prefix mismatch.
        (
            f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Header><x:Trace xmlns:x="urn:x">1'
            f"</x:Trace></soap:Header><soap:Body>{BODY}</soap:Body></soap:Envelope>",
            True,
        ),
        (
            f'<a:Envelope xmlns:a="{SOAP11}" xmlns:b="{SOAP11}"><b:Body>{BODY}</b:Body>'
            "</a:Envelope>",
            True,
        ),
    ],
)
def test_splice_gives_the_parsers_bytes(
    envelope: str, parsed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _journaled(envelope)
    expected = with_token(parse_envelope(stored), TOKEN)
    calls: list[bytes] = []

    def counting(data: bytes, **options: object) -> Envelope:
        calls.append(data)
        return parse_envelope(data, max_bytes=None)

    monkeypatch.setattr(sender, "parse_envelope", counting)
    spliced = add_token(stored, TOKEN)
    assert spliced == expected
    assert bool(calls) is parsed  # the journal's own shapes are spliced, not parsed
    again = parse_envelope(spliced)
    assert again.payload_qname == "{urn:r}MarkAsDelivered"
    assert b"tok&amp;en&lt;" in spliced


def test_an_envelope_in_another_namespace_is_still_refused() -> None:
    """A prefix bound to something else than SOAP is not spliced: the parser refuses it."""
    odd = b"<?xml version='1.0'?>\n<soap:Envelope xmlns:soap=\"urn:not-soap\"><soap:Body/>"
    with pytest.raises(RequestRejected):
        add_token(odd + b"</soap:Envelope>", TOKEN)
