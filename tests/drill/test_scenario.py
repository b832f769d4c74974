"""The scenario format and its checker: built-ins pass, broken files list every problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garde.drill import builtin_names, load_scenario
from garde.drill.scenario import parse_scenario
from garde.errors import SettingsInvalid
from garde.lab.faults import make_fault

INCIDENTS = {
    "san-2018-08-09",
    "san-2018-09-12",
    "all-sectors-2020-01-15",
    "sts-2020-01-27",
    "recipe-2020-01-28",
    "mycarenet-2019-07",
    "primary-dc-loss",
    "blackholed-dc",
    "mass-recovery",
    "demo",
}

BROKEN = """\
description: a scenario with one of each mistake
duration: 1h
time_scale: 60
sites:
  - name: pharmacy
    target_group: pharmacist
    workload:
      rate: 2
      mix:
        recipe-executor.markAsDelivered: lots
timeline:
  - at: 10m
    for: 20x
    service: insurabilty
    dc: all
    kind: down
  - at: 2h
    service: sts
    dc: dc1
    kind: down
  - at: 1m
    service: sts
    dc: dc1
    kind: explode
"""


def problems_of(text: str, file: str = "broken.yaml") -> list[str]:
    with pytest.raises(SettingsInvalid) as caught:
        parse_scenario(text, file)
    return [str(p) for p in caught.value.problems]


def minimal(**extra: str) -> str:
    text = (
        "description: minimal\nduration: 1h\nsites:\n"
        "  - {name: pharmacy, target_group: pharmacist}\n"
    )
    return text + "".join(f"{key}:\n{value}" for key, value in extra.items())


def test_the_issue_list_of_built_ins_is_shipped() -> None:
    assert set(builtin_names()) >= INCIDENTS


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_passes_the_checker(name: str) -> None:
    """Each built-in is valid, says what it is and where its timeline comes from."""
    checked = load_scenario(name)
    assert checked.name == name
    assert checked.scenario.description and "\n" not in checked.scenario.description
    assert checked.scenario.source
    assert checked.scenario.timeline


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_fault_is_one_the_lab_plays(name: str) -> None:
    """Each lab fault of a built-in hits real (service, dc) pairs, with options the lab takes."""
    checked = load_scenario(name)
    for entry in checked.scenario.timeline:
        if entry.kind.startswith("kill_"):
            assert entry.targets(checked.catalog) == []
            continue
        targets = entry.targets(checked.catalog)
        assert targets
        for service, dc in targets:
            assert dc in checked.catalog.services[service].endpoints
        make_fault(entry.kind, entry.lab_options(checked.scenario.time_scale))


def test_all_expands_to_the_data_centers_each_service_has() -> None:
    checked = parse_scenario(
        minimal(timeline="  - {at: 1m, for: 1m, service: all, dc: dc3, kind: down}\n")
    )
    targets = checked.scenario.timeline[0].targets(checked.catalog)
    assert ("sts", "dc3") in targets and not any(s == "efact" for s, _ in targets)


def test_lab_options_are_in_real_time() -> None:
    checked = parse_scenario(
        minimal(
            timeline="  - {at: 1m, for: 10m, service: sts, dc: all, kind: flap, period: 2m}\n"
            "  - {at: 1m, for: 10m, service: sts, dc: dc1, kind: latency, latency: 300ms}\n"
        )
        + "time_scale: 60\n"
    )
    flap, latency = checked.scenario.timeline
    assert flap.lab_options(60) == {"period": 2.0, "for": 10.0}
    assert latency.lab_options(60) == {"latency": 0.3, "for": 10.0}


def test_the_mass_recovery_has_at_least_twenty_gateways() -> None:
    assert load_scenario("mass-recovery").scenario.gateway_count >= 20


def test_the_demo_is_the_shortest_and_under_two_minutes() -> None:
    durations = {n: load_scenario(n).scenario.real_duration for n in builtin_names()}
    assert durations["demo"] == min(durations.values())
    assert durations["demo"] < 120


def test_a_broken_scenario_reports_every_problem_at_once_with_lines() -> None:
    """Bad duration, unknown service, fault after the end, unknown kind, weight not a number."""
    found = problems_of(BROKEN)
    text = "\n".join(found)
    assert len(found) == 5, text
    assert any(
        p.startswith("broken.yaml:10:9: sites[0].workload.mix.recipe-executor.markAsDelivered")
        and "valid number" in p
        for p in found
    ), text
    assert any(p.startswith("broken.yaml:13:5: timeline[0].for") and "20x" in p for p in found)
    assert any(
        p.startswith("broken.yaml:14:5: timeline[0].service")
        and "unknown service 'insurabilty'" in p
        and "did you mean 'insurability'" in p
        for p in found
    ), text
    assert any(
        p.startswith("broken.yaml:17:5: timeline[1].at") and "after the scenario ends" in p
        for p in found
    ), text
    assert any(
        p.startswith("broken.yaml:24:5: timeline[2].kind") and "unknown fault kind 'explode'" in p
        for p in found
    ), text


def test_a_fault_ending_after_the_scenario_names_the_longest_it_may_last() -> None:
    found = problems_of(
        minimal(timeline="  - {at: 50m, for: 20m, service: sts, dc: dc1, kind: down}\n")
    )
    assert len(found) == 1 and "timeline[0].for" in found[0] and "at most 10m" in found[0]


def test_unknown_keys_and_misplaced_options_are_named() -> None:
    found = problems_of(
        minimal(
            timeline="  - {at: 1m, for: 1m, service: sts, dc: dc1, kind: down, rate: 0.5}\n"
            "  - {at: 1m, for: 1m, service: sts, dc: dc2, kind: latency}\n"
            "  - {at: 1m, for: 1m, service: sts, dc: dc3, kind: down, delay: 1s}\n",
            expect="  detect: 1m\n",
        )
    )
    text = "\n".join(found)
    assert "timeline[0].rate: down does not take rate" in text
    assert "timeline[1].kind: latency needs latency" in text
    assert "timeline[2].delay: unknown key 'delay'" in text
    assert "expect.detect: unknown key 'detect' (hint: did you mean 'detection'?)" in text


def test_data_centers_target_groups_and_expectations_are_checked_against_the_catalog() -> None:
    found = problems_of(
        "description: x\nduration: 1h\nsites:\n"
        "  - {name: pharmacy, target_group: pharmacists}\n"
        "timeline:\n"
        "  - {at: 1m, for: 1m, service: efact, dc: dc3, kind: down}\n"
        "  - {at: 1m, for: 1m, service: all, dc: dc9, kind: down}\n"
        "  - {at: 1m, kind: kill_gateway, site: pharmacie}\n"
        "expect:\n"
        "  refused: {recipe-executor.markAsDelivered: 0.1}\n"
        "  rto: {target_groups: {gps: 1m}}\n"
    )
    text = "\n".join(found)
    assert "unknown target group 'pharmacists' (hint: did you mean 'pharmacist'?)" in text
    assert "unknown data center of efact 'dc3'" in text
    assert "timeline[1].dc: unknown data center 'dc9'" in text
    assert "unknown site 'pharmacie' (hint: did you mean 'pharmacy'?)" in text
    assert "markAsDelivered is deferrable" in text
    assert "unknown target group 'gps' (hint: did you mean 'gp'?)" in text


def test_overlapping_faults_of_one_kind_on_one_data_center_are_refused() -> None:
    """The lab holds one fault of a kind per data center: the second would end the first."""
    found = problems_of(
        minimal(
            timeline="  - {at: 1m, for: 10m, service: all, dc: dc1, kind: down}\n"
            "  - {at: 5m, for: 10m, service: sts, dc: all, kind: down}\n"
            "  - {at: 5m, for: 10m, service: sts, dc: all, kind: latency, latency: 1s}\n"
        )
    )
    assert len(found) == 1 and "timeline[1].at: overlaps timeline[0]" in found[0]


def test_time_scale_that_makes_a_fault_too_short_to_play_is_refused() -> None:
    found = problems_of(
        minimal(timeline="  - {at: 1m, for: 5s, service: sts, dc: dc1, kind: down}\n")
        + "time_scale: 100\n"
    )
    assert len(found) == 1 and "of real time at time_scale 100" in found[0]


def test_gateways_sharing_a_journal_need_postgres() -> None:
    found = problems_of(
        "description: x\nduration: 1h\nsites:\n"
        "  - {name: hospital, target_group: hospital, gateways: 3}\n"
    )
    assert len(found) == 1 and "cannot share one SQLite journal" in found[0]
    parse_scenario(
        "description: x\nduration: 1h\nsites:\n"
        "  - {name: hospital, target_group: hospital, gateways: 3, journal: postgres}\n"
    )


def test_strict_types_refuse_what_yaml_silently_converts() -> None:
    found = problems_of(
        "description: x\nduration: 1h\nsites:\n"
        "  - {name: pharmacy, target_group: pharmacist, gateways: '2'}\n"
    )
    assert len(found) == 1 and "sites[0].gateways" in found[0]


def test_a_relative_catalog_path_is_read_next_to_the_scenario(tmp_path: Path) -> None:
    from garde.catalog.load import _read

    _, text = _read("belgium")
    (tmp_path / "chain.yaml").write_text(text, encoding="utf-8")
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(minimal().replace("duration", "catalog: chain.yaml\nduration"))
    assert load_scenario(str(scenario)).catalog.name


def test_a_broken_catalog_is_named_at_the_catalog_key(tmp_path: Path) -> None:
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(minimal().replace("duration", "catalog: missing.yaml\nduration"))
    with pytest.raises(SettingsInvalid) as caught:
        load_scenario(str(scenario))
    assert any(
        p.path == "catalog" and p.line == 2 and "cannot be used" in p.message
        for p in caught.value.problems
    )


def test_a_file_that_is_not_a_mapping_is_one_problem() -> None:
    found = problems_of("- just\n- a list\n")
    assert len(found) == 1 and "a scenario is a YAML mapping" in found[0]


DRILLS_MD = Path(__file__).resolve().parents[2] / "docs" / "drills.md"


def test_the_complete_example_of_docs_drills_is_valid() -> None:
    """The example a reader copies from docs/drills.md passes the checker."""
    text = DRILLS_MD.read_text(encoding="utf-8")
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    checked = parse_scenario(example, "docs/drills.md")
    assert checked.scenario.gateway_count == 5


def test_every_scenario_key_and_built_in_is_documented() -> None:
    """A key of the format or a built-in missing from docs/drills.md fails the build."""
    from pydantic import BaseModel

    from garde.drill import scenario

    text = DRILLS_MD.read_text(encoding="utf-8")
    missing = []
    for cls in vars(scenario).values():
        if (
            isinstance(cls, type)
            and issubclass(cls, BaseModel)
            and cls.__module__ == scenario.__name__
        ):
            for name, info in cls.model_fields.items():
                if f"`{info.alias or name}`" not in text:
                    missing.append(f"{cls.__name__}.{info.alias or name}")
    missing.extend(f"scenario {n}" for n in builtin_names() if f"`{n}`" not in text)
    missing.extend(f"kind {k}" for k in scenario.KINDS if f"`{k}`" not in text)
    assert not missing, f"document these in docs/drills.md: {missing}"


def test_a_wrong_option_value_is_reported_once() -> None:
    found = problems_of(
        minimal(
            timeline="  - {at: 1m, for: 1m, service: sts, dc: dc1, kind: errors, rate: half}\n"
            "  - {at: 1m, for: 1m, service: sts, dc: dc2, kind: errors, status: 404}\n"
        )
    )
    assert len(found) == 2, found
    assert "timeline[0].rate" in found[0]
    assert "timeline[1].status" in found[1] and "500" in found[1]


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10_000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(data: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(_paths(value, (*prefix, i)))
    return found


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_value_anywhere_gives_problems_never_a_crash(data: st.DataObject) -> None:
    """Replace any value of a valid scenario with anything: it loads or lists problems."""
    import yaml

    from garde.drill.scenario import _read

    text, _, _ = _read(data.draw(st.sampled_from(builtin_names())))
    tree = yaml.safe_load(text)
    path = data.draw(st.sampled_from(_paths(tree)))
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = data.draw(_JUNK)
    problems: list[object] = []
    try:
        parse_scenario(yaml.safe_dump(tree), "fuzz.yaml")
    except SettingsInvalid as exc:
        problems = list(exc.problems)
        assert problems, "an invalid scenario names at least one problem"


def test_service_settings_name_catalog_services_and_peak_load_needs_a_capacity() -> None:
    found = "\n".join(
        problems_of(
            minimal(services="  recipe-executer: {capacity: 40}\n", expect="  peak_load: 0.5\n")
        )
    )
    assert "unknown service 'recipe-executer' (hint: did you mean 'recipe-executor'?)" in found
    found = "\n".join(problems_of(minimal(expect="  peak_load: 0.5\n")))
    assert "no service has one" in found
    found = "\n".join(problems_of(minimal(services="  sts: {capacity: 0.5, burst: 2}\n")))
    assert "capacity" in found and "burst" in found
    checked = load_scenario("mass-recovery")
    assert checked.scenario.services["recipe-executor"].capacity == 40
    assert checked.scenario.expect.peak_load == 0.5
