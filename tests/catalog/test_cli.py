"""The catalog commands as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from garde.cli import cli
from tests.catalog.test_load import BROKEN


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_impact_json_has_the_documented_shape() -> None:
    code, out = run("catalog", "impact", "sts", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data["groups"]) == {
        "pharmacist",
        "gp",
        "hospital",
        "home_nurse",
        "guard_post",
        "specialist",
    }
    for group in data["groups"].values():
        assert group["status"] in ("stopped", "degraded")
        for op in group["operations"]:
            assert {"service", "operation", "status", "continuity", "procedure"} <= set(op)


def test_impact_of_one_data_center_table_stops_nobody() -> None:
    code, out = run("catalog", "impact", "recipe-prescriber@dc1")
    assert code == 0
    assert "stopped" not in out and "degraded" in out and "reduced redundancy" in out


def test_impact_in_french() -> None:
    code, out = run("catalog", "impact", "recipe-executor", "--lang", "fr", "--json")
    assert code == 0
    group = json.loads(out)["groups"]["pharmacist"]
    assert group["name"] == "Pharmaciens"
    assert any("preuve papier" in (o["procedure"] or "") for o in group["operations"])


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    code, out = run("catalog", "check", str(broken), "--json")
    assert code == 1
    problems = json.loads(out)["problems"]
    assert len(problems) == 4 and all(p["line"] for p in problems)


def test_check_of_the_shipped_catalog() -> None:
    code, out = run("catalog", "check")
    assert code == 0 and "valid" in out


def test_coverage_json() -> None:
    code, out = run("catalog", "coverage", "--json")
    assert code == 0
    gaps = json.loads(out)["gaps"]
    assert {
        "group": "specialist",
        "service": "chapter4",
        "operation": "askChap4MedicalAdvisorAgreement",
    }.items() <= gaps[-1].items()


@pytest.mark.parametrize(
    ("fmt", "needle"), [("dot", '"kgss" -> "sts";'), ("mermaid", "kgss --> sts")]
)
def test_graph_formats(fmt: str, needle: str) -> None:
    code, out = run("catalog", "graph", "--format", fmt)
    assert code == 0 and needle in out


def test_unknown_service_is_an_error_message_not_a_trace() -> None:
    """The real script: exit 1 and one line saying what to type instead."""
    proc = subprocess.run(
        [sys.executable, "-m", "garde", "catalog", "impact", "recipee"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "unknown service 'recipee'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("service", ["kgss", "etk"])
def test_impact_of_kgss_or_etk_names_the_professions_it_stops(service: str) -> None:
    code, out = run("catalog", "impact", service, "--json")
    assert code == 0
    groups = json.loads(out)["groups"]
    stopped = {gid for gid, group in groups.items() if group["status"] == "stopped"}
    assert {"pharmacist", "gp"} <= stopped
