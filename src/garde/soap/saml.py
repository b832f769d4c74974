"""The eHealth STS's SAML 1.1 exchange: the signed request connectors send, the assertion.

Facts from the platform's published STS contract, as open-source connectors use it
(SecureTokenService, ``urn:be:fgov:ehealth:sts:protocol:v1``, SOAPAction
``urn:be:fgov:ehealth:sts:protocol:v1:RequestSecureToken``): the SOAP body is a SAML 1.1
``samlp:Request`` holding an ``samlp:AttributeQuery`` (a ``saml:Subject`` named by the
certificate's subject, with a holder-of-key ``SubjectConfirmation`` whose data is an
assertion of the requester's own attributes, then ``AttributeDesignator``s for what the STS
must certify). The header's ``wsse:Security`` carries the caller's X.509 certificate as a
``BinarySecurityToken``, a ``wsu:Timestamp`` and an XML signature of the body and timestamp.
The STS answers a ``samlp:Response`` with ``samlp:Status`` and a ``saml:Assertion`` (issuer
``urn:be:fgov:ehealth:sts:1_0``, ``Conditions NotBefore / NotOnOrAfter``, an
``AuthenticationStatement`` and an ``AttributeStatement``, holder-of-key confirmation),
enveloped-signed by the STS.

Signatures are made and checked by signxml (exclusive canonicalisation, RSA-SHA256); the
XML is parsed by ``garde.soap.parser`` before signxml sees it.
"""

from __future__ import annotations

import base64
import secrets
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from garde.errors import MalformedMessage
from garde.soap.names import (
    BINARY_TOKEN,
    BODY,
    DSIG_NS,
    ENVELOPE,
    HEADER,
    SAML1_NS,
    SECURITY,
    SOAP_ENV_NS,
    WSSE_NS,
    WSU_NS,
    qn,
)
from garde.soap.parser import Element, parse_xml

SAMLP1_NS = "urn:oasis:names:tc:SAML:1.0:protocol"
STS_ISSUER = "urn:be:fgov:ehealth:sts:1_0"
REQUEST_SECURE_TOKEN = "urn:be:fgov:ehealth:sts:protocol:v1:RequestSecureToken"  # noqa: S105
"""The SOAPAction connectors send with the SAML 1.1 request."""
IDENTIFICATION_NS = "urn:be:fgov:identification-namespace"
CERTIFIED_NS = "urn:be:fgov:certified-namespace:ehealth"
PERSON_SSIN = "urn:be:fgov:person:ssin"
HOLDER_SSIN = "urn:be:fgov:ehealth:1.0:certificateholder:person:ssin"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"
X509_SUBJECT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
X509_PKI = "urn:oasis:names:tc:SAML:1.0:am:X509-PKI"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
SUCCESS = "samlp:Success"
REQUESTER = "samlp:Requester"

REQUEST = qn(SAMLP1_NS, "Request")
RESPONSE = qn(SAMLP1_NS, "Response")
ASSERTION = qn(SAML1_NS, "Assertion")
_WSU_ID = qn(WSU_NS, "Id")
_NS = {"samlp": SAMLP1_NS, "saml": SAML1_NS, "ds": DSIG_NS, "wsse": WSSE_NS, "wsu": WSU_NS}

DEFAULT_DESIGNATORS = ((IDENTIFICATION_NS, HOLDER_SSIN), (IDENTIFICATION_NS, PERSON_SSIN))


