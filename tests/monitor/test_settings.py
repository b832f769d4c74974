"""The probe settings file is checked entirely at start: XPaths with their namespaces, names
against the catalog, types; every problem is reported in one run with its line, and a monitor
given a broken file does not start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from garde.catalog import Catalog
from garde.errors import Problem, SettingsInvalid
from garde.monitor.settings import parse_probe_settings
from garde.monitor.targets import targets_from_catalog

GI = "urn:be:fgov:ehealth:mycarenet:genericinsurability:protocol:v1"


def problems(text: str, catalog: Catalog, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SettingsInvalid) as caught:
        parse_probe_settings(text, "probes.yaml", catalog, env=env or {})
    return [str(p) for p in caught.value.problems]


def test_a_valid_file_reaches_the_targets(belgium: Catalog) -> None:
    settings = parse_probe_settings(
        "identity: ops-monitor\n"
        "probe_niss: '00010100173'\n"
        "latency_factor: 0.2\n"
        "credential: env:GARDE_TEST_SECRET\n"
        "probe_cbe: env:GARDE_TEST_CBE\n"
        "assertions:\n"
        "  insurability:\n"
        f"    - {{xpath: '//gi:Insurable', equals: 'true', namespaces: {{gi: '{GI}'}}}}\n"
        "  hub@dc1:\n"
        "    - {xpath: 'count(//*) > 0'}\n"
        "fields:\n"
        "  insurability.getInsurability: '<op:Ssin>{niss}</op:Ssin><op:Type>x</op:Type>'\n",
        "probes.yaml",
        belgium,
        env={"GARDE_TEST_SECRET": "s3cret", "GARDE_TEST_CBE": "0123456789"},
    )
    targets = {t.id: t for t in targets_from_catalog(belgium, settings)}
    assert targets["insurability@dc2"].assertions[0].equals == "true"
    assert targets["hub@dc1"].assertions[0].xpath == "count(//*) > 0"
    assert targets["hub@dc2"].assertions == ()
    assert b"<op:Ssin>00010100173</op:Ssin><op:Type>x" in (targets["insurability@dc1"].body or b"")
    assert targets["sts@dc1"].latency_threshold == pytest.approx(1.0)
    assert settings.credential == "s3cret"
    assert settings.probe_cbe == "0123456789"


def test_an_empty_file_keeps_every_default(belgium: Catalog) -> None:
    settings = parse_probe_settings("# nothing set yet\n", "probes.yaml", belgium, env={})
    assert settings.identity == "monitor"
    assert settings.assertions == {}


def test_an_undefined_xpath_prefix_is_refused_with_the_fix(belgium: Catalog) -> None:
    """The issue's case: accepted at start, it showed every data center down."""
    found = problems(
        "assertions:\n"
        "  insurability:\n"
        f"    - {{xpath: '//gi:Insurable', equals: 'true', namespaces: {{g: '{GI}'}}}}\n",
        belgium,
    )
    assert found == [
        "probes.yaml:3:8: assertions.insurability[0].xpath: XPath prefix 'gi' is not defined"
        " (defined here: g) (hint: did you mean 'g'?)"
    ]


def test_a_misspelled_service_or_data_center_is_refused_with_did_you_mean(
    belgium: Catalog,
) -> None:
    found = problems(
        "assertions:\n"
        "  insurabilty:\n"
        "    - {xpath: '//*'}\n"
        "  hub@dc9:\n"
        "    - {xpath: '//*'}\n"
        "fields:\n"
        "  recipe-executor.listOpenPrescription: '<op:PatientId>{niss}</op:PatientId>'\n",
        belgium,
    )
    assert found == [
        "probes.yaml:2:3: assertions.insurabilty: unknown service 'insurabilty'"
        " (hint: did you mean 'insurability'?)",
        "probes.yaml:4:3: assertions.hub@dc9: unknown data center of hub 'dc9'"
        " (hint: did you mean 'dc2'?)",
        "probes.yaml:7:3: fields.recipe-executor.listOpenPrescription: unknown operation of"
        " recipe-executor 'listOpenPrescription' (hint: did you mean 'listOpenPrescriptions'?)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("probe_niss: 00010100173\n", "probe_niss: Input should be a valid string"),
        ("latency_factor: fast\n", "latency_factor: Input should be a valid number"),
        ("latency_factor: 2\n", "latency_factor: Input should be less than or equal to 1"),
        ("identity: 42\n", "identity: Input should be a valid string"),
        ("tls_min_days: 40\n", "tls_warn_days (30) is below tls_min_days (40)"),
        ("probe_cbe: '123'\n", "probe_cbe: String should match pattern"),
        ("nonsense: 1\n", "unknown key 'nonsense'"),
        ("latncy_factor: 1\n", "(hint: did you mean 'latency_factor'?)"),
        ("assertions: {hub: [{xpath: '//['}]}\n", "invalid XPath"),
        ("assertions: {hub: [{xpath: 'nope(1)'}]}\n", "XPath cannot run"),
        ("assertions: {hub: [{xpath: '//x', equals: true}]}\n", "equals: Input should be a valid"),
        ("assertions: {hub: [{xpath: '//x', equal: 'y'}]}\n", "did you mean 'equals'?"),
        ("assertions: {hub: [{xpath: '//x', namespaces: {'1x': 'urn:x'}}]}\n", "cannot be an"),
        ("assertions: {hub: [{jsonpath: '$.status'}]}\n", "hub is a SOAP service"),
        ("assertions: {hub: [{equals: 'x'}]}\n", "exactly one of xpath or jsonpath"),
        ("assertions: {hub: {xpath: '//x'}}\n", "assertions.hub: Input should be a valid list"),
        ("fields: {etk.getEtk: '<op:Value>{cbe}</op:Value'}\n", "not well-formed XML"),
        ("fields: {etk.getEtk: '<op:Value>{cbn}</op:Value>'}\n", "did you mean '{cbe}'?"),
        ("fields: {hub.getTransactionList: '<op:X/>'}\n", "the monitor does not call"),
        ("credential: env:GARDE_TEST_UNSET_VARIABLE\n", "GARDE_TEST_UNSET_VARIABLE is unset"),
        ("probe_niss: env:GARDE_TEST_NISS\n", "env:GARDE_TEST_NISS gives '123', not 11 digits"),
        ("assertions: [\n", "probes.yaml:2:1: YAML syntax error"),
        ("- a list\n", "probe settings are a YAML mapping"),
    ],
)
def test_each_mistake_is_explained(belgium: Catalog, text: str, message: str) -> None:
    found = problems(text, belgium, env={"GARDE_TEST_NISS": "123"})
    assert len(found) == 1, found
    assert message in found[0]
    assert found[0].startswith("probes.yaml:")


