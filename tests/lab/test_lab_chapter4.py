"""Chapter IV answers as the real service gives them (CD-MAA-RESPONSETYPE), driven by zeep
from the lab's WSDLs: an agreement or a refusal at once, or ``intreatment`` whose decision
only the consultation shows, later."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from garde import soap
from garde.lab import Lab
from tests.lab.labkit import PATIENT, PRESCRIBER, Client, Clock

zeep = pytest.importorskip("zeep")


@pytest.fixture
def services(lab: Lab, client: Client) -> Iterator[tuple[Any, Any, Any]]:
    transports = [zeep.transports.Transport(timeout=5) for _ in range(2)]
    admission, consultation = (
        zeep.Client(lab.endpoints[name]["dc1"] + "?wsdl", transport=transport).service
        for name, transport in zip(("chapter4", "chapter4-consultation"), transports, strict=True)
    )
    yield admission, consultation, soap.security_header(client.token(PRESCRIBER))
    for transport in transports:
        transport.session.close()


def test_answers_at_once_or_in_treatment_then_decided(
    services: tuple[Any, Any, Any], clock: Clock
) -> None:
    admission, consultation, header = services
    asked = [
        admission.askChap4MedicalAdvisorAgreement(
            PrescriberNihii=PRESCRIBER,
            Ssin=PATIENT,
            Paragraph=f"{4770000 + n}",
            RequestType="newrequest",
            _soapheaders=[header],
        )
        for n in range(24)
    ]
    kinds = {a.ResponseType for a in asked}
    assert kinds == {"agreement", "refusal", "intreatment"}, kinds
    for answer in asked:
        if answer.ResponseType == "agreement":
            assert answer.DecisionReference and answer.AgreementStartDate < answer.AgreementEndDate
        elif answer.ResponseType == "refusal":
            assert answer.RefusalJustification and answer.AgreementEndDate is None
        else:
            assert answer.DecisionReference is None and answer.Status == "pending"

    waiting = next(a for a in asked if a.ResponseType == "intreatment")
    early = consultation.consultChap4MedicalAdvisorAgreement(
        Ssin=PATIENT, Reference=waiting.Reference, _soapheaders=[header]
    )
    assert [a.ResponseType for a in early] == ["intreatment"]
    clock.advance(121)
    later = consultation.consultChap4MedicalAdvisorAgreement(Ssin=PATIENT, _soapheaders=[header])
    by_reference = {a.Reference: a for a in later}
    assert len(by_reference) == len(asked)
    decided = by_reference[waiting.Reference]
    assert decided.ResponseType in ("agreement", "refusal") and decided.DecisionDate
    for answer in asked:  # an immediate answer stays what it was
        if answer.ResponseType != "intreatment":
            assert by_reference[answer.Reference].ResponseType == answer.ResponseType


def test_an_extension_quotes_an_agreement_of_the_same_patient(
    services: tuple[Any, Any, Any],
) -> None:
    admission, _, header = services
    first = admission.askChap4MedicalAdvisorAgreement(
        PrescriberNihii=PRESCRIBER,
        Ssin=PATIENT,
        Paragraph="4770000",
        RequestType="newrequest",
        _soapheaders=[header],
    )
    extended = admission.askChap4MedicalAdvisorAgreement(
        PrescriberNihii=PRESCRIBER,
        Ssin=PATIENT,
        Paragraph="4770000",
        RequestType="noncontinuousextension",
        Reference=first.Reference,
        _soapheaders=[header],
    )
    assert extended.ResponseType in ("agreement", "refusal", "intreatment")
    with pytest.raises(zeep.exceptions.Fault) as refused:
        admission.askChap4MedicalAdvisorAgreement(
            PrescriberNihii=PRESCRIBER,
            Ssin=PATIENT,
            Paragraph="4770000",
            RequestType="renewal",
            _soapheaders=[header],
        )
    assert "CD-MAA-REQUESTTYPE" in refused.value.message