class SignatureRejected(Exception):
    """A signature or a certificate the reader cannot accept; ``code`` is the WS-Security
    fault code a service answers with (``wsse:FailedCheck``, ``wsse:InvalidSecurityToken``,
    ``wsse:InvalidSecurity``)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Credentials:
    """An X.509 certificate and its RSA private key: what signs a request or an assertion."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @classmethod
    def self_signed(
        cls, common_name: str, *, serial_number: str | None = None, days: float = 365
    ) -> Credentials:
        """A fresh RSA key with a self-signed certificate (the lab's own, or a test's)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if serial_number:
            attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
        name = x509.Name(attributes)
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        return self.certificate.issuer.rfc4514_string()


@dataclass(frozen=True, slots=True)
class TokenQuery:
    """An STS request as read: who asks (by certificate), for which identity and attributes."""

    request_id: str
    identity: str
    certificate: x509.Certificate
    subject: str
    subject_qualifier: str
    attributes: tuple[tuple[str, str, str], ...]
    """``(namespace, name, value)`` the requester asserts about itself."""
    designators: tuple[tuple[str, str], ...]
    """``(namespace, name)`` the requester asks the STS to certify."""


@dataclass(frozen=True, slots=True)
class AssertionFacts:
    """What a service reads in an STS assertion it has checked."""

    assertion_id: str
    subject: str
    identity: str
    not_before: str
    not_on_or_after: str
    attributes: tuple[tuple[str, str, str], ...] = field(default=())


def instant(moment: datetime) -> str:
    """A SAML ``dateTime`` in UTC with milliseconds, as the STS writes them."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(16)}"


