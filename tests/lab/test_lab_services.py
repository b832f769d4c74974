"""The other simulated services: MyCareNet, Chapter IV, hubs, eHealthBox, ETK, KGSS, STS."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from garde.lab import Lab, kmehr
from garde.lab.services.insurability import profile
from tests.lab.labkit import PATIENT, PATIENT_2000, PHARMACIST, PRESCRIBER, Client, Clock, niss

GP = PRESCRIBER


def _uninsured() -> str:
    for serial in range(1, 999):
        candidate = niss(date(1970, 1, 1), serial)
        if not profile(candidate).insured:
            return candidate
    raise AssertionError("no uninsured patient among 998 serials")


def test_insurability_is_deterministic_per_patient(client: Client) -> None:
    first = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, dc="dc1")
    second = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, dc="dc3")
    assert first.ok
    assert first.text("Insurable") == "true"
    assert first.text("Mutuality") == second.text("Mutuality")
    assert first.text("Ct1") in ("110", "111")
    member = client.call("memberdata", "memberDataConsultation", {"Ssin": PATIENT})
    assert member.text("Mutuality") == first.text("Mutuality")


def test_some_patients_are_not_insured(client: Client) -> None:
    answer = client.call("insurability", "getInsurability", {"Ssin": _uninsured()})
    assert answer.ok
    assert answer.text("Insurable") == "false"
    assert answer.text("Mutuality") is None


def test_insurability_refuses_an_invalid_niss(client: Client) -> None:
    answer = client.call("insurability", "getInsurability", {"Ssin": "85073003300"})
    assert answer.business() == "INVALID_NISS"


def _attest(client: Client, when: date, patient: str = PATIENT, key: str | None = None):
    return client.call(
        "eattest",
        "sendAttestation",
        {
            "ProviderNihii": GP,
            "Ssin": patient,
            "Attestation": kmehr.attestation(GP, patient, when=when),
        },
        identity=GP,
        key=key,
    )


def test_eattest_for_another_day_is_refused(client: Client, lab: Lab) -> None:
    yesterday = lab.context.today() - timedelta(days=1)
    answer = _attest(client, yesterday)
    assert answer.business() == "NOT_SAME_DAY"
    assert lab.ledger.count() == 0


def test_eattest_journaled_until_after_midnight_is_refused(
    client: Client, lab: Lab, clock: Clock
) -> None:
    """An eAttest made today but delivered tomorrow meets the same-day rule."""
    made = lab.context.today()
    clock.advance(86400)
    assert _attest(client, made).business() == "NOT_SAME_DAY"


def test_efact_is_acknowledged_only_later(client: Client, clock: Clock) -> None:
    posted = client.call(
        "efact", "postRequest", {"SenderNihii": GP, "Batch": b"invoice batch 920000"}
    )
    assert posted.text("Status") == "received"
    reference = posted.text("Reference")
    assert client.call("efact", "getRequest", {"Reference": reference}).text("Status") == "received"
    early = client.call("efact", "confirmRequest", {"Reference": reference})
    assert early.business() == "NOT_ACKNOWLEDGED"
    clock.advance(61)
    later = client.call("efact", "getRequest", {"Reference": reference}, dc="dc2")
    assert later.text("Status") == "acknowledged"
    assert later.text("AcknowledgedAt")
    confirmed = client.call("efact", "confirmRequest", {"Reference": reference})
    assert confirmed.text("Status") == "confirmed"
    assert client.call("efact", "getRequest", {"Reference": "EF0"}).business() == "REQUEST_UNKNOWN"


def test_etarif_gives_fee_and_shares(client: Client) -> None:
    answer = client.call(
        "etarif", "consultTarif", {"ProviderNihii": GP, "Ssin": PATIENT, "Nomenclature": "101010"}
    )
    assert answer.ok
    fee = float(answer.text("Fee") or 0)
    share = float(answer.text("PatientShare") or 0)
    refund = float(answer.text("Reimbursement") or 0)
    assert fee > 0
    assert round(share + refund, 2) == round(fee, 2)
    bad = client.call(
        "etarif", "consultTarif", {"ProviderNihii": GP, "Ssin": PATIENT, "Nomenclature": "12"}
    )
    assert bad.business() == "INVALID_NOMENCLATURE"
    uninsured = client.call(
        "etarif",
        "consultTarif",
        {"ProviderNihii": GP, "Ssin": _uninsured(), "Nomenclature": "101010"},
    )
    assert uninsured.business() == "NOT_INSURED"


def test_chapter4_refuses_bad_request_types_and_unknown_agreements(client: Client) -> None:
    base = {"PrescriberNihii": GP, "Ssin": PATIENT, "Paragraph": "4770000"}
    bad = client.call(
        "chapter4", "askChap4MedicalAdvisorAgreement", {**base, "RequestType": "renewal"}
    )
    assert bad.business() == "INVALID_REQUEST_TYPE"
    extension = client.call(
        "chapter4",
        "askChap4MedicalAdvisorAgreement",
        {**base, "RequestType": "extension", "Reference": "C4NOPE"},
    )
    assert extension.business() == "AGREEMENT_UNKNOWN"


def test_hub_refuses_without_a_therapeutic_link(client: Client, lab: Lab) -> None:
    today = lab.context.today()
    document = kmehr.sumehr(GP, PATIENT, when=today)
    refused = client.call(
        "hub", "putTransaction", {"Ssin": PATIENT, "Transaction": document}, identity=GP
    )
    assert refused.business() == "NO_THERAPEUTIC_LINK"
    linked = client.call("hub", "putTherapeuticLink", {"Ssin": PATIENT}, identity=GP)
    assert linked.text("Status") == "linked"
    stored = client.call(
        "hub", "putTransaction", {"Ssin": PATIENT, "Transaction": document}, identity=GP
    )
    assert stored.ok
    transaction_id = stored.text("TransactionId")
    listed = client.call("hub", "getTransactionList", {"Ssin": PATIENT}, identity=GP, dc="dc2")
    assert listed.texts("Type") == ["sumehr"]
    got = client.call(
        "hub", "getTransaction", {"Ssin": PATIENT, "TransactionId": transaction_id}, identity=GP
    )
    assert got.text("Type") == "sumehr"
    # Another caregiver has no link with this patient.
    other = client.call("hub", "getTransactionList", {"Ssin": PATIENT}, identity=PHARMACIST)
    assert other.business() == "NO_THERAPEUTIC_LINK"
    revoked = client.call(
        "hub", "revokeTransaction", {"Ssin": PATIENT, "TransactionId": transaction_id}, identity=GP
    )
    assert revoked.text("Status") == "revoked"
    gone = client.call(
        "hub", "getTransaction", {"Ssin": PATIENT, "TransactionId": transaction_id}, identity=GP
    )
    assert gone.business() == "TRANSACTION_REVOKED"


def test_ehbox_send_list_get_move_delete(client: Client, lab: Lab) -> None:
    sent = client.call(
        "ehbox-publication",
        "sendMessage",
        {
            "RecipientType": "NIHII",
            "Recipient": PHARMACIST,
            "Subject": "lab results",
            "Content": b"hi",
        },
        identity=GP,
    )
    assert sent.ok
    message_id = sent.text("MessageId")
    inbox = client.call("ehbox", "getMessagesList", {}, identity=PHARMACIST)
    assert inbox.texts("MessageId") == [message_id]
    full = client.call("ehbox", "getFullMessage", {"MessageId": message_id}, identity=PHARMACIST)
    assert full.text("Subject") == "lab results"
    snooper = client.call("ehbox", "getFullMessage", {"MessageId": message_id}, identity=GP)
    assert snooper.business() == "MESSAGE_UNKNOWN"
    moved = client.call(
        "ehbox",
        "moveMessage",
        {"MessageId": message_id, "Destination": "BININBOX"},
        identity=PHARMACIST,
    )
    assert moved.text("Box") == "BININBOX"
    assert client.call("ehbox", "getMessagesList", {}, identity=PHARMACIST).texts("MessageId") == []
    deleted = client.call("ehbox", "deleteMessage", {"MessageId": message_id}, identity=PHARMACIST)
    assert deleted.text("Status") == "deleted"
    bad = client.call(
        "ehbox-publication",
        "sendMessage",
        {"RecipientType": "NIHII", "Recipient": "12", "Subject": "x", "Content": b"x"},
    )
    assert bad.business() == "INVALID_NIHII"
    assert len(lab.ledger.effects(effect="message.stored")) == 1


def test_etk_is_stable_and_checks_identifiers(client: Client) -> None:
    criteria = {"SearchCriteria": {"Type": "NIHII", "Value": PHARMACIST}}
    first = client.call("etk", "getEtk", criteria)
    second = client.call("etk", "getEtk", criteria, dc="dc2")
    assert first.ok
    assert first.text("ETK") == second.text("ETK")
    cbe = client.call("etk", "getEtk", {"SearchCriteria": {"Type": "CBE", "Value": "0403170701"}})
    assert cbe.ok
    bad = client.call("etk", "getEtk", {"SearchCriteria": {"Type": "CBE", "Value": "0403170702"}})
    assert bad.business() == "INVALID_IDENTIFIER"
    patient = client.call(
        "etk", "getEtk", {"SearchCriteria": {"Type": "SSIN", "Value": PATIENT_2000}}
    )
    assert patient.ok


def test_kgss_keys_are_found_again_in_any_data_center(client: Client) -> None:
    created = client.call("kgss", "getNewKey", {"AllowedReader": [PHARMACIST]})
    key_id = created.text("KeyIdentifier")
    again = client.call("kgss", "getKey", {"KeyIdentifier": key_id}, dc="dc3")
    assert again.text("Key") == created.text("Key")
    assert client.call("kgss", "getKey", {"KeyIdentifier": "nope"}).business() == "KEY_UNKNOWN"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"Identity": "", "Credential": "s"}, "INVALID_IDENTITY"),
        ({"Identity": "me", "Credential": ""}, "FAILED_AUTHENTICATION"),
    ],
)
def test_sts_refuses_empty_identity_or_credential(
    client: Client, fields: dict[str, str], code: str
) -> None:
    assert client.call("sts", "requestSecurityToken", fields, token=None).business() == code


def test_a_value_split_by_a_comment_reads_whole() -> None:
    """The one parser keeps comments (the gateway forwards them): the lab reads past them."""
    from garde import soap
    from garde.lab.schema import f, parse_fields

    ns = "urn:x"
    element = soap.parse_xml(
        f'<x:R xmlns:x="{ns}"><x:Rid>BEP<!-- c -->0A<?p?>B</x:Rid></x:R>'.encode()
    )
    assert parse_fields(element, (f("Rid"),), ns) == {"Rid": "BEP0AB"}
