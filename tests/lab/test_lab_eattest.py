"""eAttest as the real one works, driven by zeep from the lab's WSDL: sent on the day of care,
cancelled by the invoicing number the sending answered and a reason, refused with MyCareNet's
error codes (the published eAttest error list)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from lxml import etree

from garde import soap
from garde.lab import Lab, kmehr
from tests.lab.labkit import PATIENT, PATIENT_2000, PRESCRIBER, Client, Clock

zeep = pytest.importorskip("zeep")
GP = PRESCRIBER
OTHER_GP = "10012477009"


@pytest.fixture
def eattest(lab: Lab, client: Client) -> Iterator[Any]:
    transport = zeep.transports.Transport(timeout=5)
    service = zeep.Client(lab.endpoints["eattest"]["dc1"] + "?wsdl", transport=transport)

    def call(operation: str, **fields: Any) -> Any:
        # Every call carries the caller's token, as a connector's would.
        header = soap.security_header(client.token(GP))
        return getattr(service.service, operation)(**fields, _soapheaders=[header])

    yield call
    transport.session.close()


def _send(eattest: Any, when: date, patient: str = PATIENT) -> Any:
    return eattest(
        "sendAttestation",
        ProviderNihii=GP,
        Ssin=patient,
        Attestation=kmehr.attestation(GP, patient, when=when),
    )


def _refusal(eattest: Any, operation: str, **fields: Any) -> tuple[str, str, str]:
    """(lab code, MyCareNet code, XPath) of a refused call, read from the fault's detail."""
    with pytest.raises(zeep.exceptions.Fault) as raised:
        eattest(operation, **fields)
    detail = raised.value.detail
    assert detail is not None
    business = detail.find(".//{urn:garde:lab:v1}BusinessError")
    ns = "{urn:be:fgov:ehealth:mycarenet:attest:protocol:v3}"
    acknowledge = detail.find(f"{ns}Acknowledge")
    assert acknowledge is not None, etree.tostring(detail)
    assert acknowledge.findtext(f"{ns}Iscomplete") == "false"
    error = acknowledge.find(f"{ns}Error")
    assert error.find(f"{ns}Code").get("S") == "CD-ERROR-MYCARENET"
    return business.get("code"), error.findtext(f"{ns}Code"), error.findtext(f"{ns}Url")


def test_sent_on_the_day_of_care_then_cancelled_once_by_its_number(lab: Lab, eattest: Any) -> None:
    sent = _send(eattest, lab.context.today())
    assert sent.Acknowledge.Iscomplete is True
    number = sent.InvoicingNumber
    assert number and sent.EncounterDate == lab.context.today()

    assert _refusal(eattest, "cancelAttestation", InvoicingNumber=number)[:2] == (
        "REASON_MISSING",
        "100",
    )
    cancelled = eattest(
        "cancelAttestation", InvoicingNumber=number, Reason="1", Ssin=PATIENT, ProviderNihii=GP
    )
    assert cancelled.Status == "cancelled" and cancelled.Acknowledge.Iscomplete is True
    assert [e.business_key for e in lab.ledger.effects(effect="attestation.cancelled")] == [number]

    again = _refusal(eattest, "cancelAttestation", InvoicingNumber=number, Reason="1")
    assert again[:2] == ("ALREADY_CANCELLED", "240")
    assert again[2].endswith("transaction[cgacancellation]/item[invoicingnumber]/content/text")
    assert len(lab.ledger.effects(effect="attestation.cancelled")) == 1


def test_the_day_of_care_rule_gives_the_real_codes(lab: Lab, eattest: Any, clock: Clock) -> None:
    today = lab.context.today()
    past = _refusal(
        eattest,
        "sendAttestation",
        ProviderNihii=GP,
        Ssin=PATIENT,
        Attestation=kmehr.attestation(GP, PATIENT, when=today - timedelta(days=1)),
    )
    assert past == (
        "NOT_SAME_DAY",
        "191",
        "/SendTransactionRequest/kmehrmessage/folder/transaction[cga]/date",
    )
    future = kmehr.attestation(GP, PATIENT, when=today + timedelta(days=1))
    code = _refusal(eattest, "sendAttestation", ProviderNihii=GP, Ssin=PATIENT, Attestation=future)
    assert code[:2] == ("NOT_SAME_DAY", "146")
    assert lab.ledger.count() == 0


def test_a_cancellation_must_quote_the_right_number(
    lab: Lab, eattest: Any, clock: Clock, client: Client
) -> None:
    number = _send(eattest, lab.context.today()).InvoicingNumber
    cancel = {"operation": "cancelAttestation", "Reason": "2"}
    assert _refusal(eattest, **cancel)[:2] == ("INVOICING_NUMBER_MISSING", "100")
    assert _refusal(eattest, **cancel, InvoicingNumber="EA0000")[:2] == (
        "ATTESTATION_UNKNOWN",
        "141",
    )
    other_patient = _refusal(eattest, **cancel, InvoicingNumber=number, Ssin=PATIENT_2000)
    assert other_patient[:2] == ("PATIENT_MISMATCH", "244")
    other_author = _refusal(eattest, **cancel, InvoicingNumber=number, ProviderNihii=OTHER_GP)
    assert other_author[:2] == ("AUTHOR_MISMATCH", "245")
    clock.advance(31 * 86400)
    client.tokens.clear()  # a month later: a new day's token
    assert _refusal(eattest, **cancel, InvoicingNumber=number)[:2] == ("CANCEL_TOO_LATE", "239")
    assert lab.ledger.effects(effect="attestation.cancelled") == []
