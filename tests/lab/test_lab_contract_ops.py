"""The operations added with the published contracts: daily ones behave, rarer ones answer."""

from __future__ import annotations

from garde.lab import Lab
from tests.lab.labkit import PATIENT, PHARMACIST, PRESCRIBER, Client
from tests.lab.test_lab_recipe import prescription

PHARMACY = "20012385"
"""A pharmacy's own NIHII: 8 digits, an organisation."""


def test_a_pharmacy_lists_what_it_holds_in_process_and_reads_a_status(client: Client) -> None:
    rid = prescription(client)
    held = client.call(
        "recipe-executor", "putRidsInProcess", {"ExecutorNihii": PHARMACY, "Rid": [rid]}
    )
    assert held.ok, held.business()
    listed = client.call("recipe-executor", "listRidsInProcess", {"ExecutorNihii": PHARMACY})
    assert listed.texts("Rid") == [rid]
    other = client.call("recipe-executor", "listRidsInProcess", {"ExecutorNihii": PHARMACIST})
    assert other.texts("Rid") == []
    status = client.call("recipe-executor", "getPrescriptionStatus", {"Rid": rid})
    assert status.text("Status") == "InProcess"
    delivered = client.call(
        "recipe-executor", "markAsDelivered", {"Rid": rid, "ExecutorNihii": PHARMACY}
    )
    assert delivered.ok, delivered.business()
    after = client.call("recipe-executor", "listRidsInProcess", {"ExecutorNihii": PHARMACY})
    assert after.texts("Rid") == []


def test_a_prescriber_notification_reaches_the_pharmacy(client: Client) -> None:
    rid = prescription(client)
    sent = client.call(
        "recipe-prescriber",
        "sendNotification",
        {"Rid": rid, "ExecutorNihii": PHARMACIST, "Content": "call me"},
        identity=PRESCRIBER,
    )
    assert sent.ok, sent.business()
    listed = client.call("recipe-executor", "listNotifications", {"ExecutorNihii": PHARMACIST})
    assert listed.texts("Rid") == [rid]
    assert listed.texts("Content") == ["call me"]


def test_a_prescriber_nihii_must_be_a_care_provider(client: Client) -> None:
    answer = client.call(
        "recipe-prescriber",
        "listFeedbacks",
        {"PrescriberNihii": PHARMACY},
        identity=PRESCRIBER,
    )
    assert answer.business() == "INVALID_NIHII"


def test_patient_consent_is_given_read_and_revoked(client: Client) -> None:
    assert client.call("hub", "getPatientConsent", {"Ssin": PATIENT}).text("Consent") == "false"
    assert client.call("hub", "putPatientConsent", {"Ssin": PATIENT}).ok
    given = client.call("hub", "getPatientConsent", {"Ssin": PATIENT})
    assert given.text("Consent") == "true" and given.text("SignDate")
    assert client.call("hub", "revokePatientConsent", {"Ssin": PATIENT}).ok
    assert client.call("hub", "getPatientConsent", {"Ssin": PATIENT}).text("Consent") == "false"
    again = client.call("hub", "revokePatientConsent", {"Ssin": PATIENT})
    assert again.business() == "NO_CONSENT"


def test_a_revoked_therapeutic_link_closes_the_record_again(client: Client) -> None:
    assert client.call("hub", "putTherapeuticLink", {"Ssin": PATIENT}).ok
    assert client.call("hub", "getTherapeuticLink", {"Ssin": PATIENT}).text("Linked") == "true"
    assert client.call("hub", "getTransactionList", {"Ssin": PATIENT}).ok
    assert client.call("hub", "revokeTherapeuticLink", {"Ssin": PATIENT}).ok
    refused = client.call("hub", "getTransactionList", {"Ssin": PATIENT})
    assert refused.business() == "NO_THERAPEUTIC_LINK"


def test_insurability_as_flat_is_the_same_answer(client: Client) -> None:
    xml = client.call("insurability", "getInsurability", {"Ssin": PATIENT})
    flat = client.call("insurability", "getInsurabilityAsFlat", {"Ssin": PATIENT})
    fields = (flat.text("Flat") or "").split(";")
    assert fields[0] == ("1" if xml.text("Insurable") == "true" else "0")
    if xml.text("Mutuality"):
        assert fields[2] == xml.text("Mutuality")


def test_box_info_counts_what_is_in_the_box(client: Client) -> None:
    before = client.call("ehbox", "getBoxInfo", {}, identity=PHARMACIST)
    assert before.text("BoxId") == PHARMACIST and before.text("CurrentSize") == "0"
    sent = client.call(
        "ehbox-publication",
        "sendMessage",
        {"RecipientType": "NIHII", "Recipient": PHARMACIST, "Subject": "s", "Content": b"abcd"},
        identity=PRESCRIBER,
    )
    assert sent.ok, sent.business()
    after = client.call("ehbox", "getBoxInfo", {}, identity=PHARMACIST)
    assert after.text("CurrentSize") == "4"
    listed = client.call("ehbox", "getAllEhboxesMessagesList", {}, identity=PHARMACIST)
    assert listed.texts("MessageId") == sent.texts("MessageId")


def test_a_per_contract_read_echoes_the_request_and_is_stable(client: Client) -> None:
    first = client.call("hub", "getLatestUpdate", {"Ssin": PATIENT})
    assert first.ok and first.text("Ssin") == PATIENT and first.text("LatestUpdate")
    properties = client.call("recipe-prescriber", "getValidationProperties", {})
    assert properties.text("PrescriptionVersion") == "4"
    history = client.call("ehbox", "getMessageHistory", {"MessageId": "M1"})
    assert history.text("MessageId") == "M1"


def test_a_per_contract_write_records_one_effect_and_checks_its_fields(
    client: Client, lab: Lab
) -> None:
    fields = {"StartDate": "2026-07-01", "EndDate": "2026-07-15"}
    answer = client.call("ehbox", "insertOoO", fields, key="ooo-1")
    assert answer.ok and answer.text("OoOId")
    replay = client.call("ehbox", "insertOoO", fields, key="ooo-1")
    assert replay.text("OoOId") == answer.text("OoOId")
    assert len(lab.ledger.effects(service="ehbox", effect="insertOoO")) == 1
    missing = client.call("ehbox", "insertOoO", {"StartDate": "2026-07-01"})
    assert missing.business() == "INVALID_REQUEST"
