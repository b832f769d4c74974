"""The report judged from a made-up run: every count comes from the ledger and the calls,
and each expectation is missed as soon as what it guards is broken."""

from __future__ import annotations

from typing import Any

from garde.drill.html import render
from garde.drill.report import build_report
from garde.drill.runner import Run
from garde.drill.scenario import parse_scenario
from garde.drill.timeline import Played
from garde.drill.truth import Samples
from garde.drill.workload import (
    CONFLICT,
    DELIVERED,
    FAILED_OVER,
    JOURNALED,
    LOST,
    REFUSED,
    SERVED,
    Call,
)

SCENARIO = """\
description: made up
duration: 20s
sites:
  - name: practice
    target_group: gp
    workload: {rate: 1, mix: {eattest.sendAttestation: 1}}
timeline:
  - {at: 2s, for: 6s, service: eattest, dc: dc1, kind: down}
  - {at: 10s, for: 4s, service: eattest, dc: all, kind: down}
expect:
  failover: 2s
  drain: 10s
  rto: {services: {eattest: 5s}}
"""


def call(t: float, outcome: str, key: str | None = None, **extra: Any) -> Call:
    status = {JOURNALED: 202, REFUSED: 503, CONFLICT: 500}.get(outcome, 200)
    return Call(t=t, took=0.1, site="practice", group="gp", gateway="http://gw",
                service="eattest", operation="sendAttestation", status=status,
                outcome=outcome, key=key, **extra)  # fmt: skip


def effect(key: str | None, business: str) -> dict[str, Any]:
    return {"service": "eattest", "effect": "attestation.recorded", "business_key": business,
            "idempotency_key": key}  # fmt: skip


def made_up(ledger: list[dict[str, Any]], receipts: dict[str, str]) -> Run:
    checked = parse_scenario(SCENARIO, "made-up.yaml")
    run = Run(checked, seed=1, no_workload=False, real_duration=20.0, ended_at=25.0)
    run.played = [Played(2, 8, "down", "eattest", "dc1")]
    run.played += [Played(10, 14, "down", "eattest", dc) for dc in ("dc1", "dc2", "dc3")]
    run.calls = [
        call(1, SERVED, "k1", dc="dc1"),
        call(3, FAILED_OVER, "k2", dc="dc2"),
        call(11, JOURNALED, "k3", receipt="r3"),
        call(12, JOURNALED, "k4", receipt="r4"),
        call(13, JOURNALED, "k5", receipt="r5"),
        call(15, SERVED, "k6", dc="dc1"),
    ]
    run.samples = Samples(depth=[(9, 0), (12, 3), (14.5, 1), (16, 0), (20, 0)])
    run.samples.depth_by_service = {"eattest": [(9, 0), (12, 3), (14.5, 1), (16, 0)]}
    run.drained_at, run.ledger, run.receipts = 16.0, ledger, receipts
    run.gateways = [{"site": "practice", "url": "http://gw"}]
    return run


def test_a_clean_run_holds_and_is_measured_from_the_calls() -> None:
    keys = ["k1", "k2", "k3", "k4", "k5", "k6"]
    run = made_up([effect(k, f"b{k}") for k in keys], {})
    report = build_report(run)
    assert report["verdict"]["passed"], report["expectations"]
    assert report["ledger"]["lost"] == 0 and report["ledger"]["acknowledged"] == 6
    counts = report["outcomes"][0]["counts"]
    assert counts == {SERVED: 2, FAILED_OVER: 1, DELIVERED: 3}
    assert report["times"]["failover"] == {"eattest@dc1 down at 2s": 1.1}
    assert report["times"]["drain"] == 2.0  # empty for good at 16s, the last fault ends at 14s
    assert report["times"]["recovery"]["services"] == {"eattest": 2.0}


