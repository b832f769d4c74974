"""Impact: who is stopped when services fail; properties that must hold for any failure set."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from garde.catalog import Catalog, FailedService, impact, load_catalog, parse_failures
from garde.catalog.coverage import coverage
from garde.catalog.impact import Action, ServiceState, Status, service_states

BELGIUM = load_catalog("belgium", env={})
ALL_FAILURES = sorted(
    [FailedService(sid) for sid in BELGIUM.services]
    + [FailedService(sid, dc) for sid, s in BELGIUM.services.items() for dc in s.endpoints],
    key=lambda f: f.sort_key,
)
failure_sets = st.sets(st.sampled_from(ALL_FAILURES), max_size=8)


def _ranks(failures: set[FailedService]) -> dict[str, int]:
    return {gid: g.status.rank for gid, g in impact(BELGIUM, failures).groups.items()}


def test_sts_outage_stops_or_degrades_every_group_with_procedures(belgium: Catalog) -> None:
    result = impact(belgium, parse_failures(belgium, ["sts"]))
    assert {g.status for g in result.groups.values()} <= {Status.STOPPED, Status.DEGRADED}
    assert all(g.status is not Status.UNAFFECTED for g in result.groups.values())
    for group in result.groups.values():
        for op in group.operations:
            assert op.impacted_by == ("sts",)
            if op.procedure_id is not None:
                assert op.procedure
    pharmacist = result.groups["pharmacist"]
    read = next(o for o in pharmacist.operations if o.operation == "getPrescriptionForExecutor")
    assert read.status is Status.STOPPED and read.continuity is Action.REFUSE
    assert "paper proof" in (read.procedure or "")
    deliver = next(o for o in pharmacist.operations if o.operation == "markAsDelivered")
    assert deliver.continuity is Action.JOURNAL and deliver.status is Status.DEGRADED


def test_one_data_center_of_three_stops_nobody(belgium: Catalog) -> None:
    result = impact(belgium, parse_failures(belgium, ["recipe-prescriber@dc1"]))
    assert all(g.status is not Status.STOPPED for g in result.groups.values())
    assert result.groups["gp"].status is Status.DEGRADED
    (op,) = result.groups["gp"].operations
    assert op.continuity is Action.FAILOVER and op.dcs_left == ("dc2", "dc3")
    assert result.services["recipe-prescriber"].state is ServiceState.REDUCED_REDUNDANCY


def test_every_data_center_failing_one_by_one_is_an_outage(belgium: Catalog) -> None:
    failures = parse_failures(
        belgium, ["recipe-executor@dc1", "recipe-executor@dc2", "recipe-executor@dc3"]
    )
    assert service_states(belgium, failures)["recipe-executor"].state is ServiceState.DOWN
    assert impact(belgium, failures).groups["pharmacist"].status is Status.STOPPED


def test_cacheable_reads_are_served_stale_and_procedure_in_dutch(belgium: Catalog) -> None:
    result = impact(belgium, parse_failures(belgium, ["insurability"]), language="nl")
    op = result.groups["hospital"].operations[0]
    assert op.continuity is Action.STALE_READ and op.status is Status.DEGRADED
    assert "verzekerbaarheid" in (op.procedure or "")
    assert result.groups["hospital"].name == "Ziekenhuizen"


def test_unknown_service_or_data_center_is_a_clear_usage_error(belgium: Catalog) -> None:
    import pytest

    from garde.errors import UsageError

    with pytest.raises(UsageError, match="known services"):
        parse_failures(belgium, ["recipee"])
    with pytest.raises(UsageError, match="runs in: dc1, dc2"):
        parse_failures(belgium, ["efact@dc3"])


@given(failure_sets, failure_sets)
def test_failing_more_never_helps_anyone(a: set[FailedService], b: set[FailedService]) -> None:
    smaller, larger = _ranks(a), _ranks(a | b)
    assert all(larger[g] >= smaller[g] for g in smaller)


@given(failure_sets)
def test_order_of_failures_does_not_matter(failures: set[FailedService]) -> None:
    ordered = sorted(failures, key=lambda f: f.sort_key)
    assert impact(BELGIUM, ordered).as_json() == impact(BELGIUM, list(reversed(ordered))).as_json()


@given(st.sampled_from(ALL_FAILURES))
def test_a_service_with_no_dependants_affects_only_its_own_operations(
    failure: FailedService,
) -> None:
    if BELGIUM.dependants(failure.service):
        return
    result = impact(BELGIUM, [failure])
    touched = {op.service for g in result.groups.values() for op in g.operations}
    assert touched <= {failure.service}
    assert {sid for sid, v in result.services.items() if v.state is not ServiceState.AVAILABLE} == {
        failure.service
    }


@given(failure_sets)
def test_a_group_is_stopped_only_by_a_refused_operation(failures: set[FailedService]) -> None:
    for group in impact(BELGIUM, failures).groups.values():
        refused = any(o.continuity is Action.REFUSE for o in group.operations)
        assert (group.status is Status.STOPPED) == refused


def test_coverage_shows_chapter_iv_ask_as_a_gap(belgium: Catalog) -> None:
    gaps = coverage(belgium)
    asks = [g for g in gaps if g.operation == "askChap4MedicalAdvisorAgreement"]
    assert {g.group for g in asks} == {"hospital", "specialist"}
    assert all(g.kind == "no_procedure" for g in asks)
    assert all(g.service == "chapter4" for g in gaps if g.kind == "no_procedure")


def test_coverage_reports_rto_the_topology_cannot_meet() -> None:
    from garde.catalog import parse_catalog
    from tests.catalog.test_load import MINIMAL

    tight = MINIMAL.replace("rto: 4h", "rto: 10m")  # rx: one data center, repair takes 4h
    gaps = coverage(parse_catalog(tight, env={}))
    reasons = [g.reason for g in gaps if g.kind == "rto"]
    assert any("single data center (dc1)" in r for r in reasons)
    assert any("depends on sts whose RTO is 1h" in r for r in reasons)
    undecided = MINIMAL.replace(
        "create: {kind: write, retry_safe: false, continuity: online}",
        "create: {kind: write, retry_safe: false}",
    )
    assert [g.kind for g in coverage(parse_catalog(undecided, env={}))] == ["no_continuity"]


def test_dependencies_and_dependants_mirror_each_other() -> None:
    """``a`` needs ``b`` (transitively) exactly when ``b`` has ``a`` among its dependants."""
    ids = list(BELGIUM.services)
    for a in ids:
        for b in ids:
            assert (b in BELGIUM.dependencies(a)) == (a in BELGIUM.dependants(b)), (a, b)
    assert "sts" in BELGIUM.dependencies("recipe-executor")
    assert BELGIUM.dependencies("sts") == set()


def test_kgss_outage_stops_dispensing_and_prescribing(belgium: Catalog) -> None:
    """Prescriptions are sealed with KGSS keys: without KGSS nobody creates or reads one."""
    result = impact(belgium, parse_failures(belgium, ["kgss"]))
    stopped = {gid for gid, g in result.groups.items() if g.status is Status.STOPPED}
    assert {"pharmacist", "gp", "guard_post", "specialist"} <= stopped
    pharmacist = result.groups["pharmacist"]
    read = next(o for o in pharmacist.operations if o.operation == "getPrescriptionForExecutor")
    assert read.status is Status.STOPPED and read.impacted_by == ("kgss",)


def test_etk_outage_stops_who_seals_and_the_sts_needs_no_etk(belgium: Catalog) -> None:
    """Sealing needs the recipient's ETK (Recip-e, Chapter IV, eAttest, hubs); the ETK depot
    is public, so an STS outage does not take it down."""
    result = impact(belgium, parse_failures(belgium, ["etk"]))
    stopped = {gid for gid, g in result.groups.items() if g.status is Status.STOPPED}
    assert {"pharmacist", "gp", "guard_post", "specialist"} <= stopped
    # Hospitals' Chapter IV requests and hub writes are journaled, hub reads served stale.
    assert result.groups["hospital"].status is Status.DEGRADED
    assert service_states(belgium, parse_failures(belgium, ["sts"]))["etk"].state is (
        ServiceState.AVAILABLE
    )
