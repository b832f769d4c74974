"""The gateway's settings file: every problem at once with its line, and every setting
documented."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from garde.errors import SettingsInvalid
from garde.gateway.config import GatewayConfig
from garde.gateway.settings import GatewaySettingsFile, OutlierFile, parse_gateway_settings
from garde.gateway.upstreams import OutlierSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_example_reads_as_written() -> None:
    text = (ROOT / "docs" / "gateway-contract.md").read_text(encoding="utf-8")
    example = text.split("## Configuration file", 1)[1].split("```yaml", 1)[1].split("```")[0]
    env = {"GARDE_ADMIN_TOKEN": "t0ken", "EID_PIN": "1234", "KEYSTORE_PASSWORD": "pw"}
    config = parse_gateway_settings(example, "gateway.yaml", env=env)
    assert config.admin_token == "t0ken"
    assert config.identities["pharmacy-1"].primary.secret == "1234"
    assert config.identities["pharmacy-1"].fallback is not None
    assert config.min_try_timeout == 0.25
    assert config.outlier.max_ejection == 300.0
    assert config.outlier.window == OutlierSettings().window, "unset: the default"
    assert config.allowed_hosts == ("127.0.0.1", "localhost", "garde.pharmacy.local")
    assert config.port == GatewayConfig().port, "unset: the default"


def test_every_problem_is_reported_at_once_with_its_line() -> None:
    text = (
        "target_group: pharmacist\n"
        "conect_timeout: 1s\n"  # line 2: a typo
        'port: "8480"\n'  # line 3: text, not a number
        "min_try_timeout: soon\n"  # line 4: not a duration
        "fast_path: fastest\n"  # line 5
        "admin_token: env:GARDE_TEST_UNSET_TOKEN\n"  # line 6
        "outlier: {failure_rate: 2}\n"  # line 7
    )
    with pytest.raises(SettingsInvalid) as caught:
        parse_gateway_settings(text, "gateway.yaml", env={})
    report = str(caught.value)
    lines = {p.line for p in caught.value.problems}
    assert {2, 3, 4, 5, 6, 7} <= lines, report
    assert "did you mean 'connect_timeout'" in report
    assert "GARDE_TEST_UNSET_TOKEN" in report
    assert report.startswith("gateway.yaml has ")


def test_a_file_that_is_not_a_mapping_says_so() -> None:
    with pytest.raises(SettingsInvalid, match="YAML mapping"):
        parse_gateway_settings("- a\n- b\n", "gateway.yaml", env={})
    assert parse_gateway_settings("# nothing set\n", "gateway.yaml", env={}) == GatewayConfig()


def test_the_cli_prints_the_problems_and_starts_nothing(tmp_path: Path) -> None:
    settings = tmp_path / "gateway.yaml"
    settings.write_text("max_clients: 0\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "garde", "gateway", "--config", str(settings), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "gateway.yaml:1" in done.stderr and "max_clients" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_every_setting_is_in_the_file_schema_and_in_the_docs() -> None:
    """One table: the runtime settings and the file's keys are the same names, and each is
    documented for the person writing the file."""
    runtime = {f.name for f in dataclasses.fields(GatewayConfig)}
    assert runtime == set(GatewaySettingsFile.model_fields)
    assert {f.name for f in dataclasses.fields(OutlierSettings)} == set(OutlierFile.model_fields)
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    missing = sorted(
        name
        for name in runtime | set(OutlierFile.model_fields)
        if not re.search(rf"(`|\b){name}(`|:)", docs)
    )
    assert missing == [], f"settings not documented in docs/: {missing}"
    for model in (GatewaySettingsFile, OutlierFile):
        unhelped = [n for n, f in model.model_fields.items() if not f.description]
        assert unhelped == [], f"{model.__name__}: settings without help: {unhelped}"


def test_a_bad_value_is_told_what_its_setting_is_for() -> None:
    """The fix names the setting's purpose (its help in the table), not only the form."""
    with pytest.raises(SettingsInvalid) as caught:
        parse_gateway_settings("max_clients: 0\noutlier: {window: soon}\n", "g.yaml", env={})
    hints = {p.path: p.hint for p in caught.value.problems}
    assert hints["max_clients"].startswith(
        GatewaySettingsFile.model_fields["max_clients"].description or "?"
    )
    assert (OutlierFile.model_fields["window"].description or "?") in hints["outlier.window"]
