"""Tokens, idempotent replays and hostile input, as a client sees them."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlsplit

import pytest

from garde import soap
from garde.errors import MalformedMessage
from garde.lab import Lab, kmehr
from garde.lab.tokens import TokenAuthority
from garde.soap.saml import read_token_query
from tests.lab.labkit import PATIENT, PHARMACIST, PRESCRIBER, Client, Clock


def _security_fault(answer: object) -> str:
    fault = answer.fault  # type: ignore[attr-defined]
    assert answer.status == 500  # type: ignore[attr-defined]
    assert fault is not None
    assert fault.code.startswith("{" + soap.WSSE_NS + "}")
    return str(fault.local)


def test_missing_token_is_an_invalid_security_token(client: Client) -> None:
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=None)
    assert _security_fault(answer) == "InvalidSecurityToken"


def test_forged_token_is_refused(client: Client, lab: Lab) -> None:
    """An assertion changed after the STS signed it, one signed by another STS, and a lab
    token of the deprecated dialect that was tampered with are all refused."""
    genuine = client.token()
    assert genuine.startswith("<")
    tampered = genuine.replace(PHARMACIST, PRESCRIBER)
    assert tampered != genuine
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=tampered)
    assert _security_fault(answer) == "InvalidSecurityToken"
    other_sts = TokenAuthority(3600, lab.clock)
    request = soap.token_request(PHARMACIST)
    foreign = soap.read_token_response(
        other_sts.issue_assertion(read_token_query(soap.parse_xml(request)))
    ).token
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=foreign)
    assert _security_fault(answer) == "InvalidSecurityToken"
    legacy = other_sts.issue(PHARMACIST, "eid").token
    body, _, signature = legacy.partition(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=forged)
    assert _security_fault(answer) == "InvalidSecurityToken"
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=legacy)
    assert _security_fault(answer) == "InvalidSecurityToken"
    garbage = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token="x.y")
    assert _security_fault(garbage) == "InvalidSecurityToken"


def test_the_deprecated_lab_token_still_works(client: Client, lab: Lab) -> None:
    """During the deprecation period, the former BinarySecurityToken is accepted."""
    legacy = lab.tokens.issue(PHARMACIST, "eid").token
    assert client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=legacy).ok


def test_the_sts_refuses_unsigned_and_badly_signed_requests(client: Client, clock: Clock) -> None:
    """WS-Security faults as the STS gives them: no signature, a changed body, a
    certificate the lab's clock finds expired; no SSIN asked: a samlp:Requester status."""
    signed = soap.token_request(PHARMACIST)
    unsigned = re.sub(rb"<ds:Signature.*</ds:Signature>", b"", signed, flags=re.S)
    status, body, _ = client.post("sts", unsigned)
    assert (status, _fault_local(body)) == (500, "InvalidSecurity")
    changed = signed.replace(PHARMACIST.encode(), PRESCRIBER.encode())
    status, body, _ = client.post("sts", changed)
    assert (status, _fault_local(body)) == (500, "FailedCheck")
    clock.advance(400 * 86400)  # session certificates are made for a year
    status, body, _ = client.post("sts", soap.token_request(PHARMACIST))
    assert (status, _fault_local(body)) == (500, "InvalidSecurityToken")
    assert "expired" in body.decode()


def test_the_sts_answers_requester_without_an_identity(client: Client) -> None:
    credentials = soap.Credentials.self_signed("nobody")
    request = soap.token_request("", credentials)
    status, body, _ = client.post("sts", request)
    assert status == 200
    with pytest.raises(MalformedMessage, match="samlp:Requester"):
        soap.read_token_response(body)


def _fault_local(body: bytes) -> str | None:
    fault = soap.read_fault(body)
    return None if fault is None else fault.local


def test_token_expires_after_the_configured_validity(client: Client, clock: Clock) -> None:
    token = client.token()
    assert client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=token).ok
    clock.advance(3600)
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, token=token)
    assert _security_fault(answer) == "MessageExpired"
    assert "expired" in (answer.fault.string if answer.fault else "")