def test_every_problem_is_reported_in_one_run(belgium: Catalog) -> None:
    found = problems(
        "probe_niss: 00010100173\n"
        "latency_factor: fast\n"
        "assertions:\n"
        "  insurabilty: [{xpath: '//x'}]\n"
        "  hub: [{xpath: '//h:x'}, {xpath: '//x', equals: 1}]\n"
        "unknown: 1\n",
        belgium,
    )
    assert [p.split(":")[1] for p in found] == ["1", "2", "4", "5", "5", "6"]


BROKEN = (
    "identity: monitor\n"
    "assertions:\n"
    "  insurability:\n"
    "    - {xpath: '//gi:Insurable', equals: 'true'}\n"
    "  recipe-executr:\n"
    "    - {xpath: '//x'}\n"
    "latency_factor: '0.5'\n"
)


def garde(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garde", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_the_monitor_does_not_start_on_a_broken_file(tmp_path: Path) -> None:
    """The real command exits 1 with every problem located, no traceback, nothing created."""
    probes = tmp_path / "probes.yaml"
    probes.write_text(BROKEN)
    db = tmp_path / "m.sqlite"
    result = garde("monitor", "--db", f"sqlite:///{db}", "--port", "0", "--probes", str(probes))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{probes} has 3 problems" in result.stderr
    assert f"{probes}:4:8: assertions.insurability[0].xpath: XPath prefix 'gi'" in result.stderr
    assert "did you mean 'recipe-executor'?" in result.stderr
    assert f"{probes}:7:1: latency_factor:" in result.stderr
    assert not db.exists()
    probe = garde("probe", "--location", "x", "--push", "http://127.0.0.1:9", "--token", "t",
                  "--probes", str(probes))  # fmt: skip
    assert probe.returncode == 1
    assert "has 3 problems" in probe.stderr


@pytest.mark.e2e
def test_monitor_check_validates_without_starting(tmp_path: Path) -> None:
    probes = tmp_path / "probes.yaml"
    probes.write_text(BROKEN)
    db = tmp_path / "m.sqlite"
    bad = garde("monitor", "--check", "--probes", str(probes), "--db", f"sqlite:///{db}")
    assert bad.returncode == 1
    assert "has 3 problems" in bad.stderr
    probes.write_text(
        f"assertions:\n  insurability:\n    - {{xpath: '//gi:I', namespaces: {{gi: '{GI}'}}}}\n"
    )
    good = garde("monitor", "--check", "--probes", str(probes), "--db", f"sqlite:///{db}")
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stdout
    assert "3 assertion checks" in good.stdout
    assert not db.exists()


def test_the_example_of_docs_monitor_is_valid(belgium: Catalog) -> None:
    """The probe settings a reader copies from docs/monitor.md pass the checks."""
    text = (Path(__file__).parents[2] / "docs" / "monitor.md").read_text(encoding="utf-8")
    example = text.split("checked entirely at start", 1)[1].split("```yaml\n", 1)[1]
    settings = parse_probe_settings(
        example.split("```")[0], "docs/monitor.md", belgium, env={"GARDE_PROBE_SECRET": "x"}
    )
    assert settings.credential == "x"
    assert set(settings.assertions) == {"insurability", "hub@dc1"}


_KEYS = st.sampled_from(
    ["identity", "probe_niss", "latency_factor", "tls_min_days", "fields", "assertions",
     "xpath", "jsonpath", "equals", "namespaces", "hub", "hub@dc1", "etk.getEtk", "gi", "x"]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["//gi:x", "$.a", "env:HOME", "<op:A>{niss}</op:A>", "{", "//["]),
)


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(inner, st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4))


# Two levels under the top mapping: enough for assertions: {hub: [{xpath: ...}]}.
_VALUES = _nested(_nested(_SCALARS))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_file_is_either_valid_or_explained(belgium: Catalog, data: dict[str, object]) -> None:
    """Whatever the file holds, the outcome is settings or located problems, never a crash."""
    text = yaml.safe_dump(data)
    found: list[Problem] = []
    try:
        parse_probe_settings(text, "p.yaml", belgium, env={})
    except SettingsInvalid as exc:
        found = exc.problems or [Problem("none", None, None, "", "no problem listed")]
    assert all(p.file == "p.yaml" for p in found)
