"""Hysteresis, quorum and what service and group states mean, on the belgium catalog."""

from __future__ import annotations

from garde.catalog import Catalog
from garde.catalog.impact import Status
from garde.monitor.probes import ProbeResult
from garde.monitor.state import (
    Hysteresis,
    ServiceStatus,
    TargetStatus,
    TargetTracker,
    snapshot,
)
from garde.monitor.targets import Target, targets_from_catalog

T0 = 1_800_000_000.0


def result(
    ok: bool, at: float, target: str = "t", location: str = "local", slow: bool = False
) -> ProbeResult:
    return ProbeResult(
        target, at, ok, 0.01, slow=slow, location=location, error=None if ok else "boom"
    )


def test_down_after_n_failures_backdated_to_the_first() -> None:
    h = Hysteresis(failures=3, successes=2)
    h.feed(result(True, T0))
    assert h.status is TargetStatus.UP
    assert not h.feed(result(False, T0 + 10))
    assert not h.feed(result(False, T0 + 20))
    assert h.feed(result(False, T0 + 30))
    assert h.status is TargetStatus.DOWN
    assert h.since == T0 + 10


def test_up_again_only_after_m_successes() -> None:
    h = Hysteresis(failures=1, successes=2)
    h.feed(result(False, T0))
    assert h.status is TargetStatus.DOWN
    assert not h.feed(result(True, T0 + 10))
    assert h.status is TargetStatus.DOWN
    assert h.feed(result(True, T0 + 20))
    assert h.status is TargetStatus.UP


def test_flapping_never_changes_state() -> None:
    """Alternating failure/success (a flapping link) produces no state change at all."""
    h = Hysteresis(failures=3, successes=2)
    h.feed(result(True, T0))
    changes = sum(h.feed(result(i % 2 == 0, T0 + 10 * i)) for i in range(1, 200))
    assert changes == 0
    assert h.status is TargetStatus.UP


def test_late_result_does_not_undo_a_newer_one() -> None:
    h = Hysteresis(failures=1, successes=1)
    h.feed(result(False, T0 + 20))
    h.feed(result(True, T0 + 10))
    assert h.status is TargetStatus.DOWN


def test_slow_answers_degrade_after_n() -> None:
    h = Hysteresis(failures=2, successes=2)
    h.feed(result(True, T0))
    h.feed(result(True, T0 + 1, slow=True))
    assert h.status is TargetStatus.UP
    h.feed(result(True, T0 + 2, slow=True))
    assert h.status is TargetStatus.DEGRADED
    h.feed(result(True, T0 + 3))
    h.feed(result(True, T0 + 4))
    assert h.status is TargetStatus.UP


def _tracker(quorum: int | None = None) -> TargetTracker:
    target = Target(id="t", service="s", dc="dc1", url="http://x", failures=1, successes=1)
    return TargetTracker([target], quorum=quorum)


def test_one_location_of_three_down_is_not_down() -> None:
    """A probe site losing its network is not an outage of the chain."""
    tracker = _tracker()
    for loc in ("brussels", "ghent", "liege"):
        tracker.feed(result(True, T0, location=loc))
    tracker.feed(result(False, T0 + 10, location="liege"))
    assert tracker.view("t", T0 + 10).status is TargetStatus.UP
    tracker.feed(result(False, T0 + 12, location="ghent"))
    view = tracker.view("t", T0 + 12)
    assert view.status is TargetStatus.DOWN
    assert view.since == T0 + 10, "back-dated to the first location's failure"


def test_explicit_quorum() -> None:
    tracker = _tracker(quorum=1)
    tracker.feed(result(True, T0, location="a"))
    tracker.feed(result(False, T0, location="b"))
    assert tracker.view("t", T0).status is TargetStatus.DOWN


def test_silent_location_stops_counting() -> None:
    tracker = _tracker()
    tracker.feed(result(False, T0, location="a"))
    tracker.feed(result(False, T0, location="b"))
    for i in range(1, 20):
        tracker.feed(result(True, T0 + 10 * i, location="c"))
    # a and b went silent long ago: only c counts, and c says up.
    assert tracker.view("t", T0 + 190).status is TargetStatus.UP


def _feed_all(tracker: TargetTracker, ok: dict[str, bool], at: float) -> None:
    for tid in tracker.targets:
        for k in range(5):
            tracker.feed(result(ok.get(tid, True), at + k, target=tid))


def test_one_dc_down_is_reduced_redundancy(belgium: Catalog) -> None:
    tracker = TargetTracker(targets_from_catalog(belgium))
    _feed_all(tracker, {"recipe-executor@dc1": False}, T0)
    snap = snapshot(belgium, tracker, T0 + 5)
    service = snap.services["recipe-executor"]
    assert service.status is ServiceStatus.REDUCED_REDUNDANCY
    assert service.root_cause
    assert snap.overall is ServiceStatus.REDUCED_REDUNDANCY
    groups = snap.impact(belgium).groups
    assert groups["pharmacist"].status is Status.DEGRADED


def test_every_dc_down_is_an_outage_with_the_procedure(belgium: Catalog) -> None:
    tracker = TargetTracker(targets_from_catalog(belgium))
    _feed_all(tracker, {f"recipe-executor@dc{i}": False for i in (1, 2, 3)}, T0)
    snap = snapshot(belgium, tracker, T0 + 5)
    assert snap.services["recipe-executor"].status is ServiceStatus.OUTAGE
    assert snap.services["recipe-executor"].since == T0
    pharmacist = snap.impact(belgium, "en").groups["pharmacist"]
    assert pharmacist.status is Status.STOPPED
    texts = [o.procedure for o in pharmacist.operations if o.procedure]
    assert any("paper proof" in t for t in texts)


def test_sts_down_impacts_dependants_not_root_causes(belgium: Catalog) -> None:
    """STS down: dependants are outages impacted_by sts, even when their own probes fail."""
    tracker = TargetTracker(targets_from_catalog(belgium))
    failing = {t: False for t in tracker.targets if t.startswith(("sts@", "recipe-executor@"))}
    _feed_all(tracker, failing, T0)
    snap = snapshot(belgium, tracker, T0 + 5)
    assert snap.services["sts"].root_cause
    executor = snap.services["recipe-executor"]
    assert executor.status is ServiceStatus.OUTAGE
    assert executor.impacted_by == ("sts",)
    assert not executor.root_cause
    roots = [s for s in snap.services.values() if s.root_cause]
    assert [s.service for s in roots] == ["sts"]


def test_all_dcs_slow_is_degraded(belgium: Catalog) -> None:
    tracker = TargetTracker(targets_from_catalog(belgium))
    for tid in tracker.targets:
        for k in range(5):
            tracker.feed(ProbeResult(tid, T0 + k, True, 3.0, slow=tid.startswith("insurability@")))
    snap = snapshot(belgium, tracker, T0 + 5)
    assert snap.services["insurability"].status is ServiceStatus.DEGRADED
    assert snap.services["sts"].status is ServiceStatus.OPERATIONAL