def _b64_der(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def _sub(parent: Element, ns: str, local: str, text: str | None = None, **attrs: str) -> Element:
    element = etree.SubElement(parent, qn(ns, local), attrs)
    if text is not None:
        element.text = text
    return element


def _signer(*, detached: bool = False) -> Any:
    from signxml.algorithms import CanonicalizationMethod, SignatureConstructionMethod
    from signxml.signer import XMLSigner

    method = (
        SignatureConstructionMethod.detached if detached else SignatureConstructionMethod.enveloped
    )
    return XMLSigner(
        method=method,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )


# -- the request ---------------------------------------------------------------------------


def saml_token_request(
    identity: str,
    credentials: Credentials,
    *,
    now: datetime | None = None,
    designators: tuple[tuple[str, str], ...] = DEFAULT_DESIGNATORS,
    validity: timedelta = timedelta(hours=24),
) -> bytes:
    """The signed SOAP envelope of ``RequestSecureToken`` for ``identity`` (an SSIN, or the
    number the caller's certificate stands for), signed with ``credentials``."""
    from signxml.signer import SignatureReference  # imported when a signature is made

    moment = now or datetime.now(UTC)
    envelope = etree.Element(ENVELOPE, nsmap={"soap": SOAP_ENV_NS})
    header = etree.SubElement(envelope, HEADER)
    security = etree.SubElement(
        header, SECURITY, {qn(SOAP_ENV_NS, "mustUnderstand"): "1"}, nsmap={"wsse": WSSE_NS}
    )
    token_id, timestamp_id, body_id = _new_id("X509-"), _new_id("TS-"), _new_id("id-")
    binary = etree.SubElement(
        security,
        BINARY_TOKEN,
        {"EncodingType": BASE64_BINARY, "ValueType": X509V3, _WSU_ID: token_id},
        nsmap={"wsu": WSU_NS},
    )
    binary.text = _b64_der(credentials.certificate)
    timestamp = _sub(security, WSU_NS, "Timestamp", **{_WSU_ID: timestamp_id})
    _sub(timestamp, WSU_NS, "Created", instant(moment))
    _sub(timestamp, WSU_NS, "Expires", instant(moment + timedelta(minutes=5)))
    body = etree.SubElement(envelope, BODY, {_WSU_ID: body_id}, nsmap={"wsu": WSU_NS})
    body.append(_attribute_query(identity, credentials, moment, designators, validity))

    key_info = etree.Element(qn(DSIG_NS, "KeyInfo"), nsmap={"ds": DSIG_NS})
    reference = etree.SubElement(
        key_info, qn(WSSE_NS, "SecurityTokenReference"), nsmap={"wsse": WSSE_NS}
    )
    etree.SubElement(reference, qn(WSSE_NS, "Reference"), URI=f"#{token_id}", ValueType=X509V3)
    signature = _signer(detached=True).sign(
        envelope,
        key=credentials.key,
        reference_uri=[
            SignatureReference(URI=f"#{body_id}"),
            SignatureReference(URI=f"#{timestamp_id}"),
        ],
        key_info=key_info,
    )
    security.append(signature)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _attribute_query(
    identity: str,
    credentials: Credentials,
    moment: datetime,
    designators: tuple[tuple[str, str], ...],
    validity: timedelta,
) -> Element:
    request = etree.Element(
        REQUEST,
        {
            "MajorVersion": "1",
            "MinorVersion": "1",
            "RequestID": _new_id("request-"),
            "IssueInstant": instant(moment),
        },
        nsmap={"samlp": SAMLP1_NS, "saml": SAML1_NS, "ds": DSIG_NS},
    )
    query = _sub(request, SAMLP1_NS, "AttributeQuery")
    subject = _sub(query, SAML1_NS, "Subject")
    _name_identifier(subject, credentials)
    confirmation = _sub(subject, SAML1_NS, "SubjectConfirmation")
    _sub(confirmation, SAML1_NS, "ConfirmationMethod", HOLDER_OF_KEY)
    data = _sub(confirmation, SAML1_NS, "SubjectConfirmationData")
    # The requester's own claims travel as an (unsigned) assertion in the confirmation data.
    claims = _sub(
        data,
        SAML1_NS,
        "Assertion",
        MajorVersion="1",
        MinorVersion="1",
        AssertionID=_new_id("assertion-"),
        Issuer=credentials.subject,
        IssueInstant=instant(moment),
    )
    _sub(
        claims,
        SAML1_NS,
        "Conditions",
        NotBefore=instant(moment),
        NotOnOrAfter=instant(moment + validity),
    )
    statement = _sub(claims, SAML1_NS, "AttributeStatement")
    _name_identifier(_sub(statement, SAML1_NS, "Subject"), credentials)
    for namespace, name in ((IDENTIFICATION_NS, HOLDER_SSIN), (IDENTIFICATION_NS, PERSON_SSIN)):
        attribute = _sub(
            statement, SAML1_NS, "Attribute", AttributeName=name, AttributeNamespace=namespace
        )
        _sub(attribute, SAML1_NS, "AttributeValue", identity)
    _key_info(confirmation, credentials.certificate)
    for namespace, name in designators:
        _sub(
            query,
            SAML1_NS,
            "AttributeDesignator",
            AttributeName=name,
            AttributeNamespace=namespace,
        )
    return request


def _name_identifier(subject: Element, credentials: Credentials) -> None:
    _sub(
        subject,
        SAML1_NS,
        "NameIdentifier",
        credentials.subject,
        Format=X509_SUBJECT,
        NameQualifier=credentials.issuer,
    )


def _key_info(parent: Element, certificate: x509.Certificate) -> None:
    key_info = _sub(parent, DSIG_NS, "KeyInfo")
    _sub(_sub(key_info, DSIG_NS, "X509Data"), DSIG_NS, "X509Certificate", _b64_der(certificate))


def read_token_query(envelope: Element, *, now: datetime | None = None) -> TokenQuery:
    """The request in a parsed STS envelope (its root), its signature checked against the
    certificate it carries; ``SignatureRejected`` if it is not signed by that certificate or
    the certificate is not valid ``now``, ``MalformedMessage`` if it is not an STS request.

    Who issued the certificate is the STS's call (the lab trusts any issuer).
    """
    moment = now or datetime.now(UTC)
    request = envelope.find(f"{BODY}/{REQUEST}")
    if request is None:
        raise MalformedMessage("expected samlp:Request in the Body of the STS request")
    security = envelope.find(f"{HEADER}/{SECURITY}")
    if security is None:
        raise SignatureRejected(
            "wsse:InvalidSecurity",
            "the STS request has no wsse:Security header: sign it with your certificate",
        )
    binary = security.find(BINARY_TOKEN)
    if binary is None or not (binary.text or "").strip():
        raise SignatureRejected(
            "wsse:InvalidSecurityToken",
            "the STS request carries no X.509 certificate (wsse:BinarySecurityToken)",
        )
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(binary.text or ""))
    except ValueError:
        raise SignatureRejected(
            "wsse:InvalidSecurityToken",
            "the wsse:BinarySecurityToken of the STS request is not an X.509 certificate",
        ) from None
    if moment < certificate.not_valid_before_utc:
        raise SignatureRejected(
            "wsse:InvalidSecurityToken",
            f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d}",
        )
    if moment >= certificate.not_valid_after_utc:
        raise SignatureRejected(
            "wsse:InvalidSecurityToken",
            f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}: renew it"
            " (a new keystore from the eHealth certificate service)",
        )
    if security.find(qn(DSIG_NS, "Signature")) is None:
        raise SignatureRejected(
            "wsse:InvalidSecurity", "the STS request is not signed (no ds:Signature)"
        )
    signed = _verify(envelope, certificate, moment, expect_references=2)
    body = next((element for element in signed if element.tag == BODY), None)
    # What is read is what was signed (signxml hands back the signed elements): a request
    # moved beside a signed body is never the one read.
    signed_request = None if body is None else body.find(REQUEST)
    if signed_request is None:
        raise SignatureRejected("wsse:FailedCheck", "the signature does not cover the Body")
    return _query_of(signed_request, certificate)