def test_a_loss_a_duplicate_and_a_conflict_are_told_apart() -> None:
    """k3 never reached the service (lost), k4 was refused on replay (conflict, not lost),
    k6's care act was applied twice under two keys (a duplicate)."""
    ledger = [effect(k, f"b{k}") for k in ("k1", "k2", "k5", "k6")] + [effect("other", "bk6")]
    report = build_report(made_up(ledger, {"r3": "missing", "r4": "conflict"}))
    counts = report["outcomes"][0]["counts"]
    assert counts[LOST] == 1 and counts[CONFLICT] == 1 and counts[DELIVERED] == 1
    assert report["ledger"]["lost"] == 1 and report["ledger"]["duplicates"] == 1
    verdicts = {e["name"]: e["met"] for e in report["expectations"]}
    assert verdicts["rpo"] is False and verdicts["duplicates"] is False
    assert verdicts["failover"] and verdicts["drain"]
    assert "Missed: rpo" in report["summary"]
    page = render(report)
    assert "2 expectation(s) missed" in page and 'id="plot-outcomes"' in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_a_failover_too_slow_and_a_journal_that_never_drains_are_missed() -> None:
    keys = ["k1", "k2", "k3", "k4", "k5", "k6"]
    run = made_up([effect(k, f"b{k}") for k in keys], {})
    run.calls[1] = call(6, FAILED_OVER, "k2", dc="dc2")  # 4 s after the fault, 2 s allowed
    run.samples.depth.append((24, 2))
    run.samples.depth_by_service["eattest"].append((24, 2))
    report = build_report(run)
    verdicts = {e["name"]: e["met"] for e in report["expectations"]}
    assert verdicts["failover"] is False
    assert verdicts["drain"] is False and report["times"]["drain"] is None
    assert verdicts["rto eattest"] is False


def test_a_service_offered_more_than_its_capacity_while_recovering_is_missed() -> None:
    """The peak is judged from the service's recovery (the end of its first outage, 8 s),
    averaged over 3 s: the burst before it does not count, a load over capacity + tolerance
    after it does."""
    text = SCENARIO.replace("timeline:", "services:\n  eattest: {capacity: 10}\ntimeline:")
    text = text.replace("expect:\n", "expect:\n  peak_load: 0.2\n")
    keys = ["k1", "k2", "k3", "k4", "k5", "k6"]
    run = made_up([effect(k, f"b{k}") for k in keys], {})
    run = Run(parse_scenario(text, "made-up.yaml"), **{
        k: getattr(run, k) for k in ("seed", "no_workload", "real_duration", "ended_at")
    })  # fmt: skip
    run.played = [Played(2, 8, "down", "eattest", "dc1")]
    run.started_at = 1000.0

    def metered(peak_after: int) -> list[dict[str, Any]]:
        offered = [[1001, 30], [1009, 12], [1010, peak_after], [1011, 12]]
        return [{"service": "eattest", "dc": "dc1", "peak_offered": 30, "peak_admitted": 10,
                 "offered_total": 54 + peak_after, "refused_total": 20,
                 "offered": offered}]  # fmt: skip

    run.load = metered(12)  # 12, 12, 12 a second from 9 s: 12 on average, as allowed
    report = build_report(run)
    (judged,) = [e for e in report["expectations"] if e["name"] == "peak load eattest@dc1"]
    assert judged["met"], judged
    assert judged["measured"] == "12/s offered" and "at most 12/s" in judged["expected"]
    run.load = metered(15)  # 12, 15, 12: 13 on average
    (judged,) = [e for e in build_report(run)["expectations"] if e["name"].startswith("peak")]
    assert not judged["met"] and judged["measured"] == "13/s offered"


def test_a_drain_seen_by_the_runner_after_the_last_sample_counts() -> None:
    """The runner stops sampling once every journal is empty: its last sample may still show
    an entry, and the runner's own observation is then the drain's end."""
    keys = ["k1", "k2", "k3", "k4", "k5", "k6"]
    run = made_up([effect(k, f"b{k}") for k in keys], {})
    run.samples.depth = [(9, 0), (12, 3), (14.5, 1), (15.5, 1)]
    run.drained_at = 16.5
    assert build_report(run)["times"]["drain"] == 2.5
