"""Recip-e in the lab: create, read, deliver, and every conflict of the lifecycle."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.lab import Lab, kmehr, lab_in_thread
from garde.lab.services.identifiers import check_rid
from tests.lab.labkit import (
    OTHER_PHARMACIST,
    PATIENT,
    PATIENT_2000,
    PHARMACIST,
    PRESCRIBER,
    Client,
    Clock,
    bis,
)


def prescription(client: Client, patient: str = PATIENT, **extra: object) -> str:
    """Create a prescription and return its RID."""
    today = client.lab.context.today()
    answer = client.call(
        "recipe-prescriber",
        "createPrescription",
        {
            "PrescriberNihii": PRESCRIBER,
            "PatientId": patient,
            **extra,
            "Prescription": kmehr.prescription(PRESCRIBER, patient, when=today),
        },
        identity=PRESCRIBER,
    )
    assert answer.ok, answer.body
    rid = answer.text("Rid")
    assert rid is not None
    return rid


def deliver(client: Client, rid: str, pharmacist: str = PHARMACIST, dc: str = "dc1"):
    return client.call(
        "recipe-executor",
        "markAsDelivered",
        {"Rid": rid, "ExecutorNihii": pharmacist},
        identity=pharmacist,
        dc=dc,
    )


def test_create_returns_a_real_rid_and_records_the_effect(client: Client, lab: Lab) -> None:
    rid = prescription(client)
    assert len(rid) == 12 and rid.startswith("BEP0")
    assert check_rid(rid) == rid
    assert rid.isupper()
    created = lab.ledger.effects(effect="prescription.created")
    assert [e.detail["rid"] for e in created] == [rid]
    assert created[0].dc == "dc1"


def test_patients_born_after_2000_and_bis_numbers_are_accepted(client: Client) -> None:
    prescription(client, PATIENT_2000)
    prescription(client, bis(date(1990, 3, 4), 55))


def test_a_prescription_created_in_dc1_is_delivered_in_dc2(client: Client, lab: Lab) -> None:
    """The data centers share the backend: a failover finds the same prescription."""
    rid = prescription(client)
    got = client.call("recipe-executor", "getPrescriptionForExecutor", {"Rid": rid}, dc="dc3")
    assert got.ok
    assert got.text("Status") == "NotDelivered"
    assert got.text("PatientId") == PATIENT
    delivered = deliver(client, rid, dc="dc2")
    assert delivered.ok
    assert delivered.headers["Garde-Lab-Data-Center"] == "dc2"
    status = client.call("recipe-prescriber", "getPrescriptionStatus", {"Rid": rid}, dc="dc3")
    assert status.text("Status") == "Delivered"
    assert [e.dc for e in lab.ledger.effects(effect="prescription.delivered")] == ["dc2"]


def test_delivering_twice_is_a_business_fault_naming_the_reason(client: Client) -> None:
    rid = prescription(client)
    assert deliver(client, rid).ok
    again = deliver(client, rid)
    assert again.status == 500
    assert again.fault is not None
    assert again.fault.is_client
    assert again.business() == "ALREADY_DELIVERED"


def test_a_revoked_prescription_cannot_be_read_or_delivered(client: Client, lab: Lab) -> None:
    rid = prescription(client)
    revoked = client.call(
        "recipe-prescriber",
        "revokePrescription",
        {"Rid": rid, "Reason": "error"},
        identity=PRESCRIBER,
    )
    assert revoked.text("Status") == "Revoked"
    assert deliver(client, rid).business() == "RID_REVOKED"
    read = client.call("recipe-executor", "getPrescriptionForExecutor", {"Rid": rid})
    assert read.business() == "RID_REVOKED"
    assert lab.ledger.effects(effect="prescription.delivered") == []


def test_an_expired_prescription_is_refused(client: Client, clock: Clock) -> None:
    today = client.lab.context.today()
    rid = prescription(client, ExpirationDate=(today + timedelta(days=2)).isoformat())
    clock.advance(3 * 86400)
    assert deliver(client, rid).business() == "RID_EXPIRED"
    status = client.call("recipe-prescriber", "getPrescriptionStatus", {"Rid": rid})
    assert status.text("Status") == "Expired"


def test_expiration_more_than_a_year_ahead_is_refused(client: Client) -> None:
    today = client.lab.context.today()
    answer = client.call(
        "recipe-prescriber",
        "createPrescription",
        {
            "PrescriberNihii": PRESCRIBER,
            "PatientId": PATIENT,
            "ExpirationDate": (today + timedelta(days=400)).isoformat(),
            "Prescription": kmehr.prescription(PRESCRIBER, PATIENT, when=today),
        },
    )
    assert answer.business() == "INVALID_EXPIRATION_DATE"


def test_in_process_by_another_pharmacist_blocks_delivery(client: Client) -> None:
    rid = prescription(client)
    reserved = client.call(
        "recipe-executor", "putRidsInProcess", {"ExecutorNihii": OTHER_PHARMACIST, "Rid": [rid]}
    )
    assert reserved.ok
    assert reserved.texts("Status") == ["InProcess"]
    assert deliver(client, rid).business() == "RID_IN_PROCESS"
    assert deliver(client, rid, OTHER_PHARMACIST).ok


def test_more_than_ten_rids_in_process_is_refused(client: Client) -> None:
    rids = [prescription(client) for _ in range(11)]
    answer = client.call(
        "recipe-executor", "putRidsInProcess", {"ExecutorNihii": PHARMACIST, "Rid": rids}
    )
    assert answer.business() == "TOO_MANY_RIDS"


def test_undelivered_then_delivered_again_is_not_a_duplicate(client: Client, lab: Lab) -> None:
    rid = prescription(client)
    assert deliver(client, rid).ok
    undo = client.call(
        "recipe-executor", "markAsUnDelivered", {"Rid": rid, "ExecutorNihii": PHARMACIST}
    )
    assert undo.text("Status") == "NotDelivered"
    assert deliver(client, rid).ok
    assert len(lab.ledger.effects(effect="prescription.delivered")) == 2
    assert lab.ledger.duplicates() == []


def test_undelivering_what_is_not_delivered_is_refused(client: Client) -> None:
    rid = prescription(client)
    undo = client.call(
        "recipe-executor", "markAsUnDelivered", {"Rid": rid, "ExecutorNihii": PHARMACIST}
    )
    assert undo.business() == "NOT_DELIVERED"
    assert deliver(client, rid).ok
    other = client.call(
        "recipe-executor", "markAsUnDelivered", {"Rid": rid, "ExecutorNihii": OTHER_PHARMACIST}
    )
    assert other.business() == "DELIVERED_BY_ANOTHER_EXECUTOR"


def test_archive_only_after_delivery(client: Client) -> None:
    rid = prescription(client)
    assert client.call("recipe-executor", "markAsArchived", {"Rid": rid}).business() == (
        "NOT_DELIVERED"
    )
    assert deliver(client, rid).ok
    assert client.call("recipe-executor", "markAsArchived", {"Rid": rid}).text("Archived") == "true"


def test_open_rids_are_listed_per_patient(client: Client) -> None:
    first, second = prescription(client), prescription(client)
    prescription(client, PATIENT_2000)
    assert deliver(client, first).ok
    listed = client.call("recipe-prescriber", "listOpenRids", {"PatientId": PATIENT})
    assert listed.texts("Rid") == [second]
    executor_view = client.call("recipe-executor", "listOpenPrescriptions", {"PatientId": PATIENT})
    assert executor_view.texts("Rid") == [second]


def test_feedback_and_notification_reach_the_other_side(client: Client, lab: Lab) -> None:
    rid = prescription(client)
    feedback = client.call(
        "recipe-executor",
        "createFeedback",
        {"Rid": rid, "ExecutorNihii": PHARMACIST, "Content": "patient allergic"},
    )
    assert feedback.ok
    listed = client.call("recipe-prescriber", "listFeedbacks", {"PrescriberNihii": PRESCRIBER})
    assert listed.texts("Content") == ["patient allergic"]
    note = client.call(
        "recipe-prescriber",
        "sendNotification",
        {"Rid": rid, "ExecutorNihii": PHARMACIST, "Content": "please call me"},
    )
    assert note.ok
    assert len(lab.ledger.effects(effect="notification.sent")) == 1


def test_get_prescription_returns_the_kmehr(client: Client) -> None:
    rid = prescription(client)
    got = client.call("recipe-prescriber", "getPrescription", {"Rid": rid})
    assert got.ok
    assert got.text("PrescriptionType") == "P1"
    assert got.text("Prescription")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"PatientId": "85073003329"}, "INVALID_NISS"),
        ({"PatientId": "12345"}, "INVALID_NISS"),
        ({"PrescriberNihii": "123"}, "INVALID_NIHII"),
        ({"PrescriptionType": "P7"}, "INVALID_PRESCRIPTION_TYPE"),
        ({"Prescription": b"<not-kmehr/>"}, "INVALID_KMEHR"),
        ({"Prescription": b"<<<"}, "INVALID_KMEHR"),
    ],
)
def test_create_refuses_bad_input_with_the_right_fault(
    client: Client, lab: Lab, fields: dict[str, object], code: str
) -> None:
    today = lab.context.today()
    request = {
        "PrescriberNihii": PRESCRIBER,
        "PatientId": PATIENT,
        "Prescription": kmehr.prescription(PRESCRIBER, PATIENT, when=today),
        **fields,
    }
    answer = client.call("recipe-prescriber", "createPrescription", request)
    assert answer.business() == code
    assert lab.ledger.count() == 0


def test_a_kmehr_for_another_patient_is_refused(client: Client, lab: Lab) -> None:
    today = lab.context.today()
    answer = client.call(
        "recipe-prescriber",
        "createPrescription",
        {
            "PrescriberNihii": PRESCRIBER,
            "PatientId": PATIENT,
            "Prescription": kmehr.prescription(PRESCRIBER, PATIENT_2000, when=today),
        },
    )
    assert answer.business() == "PATIENT_MISMATCH"


def test_unknown_and_malformed_rids(client: Client) -> None:
    assert deliver(client, "BEP0AAAAAAAA").business() == "RID_UNKNOWN"
    assert deliver(client, "short").business() == "INVALID_RID"


def test_a_missing_field_is_named(client: Client) -> None:
    answer = client.call("recipe-executor", "markAsDelivered", {"Rid": "BEP0AAAAAAAA"})
    assert answer.business() == "INVALID_REQUEST"
    assert answer.fault is not None
    assert "ExecutorNihii" in answer.fault.string


def test_the_executor_may_revoke_but_not_after_delivery(client: Client) -> None:
    rid = prescription(client)
    revoked = client.call("recipe-executor", "revokePrescription", {"Rid": rid, "Reason": "x"})
    assert revoked.text("Status") == "Revoked"
    again = client.call("recipe-prescriber", "revokePrescription", {"Rid": rid})
    assert again.business() == "RID_REVOKED"
    delivered = prescription(client)
    assert deliver(client, delivered).ok
    late = client.call("recipe-prescriber", "revokePrescription", {"Rid": delivered})
    assert late.business() == "ALREADY_DELIVERED"


def test_state_survives_a_lab_restart_with_a_state_file(belgium: Catalog, tmp_path: Path) -> None:
    """--state FILE: prescriptions and the ledger outlive the lab process."""
    state = tmp_path / "lab.sqlite"
    with lab_in_thread(belgium, database=state) as first:
        rid = prescription(Client(first))
    with lab_in_thread(belgium, database=state) as second:
        client = Client(second)
        got = client.call("recipe-executor", "getPrescriptionForExecutor", {"Rid": rid})
        assert got.text("Status") == "NotDelivered"
        assert [e.detail["rid"] for e in second.ledger.effects(effect="prescription.created")] == [
            rid
        ]


def test_two_labs_in_one_process_keep_separate_in_memory_state(belgium: Catalog) -> None:
    with lab_in_thread(belgium) as first, lab_in_thread(belgium) as second:
        rid = prescription(Client(first))
        got = Client(second).call("recipe-executor", "getPrescriptionForExecutor", {"Rid": rid})
        assert got.business() == "RID_UNKNOWN"
        assert second.ledger.count() == 0


def _fill_until_full(conn: sqlite3.Connection, statement: str, name: str) -> None:
    for n in range(100_000):
        conn.execute(statement, (f"{name}-{n}",))


def test_a_full_in_memory_state_answers_a_write_with_what_to_do(client: Client, lab: Lab) -> None:
    rid = prescription(client)
    with lab.db.cursor() as conn:
        # As if the memory database had reached its cap: no page more, and every table's last
        # page filled, so that the next write needs a page it cannot have.
        conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
        fillers = {
            "effects": "INSERT INTO effects (at, service, operation, effect, business_key, dc,"
            " detail) VALUES (0, 'x', 'x', 'x', ?, 'x', '{}')",
            "idempotency": "INSERT INTO idempotency VALUES ('x', 'x', ?, 'x', 200, x'00')",
            "records": "INSERT INTO records (service, kind, key, value) VALUES ('x', 'x', ?, '')",
        }
        for table, filler in fillers.items():
            with pytest.raises(sqlite3.OperationalError, match="full"):
                _fill_until_full(conn, filler, table)
    before = lab.ledger.count()
    answer = client.call(
        "recipe-executor", "markAsDelivered", {"Rid": rid, "ExecutorNihii": PHARMACIST}, key="k1"
    )
    assert answer.status == 500
    assert answer.fault is not None
    assert "full" in answer.fault.string
    assert "--state FILE" in answer.fault.string
    assert lab.ledger.count() == before  # nothing half-applied
