"""A service given a capacity: beyond it, answered as an overloaded service (503, Retry-After,
a SOAP fault), the refused requests never reaching it, and the load it was offered metered."""

from __future__ import annotations

import time

from garde.lab import Lab
from tests.lab.labkit import PATIENT, Client
from tests.lab.test_lab_control import _request


def _burst(client: Client, count: int, dc: str = "dc1") -> list[tuple[int, str | None, bool]]:
    """``count`` insurability look-ups at once: (status, Retry-After, a SOAP server fault)."""
    out = []
    for _ in range(count):
        answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT}, dc=dc)
        fault = answer.fault
        out.append(
            (answer.status, answer.headers.get("Retry-After"), bool(fault and fault.is_server))
        )
    return out


def test_beyond_its_capacity_a_service_answers_503_with_retry_after(
    lab: Lab, client: Client
) -> None:
    status, limit = _request(
        lab, "PUT", "/capacity/insurability/dc1", {"rate": 5, "retry_after": "2s"}
    )
    assert (status, limit) == (
        200,
        {"service": "insurability", "dc": "dc1", "rate": 5, "retry_after": "2s"},
    )
    started = time.monotonic()
    answers = _burst(client, 12)
    assert time.monotonic() - started < 1.0, "the burst must fit in the one-second window"
    served = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] == 503]
    assert len(served) == 5 and len(refused) == 7
    assert set(refused) == {(503, "2", True)}, (
        "503, Retry-After in whole seconds, a soap:Server fault"
    )
    # The other data center has no limit; and within a second the window has room again.
    assert {a[0] for a in _burst(client, 8, dc="dc2")} == {200}
    time.sleep(1.1)
    assert _burst(client, 1)[0][0] == 200

    status, load = _request(lab, "GET", "/load")
    assert status == 200
    (metered,) = [e for e in load if (e["service"], e["dc"]) == ("insurability", "dc1")]
    assert metered["capacity"] == {"rate": 5, "retry_after": "2s"}
    assert metered["offered_total"] == 13 and metered["refused_total"] == 7
    # Counted per wall-clock second: the burst may straddle two.
    assert 6 <= metered["peak_offered"] <= 12 and metered["peak_admitted"] <= 5

    _, listed = _request(lab, "GET", "/capacity")
    assert [(e["service"], e["dc"]) for e in listed] == [("insurability", "dc1")]
    assert _request(lab, "DELETE", "/capacity/insurability") == (200, {"cleared": 1})
    assert {a[0] for a in _burst(client, 8)} == {200}
    # Lifted, still metered: the load after the limit counts too.
    (metered,) = [e for e in _request(lab, "GET", "/load")[1] if e["dc"] == "dc1"]
    assert metered["capacity"] is None and metered["offered_total"] == 21


def test_a_capacity_on_a_service_applies_to_each_of_its_data_centers(
    lab: Lab, client: Client
) -> None:
    lab.faults.set_capacity("insurability", None, rate=2)
    for dc in lab.endpoints["insurability"]:
        assert [a[0] for a in _burst(client, 3, dc=dc)] == [200, 200, 503], dc


def test_a_wrong_capacity_is_refused_saying_what_to_fix(lab: Lab) -> None:
    for body, said in (
        ({"rate": 0}, "rate must be a number of requests per second, at least 1"),
        ({"rate": "ten"}, "rate must be a number"),
        ({"rate": 5, "burst": 3}, "capacity does not take burst; it takes: rate, retry_after"),
        ({"rate": 5, "retry_after": "soon"}, "retry_after"),
        ({"rate": 5, "dc": "dc2"}, "capacity does not take dc"),
    ):
        status, answer = _request(lab, "PUT", "/capacity/insurability/dc1", body)
        assert status == 400 and said in answer["error"], answer
    status, answer = _request(lab, "PUT", "/capacity/insurabilty", {"rate": 5})
    assert status == 400 and "unknown service" in answer["error"]
    assert _request(lab, "GET", "/capacity")[1] == [], "nothing was changed"
    assert _request(lab, "GET", "/load")[1] == [], "nothing is metered"