def test_token_validity_is_announced_by_the_sts(client: Client) -> None:
    status, body, _ = client.post("sts", soap.token_request(PHARMACIST))
    assert status == 200
    issued = soap.read_token_response(body)
    assert issued.not_before.endswith("Z")
    assert issued.not_on_or_after > issued.not_before


def test_a_token_is_valid_in_every_data_center(client: Client) -> None:
    token = client.token()
    for dc in ("dc1", "dc2", "dc3"):
        assert client.call(
            "insurability", "getInsurability", {"Ssin": PATIENT}, token=token, dc=dc
        ).ok


def _create(client: Client, key: str | None, dc: str = "dc1"):
    return client.call(
        "recipe-prescriber",
        "createPrescription",
        {
            "PrescriberNihii": PRESCRIBER,
            "PatientId": PATIENT,
            "Prescription": kmehr.prescription(
                PRESCRIBER, PATIENT, when=client.lab.context.today()
            ),
        },
        key=key,
        dc=dc,
    )


def test_idempotent_replay_returns_the_original_answer_and_no_second_effect(
    client: Client, lab: Lab
) -> None:
    first = _create(client, "key-1")
    client.tokens.clear()  # a replay comes later, with a fresh token, maybe to another DC
    replay = _create(client, "key-1", dc="dc2")
    assert replay.ok
    assert replay.text("Rid") == first.text("Rid")
    assert replay.headers.get("Idempotent-Replay") == "true"
    assert len(lab.ledger.effects(key="key-1")) == 1
    assert lab.ledger.duplicates() == []


def test_without_key_a_retry_creates_a_duplicate_the_ledger_reports(
    client: Client, lab: Lab
) -> None:
    """What a naive retry of a non-idempotent create does: the ledger counts it."""
    first, second = _create(client, None), _create(client, None)
    assert first.text("Rid") != second.text("Rid")
    duplicates = lab.ledger.duplicates()
    assert len(duplicates) == 1
    assert duplicates[0].effect == "prescription.created"
    assert [e.detail["rid"] for e in duplicates[0].effects] == [
        first.text("Rid"),
        second.text("Rid"),
    ]


def test_reusing_a_key_for_another_request_is_refused(client: Client, lab: Lab) -> None:
    assert _create(client, "key-2").ok
    other = client.call(
        "insurability", "getInsurability", {"Ssin": PATIENT}, key="key-2"
    )  # reads ignore the key
    assert other.ok
    delivered = client.call(
        "recipe-executor",
        "markAsDelivered",
        {"Rid": "BEP0AAAAAAAA", "ExecutorNihii": PHARMACIST},
        key="key-3",
    )
    assert delivered.business() == "RID_UNKNOWN"
    rid = _create(client, None).text("Rid")
    ok = client.call(
        "recipe-executor", "markAsDelivered", {"Rid": rid, "ExecutorNihii": PHARMACIST}, key="key-3"
    )
    assert ok.ok, "a refused write is not remembered: the same key may be used again"
    misuse = client.call(
        "recipe-executor",
        "markAsDelivered",
        {"Rid": "BEP0BBBBBBBB", "ExecutorNihii": PHARMACIST},
        key="key-3",
    )
    assert misuse.business() == "IDEMPOTENCY_KEY_REUSED"


