"""The STS's WSDL describes what the STS serves: the signed SAML 1.1 ``samlp:Request`` that
connectors send and the ``samlp:Response`` it answers are valid against the schema in the
lab's own ``?wsdl`` (they were not, when it described simplified fields)."""

from __future__ import annotations

import urllib.request

from lxml import etree

from garde import soap
from garde.lab import Lab
from tests.lab.labkit import PHARMACIST, Client

XSD = "{http://www.w3.org/2001/XMLSchema}schema"


def _body(envelope: bytes) -> etree._Element:
    payload = soap.parse_envelope(envelope).payload
    assert payload is not None
    return payload


def test_the_sts_wsdl_validates_the_exchange_it_serves(lab: Lab, client: Client) -> None:
    url = lab.endpoints["sts"]["dc1"]
    with urllib.request.urlopen(url + "?wsdl", timeout=5) as answer:
        wsdl = etree.fromstring(answer.read())
    saml = next(s for s in wsdl.iter(XSD) if s.get("targetNamespace") == soap.SAMLP1_NS)
    schema = etree.XMLSchema(saml)

    request = soap.token_request(PHARMACIST)
    status, answer_body, _ = client.post("sts", request)
    assert status == 200
    asked, answered = _body(request), _body(answer_body)
    assert etree.QName(asked).localname == "Request" and asked.get("MajorVersion") == "1"
    assert answered.find(f"{{{soap.SAML1_NS}}}Assertion") is not None  # another namespace
    for element in (asked, answered):
        assert schema.validate(etree.fromstring(etree.tostring(element))), schema.error_log