def _query_of(request: Element, certificate: x509.Certificate) -> TokenQuery:
    query = request.find(qn(SAMLP1_NS, "AttributeQuery"))
    if query is None:
        raise MalformedMessage("the samlp:Request holds no samlp:AttributeQuery")
    name = query.find(f"{qn(SAML1_NS, 'Subject')}/{qn(SAML1_NS, 'NameIdentifier')}")
    if name is None or not (name.text or "").strip():
        raise MalformedMessage("the AttributeQuery's saml:Subject has no saml:NameIdentifier")
    attributes = tuple(
        (
            attribute.get("AttributeNamespace", ""),
            attribute.get("AttributeName", ""),
            (attribute.findtext(qn(SAML1_NS, "AttributeValue")) or "").strip(),
        )
        for attribute in query.iterfind(".//saml:AttributeStatement/saml:Attribute", _NS)
    )
    identity = next(
        (value for ns, n, value in attributes if n in (PERSON_SSIN, HOLDER_SSIN) and value),
        "",
    )
    designators = tuple(
        (d.get("AttributeNamespace", ""), d.get("AttributeName", ""))
        for d in query.iterfind("saml:AttributeDesignator", _NS)
    )
    return TokenQuery(
        request.get("RequestID", ""),
        identity,
        certificate,
        (name.text or "").strip(),
        name.get("NameQualifier", ""),
        attributes,
        designators,
    )


