"""Helpers for the lab's tests: valid identifiers, a movable clock, a small SOAP client."""

from __future__ import annotations

import base64
import http.client
import time
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from garde import soap
from garde.lab import Lab
from garde.soap import qn


def niss(born: date, serial: int = 1) -> str:
    """A valid NISS: YYMMDD, a 3-digit serial, and 97 - (number mod 97) as check digits.

    For people born in 2000 or later the number is prefixed with 2 before the modulo.
    """
    base = f"{born:%y%m%d}{serial:03d}"
    number = int(("2" if born.year >= 2000 else "") + base)
    return f"{base}{97 - number % 97:02d}"


def bis(born: date, serial: int = 1) -> str:
    """A valid BIS number: the month plus 40 (birth date known), same check digits."""
    base = f"{born:%y}{born.month + 40:02d}{born:%d}{serial:03d}"
    number = int(("2" if born.year >= 2000 else "") + base)
    return f"{base}{97 - number % 97:02d}"


PATIENT = niss(date(1985, 7, 30), 33)
PATIENT_2000 = niss(date(2003, 2, 14), 121)
PRESCRIBER = "10012378004"  # NIHII: 11 digits, check digits 78 (97 - 100123 mod 97)
PHARMACIST = "20012385001"
OTHER_PHARMACIST = "20099982001"


class Clock:
    """A clock the test moves by hand (``advance``): expiry without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _fill(parent: etree._Element, ns: str, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            child = etree.SubElement(parent, qn(ns, name))
            if isinstance(item, dict):
                _fill(child, ns, item)
            elif isinstance(item, bytes):
                child.text = base64.b64encode(item).decode()
            else:
                child.text = str(item)


class Client:
    """Calls the lab's services the way care software would: SOAP 1.1 over keep-alive HTTP."""

    def __init__(self, lab: Lab, timeout: float = 5.0) -> None:
        self.lab = lab
        self.timeout = timeout
        self.tokens: dict[str, str] = {}

    def url(self, service: str, dc: str = "dc1") -> str:
        return self.lab.endpoints[service][dc]

    def post(
        self, service: str, body: bytes, dc: str = "dc1", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(self.url(service, dc))
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        try:
            conn.request(
                "POST", parts.path, body, {"Content-Type": soap.CONTENT_TYPE, **(headers or {})}
            )
            response = conn.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            conn.close()

    def token(self, identity: str = PHARMACIST) -> str:
        if identity not in self.tokens:
            status, body, _ = self.post("sts", soap.token_request(identity))
            assert status == 200, body
            self.tokens[identity] = soap.read_token_response(body).token
        return self.tokens[identity]

    def envelope(
        self, service: str, operation: str, fields: dict[str, Any], token: str | None
    ) -> bytes:
        # The simulator's contract, which also covers operations the catalog does not list.
        contracts = self.lab.simulators[service].contracts.values()
        contract = next(c for c in contracts if c.id == operation)
        ns = contract.namespace
        element = etree.Element(qn(ns, contract.request_element))
        _fill(element, ns, fields)
        header = [soap.security_header(token)] if token else []
        return soap.build_envelope(element, header=header)

    def call(
        self,
        service: str,
        operation: str,
        fields: dict[str, Any],
        *,
        identity: str = PHARMACIST,
        token: str | None = "",
        dc: str = "dc1",
        key: str | None = None,
    ) -> Answer:
        """Call ``service.operation``; ``token=""`` gets one for ``identity``, None sends none."""
        if token == "":
            token = self.token(identity)
        headers = {"Idempotency-Key": key} if key else {}
        body = self.envelope(service, operation, fields, token)
        status, data, response_headers = self.post(service, body, dc, headers)
        return Answer(status, data, response_headers)


class Answer:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.envelope = soap.parse_envelope(body)
        self.fault = self.envelope.fault()

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.fault is None

    def text(self, name: str) -> str | None:
        payload = self.envelope.payload
        assert payload is not None
        for element in payload.iter():
            if isinstance(element.tag, str) and etree.QName(element).localname == name:
                return element.text
        return None

    def texts(self, name: str) -> list[str]:
        payload = self.envelope.payload
        assert payload is not None
        return [
            e.text or ""
            for e in payload.iter()
            if isinstance(e.tag, str) and etree.QName(e).localname == name
        ]

    def business(self) -> str | None:
        return None if self.fault is None else self.fault.business_code