def _raw(lab: Lab, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urlsplit(lab.endpoints["recipe-executor"]["dc1"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("POST", parts.path, body, headers or {"Content-Type": "text/xml"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _client_fault(body: bytes) -> str:
    fault = soap.parse_envelope(body).fault()
    assert fault is not None
    assert fault.is_client
    return fault.string


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&x;</s:Body>'
    b"</s:Envelope>"
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&c;</s:Body>'
    b"</s:Envelope>"
)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (XXE, 400, "DTD"),
        (LAUGHS, 400, "DTD"),
        (b"<s:Envelope", 400, "malformed XML"),
        (b"not xml at all", 400, "malformed XML"),
        (b"<a/>", 400, "SOAP 1.1 Envelope"),
    ],
)
def test_hostile_or_malformed_xml_gets_a_client_fault(
    lab: Lab, body: bytes, status: int, says: str
) -> None:
    got, answer = _raw(lab, body)
    assert got == status
    assert says in _client_fault(answer)
    assert b"Traceback" not in answer
    assert lab.ledger.count() == 0


def test_oversize_body_is_refused_with_413(lab: Lab) -> None:
    got, answer = _raw(lab, b"<a>" + b"x" * (lab.settings.max_body + 10) + b"</a>")
    assert got == 413
    assert "over the limit" in _client_fault(answer)


def test_unknown_operation_is_named(client: Client) -> None:
    envelope = soap.build_envelope(None)
    status, body, _ = client.post("recipe-executor", envelope)
    assert status == 500
    assert "unknown operation" in _client_fault(body)


def test_malformed_http_is_answered_not_crashed(lab: Lab) -> None:
    import socket

    parts = urlsplit(lab.endpoints["sts"]["dc1"])
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"GARBAGE / NOT-HTTP\r\n\r\n")
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 400")


def test_expect_100_continue_and_chunked_bodies_are_served(lab: Lab, client: Client) -> None:
    """What .NET (Expect: 100-continue) and Java (chunked) SOAP stacks send."""
    import socket

    body = client.envelope("insurability", "getInsurability", {"Ssin": PATIENT}, client.token())
    parts = urlsplit(lab.endpoints["insurability"]["dc1"])
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        data = sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        half = len(body) // 2
        chunks = b"".join(
            f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in (body[:half], body[half:])
        )
        sock.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + chunks
            + b"0\r\n\r\n"
        )
        data = b""
        while b"</soap:Envelope>" not in data:
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200"), data[:200]


def _control(
    lab: Lab, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    import json

    parts = urlsplit(lab.control_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


FAULT = b'{"service": "hub", "dc": "dc1", "kind": "down"}'


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "cross-site"),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "Origin"),
        ({"Content-Type": "application/json", "Origin": "null"}, 403, "not the lab's own"),
        ({"Content-Type": "text/plain"}, 415, "Content-Type: application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "must be JSON"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "must be JSON"),
        ({}, 415, "no Content-Type"),
    ],
    ids=["form-post", "foreign-json", "null-origin", "text", "urlencoded", "multipart", "none"],
)
def test_cross_site_and_non_json_posts_create_no_fault(
    lab: Lab, headers: dict[str, str], status: int, says: str
) -> None:
    """The probe's form post (text/plain, foreign Origin) created a fault; now refused."""
    code, answer = _control(lab, "POST", "/faults", FAULT, headers)
    assert code == status
    assert says in str(answer["error"])
    assert all(not entry["faults"] for entry in lab.status())


def test_a_foreign_origin_cannot_heal_either(lab: Lab) -> None:
    lab.faults.set("hub", "dc1", "down")
    code, _ = _control(lab, "DELETE", "/faults", None, {"Origin": "http://evil.example"})
    assert code == 403
    assert any(entry["faults"] for entry in lab.status())


def test_the_lab_own_origin_and_plain_clients_are_served(lab: Lab) -> None:
    own = lab.control_url
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    code, answer = _control(lab, "POST", "/faults", FAULT, {**json_type, "Origin": own})
    assert code == 201, answer
    localhost = own.replace("127.0.0.1", "localhost")
    code, _ = _control(lab, "DELETE", "/faults", None, {"Origin": localhost})
    assert code == 200
    code, _ = _control(lab, "POST", "/faults", FAULT, json_type)
    assert code == 201
    code, answer = _control(lab, "GET", "/status", None, {})
    assert code == 200


def test_a_body_not_in_utf8_gets_a_415_client_fault(lab: Lab) -> None:
    """The lab refuses what the gateway refuses: one parser, one policy (UTF-8 only)."""
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>'
    ).encode("utf-16")
    got, answer = _raw(lab, body)
    assert got == 415
    assert "UTF-8" in _client_fault(answer)