def _verify(
    root: Element,
    certificate: x509.Certificate,
    moment: datetime,
    *,
    expect_references: int = 1,
    id_attribute: str | None = None,
) -> list[Element]:
    """The elements ``root``'s signature covers, checked with ``certificate`` (whose dates
    are judged at ``moment``)."""
    from signxml.exceptions import InvalidInput, InvalidSignature
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    config = SignatureConfiguration(
        expect_references=expect_references,
        ignore_ambiguous_key_info=True,
        verification_time=moment,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # signxml warns about key info it does not use
            results = XMLVerifier().verify(
                root, x509_cert=certificate, expect_config=config, id_attribute=id_attribute
            )
    except (InvalidSignature, InvalidInput) as exc:
        raise SignatureRejected("wsse:FailedCheck", f"the signature is not valid: {exc}") from None
    found = results if isinstance(results, list) else [results]
    return [r.signed_xml for r in found if r.signed_xml is not None]


# -- the answer ----------------------------------------------------------------------------


def assertion_response(
    query: TokenQuery,
    issuer: Credentials,
    *,
    not_before: datetime,
    not_on_or_after: datetime,
) -> bytes:
    """The STS's ``samlp:Response`` for ``query``: one assertion valid in the window, signed
    with ``issuer``; holder-of-key, the key being the requester's certificate."""
    response = etree.Element(
        RESPONSE,
        {
            "MajorVersion": "1",
            "MinorVersion": "1",
            "ResponseID": _new_id("response-"),
            "InResponseTo": query.request_id,
            "IssueInstant": instant(not_before),
        },
        nsmap={"samlp": SAMLP1_NS, "saml": SAML1_NS, "ds": DSIG_NS},
    )
    status = _sub(response, SAMLP1_NS, "Status")
    _sub(status, SAMLP1_NS, "StatusCode", Value=SUCCESS)
    assertion = etree.Element(
        ASSERTION,
        {
            "MajorVersion": "1",
            "MinorVersion": "1",
            "AssertionID": _new_id("_"),
            "Issuer": STS_ISSUER,
            "IssueInstant": instant(not_before),
        },
        nsmap={"saml": SAML1_NS, "ds": DSIG_NS},
    )
    _sub(
        assertion,
        SAML1_NS,
        "Conditions",
        NotBefore=instant(not_before),
        NotOnOrAfter=instant(not_on_or_after),
    )
    authentication = _sub(
        assertion,
        SAML1_NS,
        "AuthenticationStatement",
        AuthenticationInstant=instant(not_before),
        AuthenticationMethod=X509_PKI,
    )
    _confirmed_subject(authentication, query)
    statement = _sub(assertion, SAML1_NS, "AttributeStatement")
    _confirmed_subject(statement, query)
    asked = query.designators or DEFAULT_DESIGNATORS
    for namespace, name in asked:
        attribute = _sub(
            statement, SAML1_NS, "Attribute", AttributeName=name, AttributeNamespace=namespace
        )
        # Identification attributes carry the identity; certified qualities are granted
        # ("true"): the lab has no authentic source of professions to consult.
        value = query.identity if namespace == IDENTIFICATION_NS else "true"
        _sub(attribute, SAML1_NS, "AttributeValue", value)
    signed = _signer().sign(
        assertion,
        key=issuer.key,
        cert=issuer.certificate_pem.decode("ascii"),
        reference_uri=f"#{assertion.get('AssertionID')}",
        id_attribute="AssertionID",
    )
    response.append(signed)
    return bytes(etree.tostring(_envelope(response), xml_declaration=True, encoding="UTF-8"))


def _confirmed_subject(parent: Element, query: TokenQuery) -> None:
    subject = _sub(parent, SAML1_NS, "Subject")
    _sub(
        subject,
        SAML1_NS,
        "NameIdentifier",
        query.subject,
        Format=X509_SUBJECT,
        NameQualifier=query.subject_qualifier,
    )
    confirmation = _sub(subject, SAML1_NS, "SubjectConfirmation")
    _sub(confirmation, SAML1_NS, "ConfirmationMethod", HOLDER_OF_KEY)
    _key_info(confirmation, query.certificate)


def status_response(query_id: str, code: str, message: str, *, now: datetime) -> bytes:
    """A ``samlp:Response`` without assertion: the STS refuses what was asked."""
    response = etree.Element(
        RESPONSE,
        {
            "MajorVersion": "1",
            "MinorVersion": "1",
            "ResponseID": _new_id("response-"),
            "InResponseTo": query_id,
            "IssueInstant": instant(now),
        },
        nsmap={"samlp": SAMLP1_NS},
    )
    status = _sub(response, SAMLP1_NS, "Status")
    _sub(status, SAMLP1_NS, "StatusCode", Value=code)
    _sub(status, SAMLP1_NS, "StatusMessage", message)
    return bytes(etree.tostring(_envelope(response), xml_declaration=True, encoding="UTF-8"))


def _envelope(payload: Element) -> Element:
    envelope = etree.Element(ENVELOPE, nsmap={"soap": SOAP_ENV_NS})
    etree.SubElement(envelope, BODY).append(payload)
    return envelope


def read_assertion_response(response: Element) -> tuple[bytes, str, str]:
    """``(assertion XML, NotBefore, NotOnOrAfter)`` of a ``samlp:Response``;
    ``MalformedMessage`` if it is not a success or holds no assertion with Conditions."""
    code = response.find("samlp:Status/samlp:StatusCode", _NS)
    value = "" if code is None else code.get("Value", "")
    if value.rpartition(":")[2] != "Success":
        message = (response.findtext("samlp:Status/samlp:StatusMessage", None, _NS) or "").strip()
        raise MalformedMessage(
            f"the STS refused the request: status {value or 'missing'}"
            + (f" ({message})" if message else "")
        )
    assertion = response.find(ASSERTION)
    if assertion is None:
        raise MalformedMessage("the STS's samlp:Response holds no saml:Assertion")
    conditions = assertion.find(qn(SAML1_NS, "Conditions"))
    not_before = "" if conditions is None else conditions.get("NotBefore", "")
    not_after = "" if conditions is None else conditions.get("NotOnOrAfter", "")
    if not not_before or not not_after:
        raise MalformedMessage(
            "the STS's assertion lacks Conditions NotBefore and NotOnOrAfter (its validity)"
        )
    return standalone(assertion), not_before, not_after


def standalone(element: Element) -> bytes:
    """``element`` alone, with the namespaces it uses declared on it (an assertion moved out
    of its response keeps its signature: it is canonicalised exclusively)."""
    copy = parse_xml(etree.tostring(element), max_bytes=None)
    etree.cleanup_namespaces(copy)
    return bytes(etree.tostring(copy, encoding="utf-8"))


def verify_assertion(assertion: bytes, issuer: x509.Certificate) -> AssertionFacts:
    """The facts of an STS assertion signed by ``issuer``; ``SignatureRejected`` if it is not.

    The validity window is returned, not judged: the service compares it with its clock.
    """
    try:
        root = parse_xml(assertion, max_bytes=None)
    except MalformedMessage as exc:
        raise SignatureRejected("wsse:InvalidSecurityToken", f"the assertion: {exc}") from None
    if root.tag != ASSERTION:
        raise SignatureRejected(
            "wsse:InvalidSecurityToken", "the security token is not a SAML 1.1 saml:Assertion"
        )
    if root.find(qn(DSIG_NS, "Signature")) is None:
        raise SignatureRejected("wsse:FailedCheck", "the assertion is not signed by the STS")
    # The STS's own certificate is trusted as long as its key signs: its dates are not judged.
    _verify(root, issuer, issuer.not_valid_before_utc, id_attribute="AssertionID")
    conditions = root.find(qn(SAML1_NS, "Conditions"))
    subject = (root.findtext(".//saml:Subject/saml:NameIdentifier", None, _NS) or "").strip()
    attributes = tuple(
        (
            a.get("AttributeNamespace", ""),
            a.get("AttributeName", ""),
            (a.findtext(qn(SAML1_NS, "AttributeValue")) or "").strip(),
        )
        for a in root.iterfind("saml:AttributeStatement/saml:Attribute", _NS)
    )
    identity = next(
        (v for ns, n, v in attributes if ns == IDENTIFICATION_NS and n == PERSON_SSIN and v),
        subject,
    )
    return AssertionFacts(
        root.get("AssertionID", ""),
        subject,
        identity,
        "" if conditions is None else conditions.get("NotBefore", ""),
        "" if conditions is None else conditions.get("NotOnOrAfter", ""),
        attributes,
    )
