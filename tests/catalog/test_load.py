"""Loading catalogs: the shipped ones are valid; broken ones say every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from garde.catalog import Catalog, load_catalog, parse_catalog
from garde.catalog.durations import format_duration, parse_duration
from garde.catalog.model import Cacheable, Continuity, Deferrable
from garde.errors import CatalogInvalid, CatalogSyntaxError

MINIMAL = """\
version: 1
name: tiny
data_centers:
  dc1: {role: primary}
  dc2: {role: secondary}
procedures:
  paper:
    text: {en: Use paper., fr: Utilisez le papier., nl: Gebruik papier.}
target_groups:
  gp:
    names: {en: GPs, fr: Généralistes, nl: Huisartsen}
    critical:
      - {operation: rx.create, level: vital, procedure: paper}
services:
  sts:
    name: STS
    owner: platform
    protocol: soap
    path_prefix: /sts
    namespace: urn:sts
    endpoints: {dc1: "http://127.0.0.1:1/sts", dc2: "http://127.0.0.1:2/sts"}
    rto: 1h
    operations:
      issue: {kind: read, retry_safe: true, continuity: online}
  rx:
    name: Prescriptions
    owner: recipe
    protocol: soap
    path_prefix: /rx
    namespace: urn:rx
    depends_on: [sts]
    endpoints: {dc1: "http://127.0.0.1:3/rx"}
    rto: 4h
    operations:
      create: {kind: write, retry_safe: false, continuity: online}
"""

BROKEN = """\
version: 1
name: broken
data_centers:
  dc1: {role: primary}
procedures: {}
target_groups:
  gp:
    names: {en: GPs, fr: Généralistes, nl: Huisartsen}
    critical:
      - {operation: rx.create, level: vital, procedure: papper}
services:
  sts:
    name: STS
    owner: platform
    protocol: soap
    path_prefix: /sts
    namespace: urn:sts
    depends_on: [rx]
    endpoints: {dc1: "http://127.0.0.1:1/sts"}
    rto: 1h
    operations:
      issue: {kind: read, retry_safe: true, continuity: online, timout: 5s}
  rx:
    name: Prescriptions
    owner: recipe
    protocol: soap
    path_prefix: /rx
    namespace: urn:rx
    depends_on: [sts]
    endpoints: {dc1: "http://127.0.0.1:3/rx"}
    rto: 4h
    operations:
      create: {kind: write, retry_safe: maybe, continuity: online}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(CatalogInvalid) as caught:
        parse_catalog(text, "broken.yaml", env={})
    return [str(p) for p in caught.value.problems]


def test_shipped_catalog_has_the_interface_ids(belgium: Catalog) -> None:
    """Scripts and drills name these ids: they are part of the interface."""
    assert list(belgium.data_centers) == ["dc1", "dc2", "dc3"]
    assert set(belgium.services) == {
        "sts",
        "etk",
        "kgss",
        "recipe-prescriber",
        "recipe-executor",
        "insurability",
        "eattest",
        "efact",
        "etarif",
        "chapter4",
        "chapter4-consultation",
        "memberdata",
        "hub",
        "ehbox",
        "ehbox-publication",
    }
    assert set(belgium.target_groups) == {
        "pharmacist",
        "gp",
        "hospital",
        "home_nurse",
        "guard_post",
        "specialist",
    }


def test_shipped_catalog_models_the_domain(belgium: Catalog) -> None:
    """Continuity classes and dependencies as DOMAIN.md describes them."""
    _, create = belgium.operation("recipe-prescriber", "createPrescription")
    assert create.continuity is not None and create.continuity.class_ is Continuity.ONLINE
    _, deliver = belgium.operation("recipe-executor", "markAsDelivered")
    assert isinstance(deliver.continuity, Deferrable)
    _, attest = belgium.operation("eattest", "sendAttestation")
    assert isinstance(attest.continuity, Deferrable) and attest.continuity.deadline == "same_day"
    _, insured = belgium.operation("insurability", "getInsurability")
    assert isinstance(insured.continuity, Cacheable)
    assert "kgss" in belgium.services["recipe-prescriber"].depends_on
    assert "kgss" in belgium.services["recipe-executor"].depends_on
    # The ETK depot is public: everything else needs an STS token.
    public = {"sts", "etk"}
    assert all("sts" in s.depends_on for sid, s in belgium.services.items() if sid not in public)
    assert belgium.services["etk"].depends_on == []


def test_recipe_wire_names_follow_the_published_wsdl(belgium: Catalog) -> None:
    service, op = belgium.operation("recipe-executor", "markAsDelivered")
    assert service.soap_action_of(op) == "urn:be:fgov:ehealth:recipe:protocol:v4:markAsDelivered"
    assert service.body_element_of(op) == (
        "{urn:be:fgov:ehealth:recipe:protocol:v4}MarkAsDeliveredRequest"
    )
    attest, send_attestation = belgium.operation("eattest", "sendAttestation")
    assert attest.soap_action_of(send_attestation) == (
        "urn:be:fgov:ehealth:mycarenet:attest:protocol:v3:SendAttestation"
    )
    efact, post = belgium.operation("efact", "postRequest")
    assert efact.soap_action_of(post) == "urn:be:cin:nip:async:generic:post:msg"
    assert efact.body_element_of(post) == "{urn:be:cin:nip:async:generic}post"
    etk, get_etk = belgium.operation("etk", "getEtk")
    assert etk.soap_action_of(get_etk) is None  # the published WSDL declares none
    ehbox, send = belgium.operation("ehbox-publication", "sendMessage")
    assert ehbox.body_element_of(send) == (
        "{urn:be:fgov:ehealth:ehbox:publication:protocol:v3}SendMessageRequest"
    )


