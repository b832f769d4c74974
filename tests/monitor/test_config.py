"""The monitor's and the probe agent's settings: one table each, every bad flag or variable
reported at once by name, and every setting, flag and variable documented in docs/monitor.md."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from garde.cli.monitor import monitor, probe
from garde.errors import SettingsInvalid
from garde.monitor.config import (
    AgentSettings,
    MonitorSettings,
    load_agent_settings,
    load_monitor_settings,
)
from garde.settings import Given, env_name

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([a-z_]+)` \| `(--[a-z-]+)` \| ?(?:`([A-Z_]+)`)? ?\|", re.MULTILINE)


def _rows(command: str) -> dict[str, tuple[str, str | None]]:
    text = (ROOT / "docs" / "monitor.md").read_text(encoding="utf-8")
    section = text.split("## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = section.split(f"`garde {command}`:\n", 1)[1].split("\n\n", 1)[0]
    return {m[0]: (m[1], m[2] or None) for m in ROW.findall(table)}


@pytest.mark.parametrize(
    ("model", "command", "name"),
    [(MonitorSettings, monitor, "monitor"), (AgentSettings, probe, "probe")],
)
def test_every_setting_has_its_row_flag_and_variable(
    model: type[MonitorSettings] | type[AgentSettings], command: click.Command, name: str
) -> None:
    """The table in the docs, the model and the command's options say the same thing."""
    rows = _rows(name)
    assert set(rows) == set(model.model_fields), "documented rows and settings differ"
    options = {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts}
    for field, (flag, variable) in rows.items():
        info = model.model_fields[field]
        assert info.description, f"{field} has no help"
        assert env_name(info) == variable, f"{field}: documented variable {variable}"
        assert flag in options, f"{field}: no option {flag}"
        assert (options[flag].envvar or None) == variable, f"{flag} reads another variable"
    documented = {v for _f, v in rows.values() if v}
    read = {p.envvar for p in command.params if isinstance(p, click.Option) and p.envvar}
    read.discard("GARDE_CATALOG")  # every command's --catalog: docs/cli.md
    assert read <= documented, f"variables read but not in the table: {read - documented}"


def test_the_command_line_defaults_are_the_tables() -> None:
    """``garde monitor`` with no option means the table's defaults (one default each)."""
    rows = _rows("monitor")
    options = {opt: p for p in monitor.params if isinstance(p, click.Option) for opt in p.opts}
    context = monitor.make_context("monitor", [])  # the values a bare `garde monitor` gets
    given = {
        field: Given(context.params[str(options[flag].name)], flag)
        for field, (flag, _v) in rows.items()
        if field != "probe_locally"
    }
    assert load_monitor_settings({}, given) == MonitorSettings()


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(SettingsInvalid) as caught:
        load_monitor_settings(
            {"GARDE_MONITOR_PUBLIC_URL": "ftp://status", "GARDE_MONITOR_WEBHOOK_SECRET": "k"},
            {
                "keep_raw": Given("soon", "--keep-raw"),
                "quorum": Given(0, "--quorum"),
                "location_tokens": Given(("ghent",), "--location-token"),
                "webhooks": Given(("mailto://x",), "--webhook"),
            },
        )
    named = {p.file for p in caught.value.problems}
    assert named == {
        "GARDE_MONITOR_PUBLIC_URL",
        "--keep-raw",
        "--quorum",
        "--location-token",
        "--webhook",
    }
    assert "docs/monitor.md" in str(caught.value)


def test_a_secret_is_never_echoed() -> None:
    with pytest.raises(SettingsInvalid) as caught:
        load_agent_settings(
            {"GARDE_PROBE_TOKEN": ""},
            {"location": Given("ghent", "--location"), "push_url": Given("http://m", "--push")},
        )
    assert {p.file for p in caught.value.problems} == {"GARDE_PROBE_TOKEN"}
    with pytest.raises(SettingsInvalid) as caught:
        load_monitor_settings({}, {"location_tokens": Given(("ghent=s3cret", "x"), "--loc")})
    assert "s3cret" not in str(caught.value)


def test_the_flag_wins_over_the_variable() -> None:
    settings = load_monitor_settings(
        {"GARDE_MONITOR_ADMIN_TOKEN": "from-env", "GARDE_MONITOR_DB": "sqlite:///env.sqlite"},
        {"admin_token": Given("from-flag", "--admin-token")},
    )
    assert settings.admin_token == "from-flag"
    assert settings.db == "sqlite:///env.sqlite"
    assert settings.retention().day is None
