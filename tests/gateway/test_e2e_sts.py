"""End to end: tokens obtained as connectors obtain them, used through a real gateway process.

Each care provider's software signs a SAML 1.1 ``samlp:Request`` in WS-Security with its
own certificate (made here with ``cryptography``) and posts it to the lab's STS with the
published SOAPAction; the STS's signed assertion goes, as it is, in the ``wsse:Security`` of
a Recip-e call through the gateway. Requests whose signature or certificate is bad get the
STS's WS-Security faults.
"""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from garde import soap
from garde.catalog import Catalog
from garde.drill import GatewayProcess
from garde.lab import kmehr, lab_in_thread
from garde.soap.saml import SAML1_NS, STS_ISSUER, SUCCESS
from tests.gateway.test_e2e_lab import RECIPE, Client, text
from tests.lab.labkit import PHARMACIST, PRESCRIBER, niss

pytestmark = pytest.mark.e2e

VALIDITY = 600.0


def certificate(
    holder: str, *, not_before: datetime | None = None, days: float = 30
) -> soap.Credentials:
    """A care provider's certificate and key, as a keystore would hold them (self-signed:
    the lab has no eHealth CA)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"test {holder}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, holder),
        ]
    )
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return soap.Credentials(cert, key)


async def ask_sts(sts: Client, path: str, body: bytes) -> tuple[int, bytes]:
    status, _, answer = await sts.call(path, soap.REQUEST_SECURE_TOKEN, body)
    return status, answer


def fault_code(body: bytes) -> str | None:
    fault = soap.read_fault(body)
    return None if fault is None else fault.local


def test_connector_tokens_work_through_the_gateway(catalog: Catalog, tmp_path: Path) -> None:
    with lab_in_thread(catalog, base_port=0, token_validity=VALIDITY) as lab:
        wired = catalog.with_endpoints(lab.endpoints)
        catalog_file = tmp_path / "catalog.yaml"
        catalog_file.write_text(
            yaml.safe_dump(wired.model_dump(mode="json", by_alias=True, exclude_none=True))
        )
        config_file = tmp_path / "gateway.yaml"
        config_file.write_text(
            yaml.safe_dump({"health_interval": "500ms", "target_group": "pharmacist"})
        )
        asyncio.run(_scenario(lab.endpoints["sts"]["dc1"], catalog_file, config_file, tmp_path))


async def _scenario(sts_url: str, catalog_file: Path, config_file: Path, tmp: Path) -> None:
    found = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", sts_url)
    assert found, sts_url
    sts, sts_path = Client(int(found.group(1))), found.group(2)

    # The GP's and the pharmacist's software log in as connectors do.
    gp, pharmacist = certificate(PRESCRIBER), certificate(PHARMACIST)
    status, answer = await ask_sts(sts, sts_path, soap.token_request(PRESCRIBER, gp))
    assert status == 200, answer
    gp_token = soap.read_token_response(answer)
    status, answer = await ask_sts(sts, sts_path, soap.token_request(PHARMACIST, pharmacist))
    assert status == 200, answer
    assert soap.REQUEST_SECURE_TOKEN.encode() not in answer
    response = etree.fromstring(answer)
    code = response.find(".//{urn:oasis:names:tc:SAML:1.0:protocol}StatusCode")
    assert code is not None and code.get("Value") == SUCCESS
    pharmacist_token = soap.read_token_response(answer)
    assertion = pharmacist_token.assertion
    assert assertion is not None
    element = etree.fromstring(assertion)
    assert element.tag == f"{{{SAML1_NS}}}Assertion"
    assert element.get("Issuer") == STS_ISSUER
    start, end = pharmacist_token.window()
    assert end - start == pytest.approx(VALIDITY, abs=1)
    # Holder of key: the key is the pharmacist's own certificate.
    held = element.findtext(f".//{{{soap.DSIG_NS}}}X509Certificate")
    assert held is not None
    der = pharmacist.certificate.public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(held) == der

    # A request whose body was changed after signing, and one signed with an expired
    # certificate, are refused with WS-Security faults.
    signed = soap.token_request(PHARMACIST, pharmacist)
    forged = signed.replace(PHARMACIST.encode(), PRESCRIBER.encode())
    status, answer = await ask_sts(sts, sts_path, forged)
    assert status == 500
    assert fault_code(answer) == "FailedCheck"
    old = certificate(PHARMACIST, not_before=datetime.now(UTC) - timedelta(days=40))
    status, answer = await ask_sts(sts, sts_path, soap.token_request(PHARMACIST, old))
    assert status == 500
    fault = soap.read_fault(answer)
    assert fault is not None and fault.local == "InvalidSecurityToken"
    assert "expired" in fault.string

    process = GatewayProcess(catalog_file, config_file, f"sqlite:///{tmp / 'journal.db'}")
    try:
        gateway = Client(await process.start())
        # Software pointed at the gateway also logs in through it: the signed request is
        # passed to the STS as it is (its signature still holds) and the assertion comes back.
        status, _, answer = await gateway.call(
            sts_path, soap.REQUEST_SECURE_TOKEN, soap.token_request(PHARMACIST, pharmacist)
        )
        assert status == 200, answer
        through = soap.read_token_response(answer)
        assert through.assertion is not None and PHARMACIST.encode() in through.assertion
        patient = niss(date(1985, 7, 30))
        prescription = base64.b64encode(
            kmehr.prescription(PRESCRIBER, patient, when=date.today())
        ).decode()
        create = _request(
            "CreatePrescriptionRequest",
            {
                "PrescriberNihii": PRESCRIBER,
                "PatientId": patient,
                "PrescriptionType": "P1",
                "ExpirationDate": date.today().replace(year=date.today().year + 1).isoformat(),
                "Prescription": prescription,
            },
        )
        status, _, body = await gateway.call(
            "/Recip-e/v4/Prescriber",
            f"{RECIPE}:createPrescription",
            soap.with_token(create, gp_token.token),
        )
        assert status == 200, body
        rid = text(body, "Rid")
        assert rid

        # The pharmacist reads it through the gateway with the STS's assertion as token.
        read = _request("GetPrescriptionForExecutorRequest", {"Rid": rid})
        status, _, body = await gateway.call(
            "/Recip-e/v4/Executor",
            f"{RECIPE}:getPrescriptionForExecutor",
            soap.with_token(read, pharmacist_token.token),
        )
        assert status == 200, body
        assert text(body, "Prescription")

        # Without a token, or with an assertion the STS did not sign, Recip-e refuses.
        tampered = pharmacist_token.token.replace(PHARMACIST, PRESCRIBER)
        status, _, body = await gateway.call(
            "/Recip-e/v4/Executor",
            f"{RECIPE}:getPrescriptionForExecutor",
            soap.with_token(read, tampered),
        )
        assert status == 500
        assert fault_code(body) == "InvalidSecurityToken"
    finally:
        await process.stop()


def _request(element: str, fields: dict[str, str]) -> bytes:
    inner = "".join(f"<ns:{k}>{v}</ns:{k}>" for k, v in fields.items())
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/>'
        f'<soap:Body><ns:{element} xmlns:ns="{RECIPE}">{inner}</ns:{element}></soap:Body>'
        "</soap:Envelope>"
    ).encode()