def test_production_catalog_extends_belgium_with_real_hosts() -> None:
    prod = load_catalog("belgium-production", env={"EHEALTH_HOST_DC2": "dc2.example.test"})
    assert prod.name == "belgium-production"
    sts = prod.services["sts"]
    assert sts.endpoints["dc1"].startswith("https://services.ehealth.fgov.be/")
    assert sts.endpoints["dc2"].startswith("https://dc2.example.test/")
    assert prod.target_groups.keys() == load_catalog("belgium", env={}).target_groups.keys()


def test_minimal_catalog_loads() -> None:
    catalog = parse_catalog(MINIMAL, "tiny.yaml", env={})
    assert catalog.services["rx"].operations["create"].id == "create"
    assert catalog.data_centers["dc2"].id == "dc2"


def test_all_four_problems_reported_at_once_with_lines() -> None:
    """A typo, a wrong type, an unknown reference and a cycle, each with its line."""
    problems = _problems(BROKEN)
    text = "\n".join(problems)
    assert "broken.yaml:22:" in text and "unknown key 'timout'" in text and "'timeout'" in text
    assert any("broken.yaml:33:" in p and "retry_safe" in p for p in problems)
    assert any("broken.yaml:10:" in p and "unknown procedure 'papper'" in p for p in problems)
    assert any("dependency cycle" in p and "sts" in p and "rx" in p for p in problems)


def test_cycle_and_unknown_reference_in_a_schema_valid_catalog() -> None:
    text = MINIMAL.replace("depends_on: [sts]", "depends_on: [sts, rx]").replace(
        "procedure: paper}", "procedure: paper}\n      - {operation: rx.remove, level: high}"
    )
    problems = _problems(text)
    assert any("dependency cycle: rx -> rx" in p for p in problems)
    assert any("unknown operation of rx 'remove'" in p and "tiny" not in p for p in problems)


def test_yaml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(CatalogSyntaxError) as caught:
        parse_catalog("name: x\nservices:\n  sts: [unclosed\n", "bad.yaml", env={})
    (problem,) = caught.value.problems
    assert problem.file == "bad.yaml" and problem.line is not None
    assert "YAML syntax error" in problem.message


def test_duplicate_ids_are_reported_with_both_lines() -> None:
    text = MINIMAL.replace(
        "  dc2: {role: secondary}", "  dc2: {role: secondary}\n  dc1: {role: backup}"
    )
    problems = _problems(text)
    assert any("duplicate key 'dc1'" in p and "first defined on line 4" in p for p in problems)


def test_unknown_data_center_and_dependency_suggest_the_close_name() -> None:
    text = MINIMAL.replace('dc2: "http://127.0.0.1:2/sts"', 'dc22: "http://127.0.0.1:2/sts"')
    text = text.replace("depends_on: [sts]", "depends_on: [stss]")
    problems = _problems(text)
    assert any("unknown data center 'dc22'" in p and "did you mean 'dc2'" in p for p in problems)
    assert any("unknown service 'stss'" in p and "did you mean 'sts'" in p for p in problems)


def test_environment_expansion_with_default_and_missing_variable() -> None:
    text = MINIMAL.replace('"http://127.0.0.1:3/rx"', '"http://${RX_HOST:-127.0.0.9}:3/rx"')
    assert parse_catalog(text, env={}).services["rx"].endpoints["dc1"] == "http://127.0.0.9:3/rx"
    assert (
        parse_catalog(text, env={"RX_HOST": "127.0.0.5"})
        .services["rx"]
        .endpoints["dc1"]
        .startswith("http://127.0.0.5")
    )
    missing = MINIMAL.replace('"http://127.0.0.1:3/rx"', '"http://${RX_HOST}:3/rx"')
    problems = _problems(missing)
    assert any("environment variable RX_HOST is not set" in p for p in problems)


def test_bad_duration_and_continuity_class_explain_the_format() -> None:
    text = MINIMAL.replace("rto: 4h", "rto: four hours").replace(
        "continuity: online}", "continuity: sometimes}", 1
    )
    problems = _problems(text)
    assert any("rto" in p and "1h30m" in p for p in problems)
    assert any("continuity" in p and "online, deferrable, async, cacheable" in p for p in problems)


def test_overlapping_path_prefixes_are_refused() -> None:
    problems = _problems(MINIMAL.replace("path_prefix: /rx", "path_prefix: /sts/rx"))
    assert any("overlaps with service 'sts'" in p for p in problems)


def test_extends_reports_problems_in_the_overriding_file(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(MINIMAL, encoding="utf-8")
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: base.yaml\nname: child\nservices:\n  rx:\n    endpoints: {dc9: http://x}\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogInvalid) as caught:
        load_catalog(child, env={})
    (problem,) = caught.value.problems
    assert problem.file == str(child) and problem.line == 5


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(CatalogSyntaxError, match="built-in catalog"):
        load_catalog(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("750ms", 0.75), (42, 42)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["ten", "5 minutes", "-3", -3, True, "1x"])
def test_bad_durations_say_the_format(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    for seconds in (0.25, 1, 59, 90, 3600, 5400, 90061):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_the_shipped_catalogs_speak_to_people_in_their_language() -> None:
    """Every critical operation has a label and every service a name in fr/nl/en: the
    profession pages and the French and Dutch pages show those, never an operation id."""
    from garde.catalog import load_catalog

    for name in ("belgium", "belgium-production"):
        catalog = load_catalog(name, env={})
        for group in catalog.target_groups.values():
            for critical in group.critical:
                operation = catalog.services[critical.service].operations[critical.operation_id]
                assert operation.label is not None, f"{name}: {critical.operation} has no label"
        for sid, service in catalog.services.items():
            assert service.names is not None, f"{name}: {sid} has no names"
