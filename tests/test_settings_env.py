"""Settings as data: garde reads its process's environment in one place (``garde.settings``),
every ``GARDE_*`` variable it reads is in a part's table of settings, and each is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from garde.drill.settings import TABLES as DRILL_TABLES
from garde.errors import SettingsInvalid
from garde.journal.settings import TABLES as JOURNAL_TABLES
from garde.monitor.config import TABLES as MONITOR_TABLES
from garde.settings import Given, SecretUnset, env_table, load_settings, resolve_secret

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "garde"

READERS = {"settings.py"}
"""The modules that may read ``os.environ``: the one that hands the environment to the rest."""

COMMAND_LINE = {
    "GARDE_CATALOG": "every command's --catalog (docs/cli.md)",
    "GARDE_LAB_CONTROL": "the lab's commands' --control (docs/cli.md)",
}
"""Variables that belong to the command line itself rather than to one part's table."""


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(SRC).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(SRC.rglob("*.py"))
    ]


def _reads_environment(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv")) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "environb", "getenv") for a in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_only_garde_settings_reads_the_environment() -> None:
    """Constructors and parts take their settings; none reads ``os.environ`` itself."""
    found = {
        f"{name}:{line}"
        for name, tree in _modules()
        if name not in READERS
        for line in _reads_environment(tree)
    }
    assert found == set(), f"read the environment through garde.settings: {sorted(found)}"


def test_the_scan_would_see_a_read() -> None:
    tree = ast.parse("import os\nx = os.environ.get('GARDE_X')\nfrom os import getenv\n")
    assert sorted(_reads_environment(tree)) == [2, 3]


def _variables_named_in_src() -> set[str]:
    names = set()
    for _name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(re.findall(r"\bGARDE_[A-Z0-9_]+\b", node.value))
    return {n for n in names if not n.endswith("_NS")}  # XML namespaces' Python names


def test_every_variable_is_in_a_table_and_documented() -> None:
    tables = set(env_table(*JOURNAL_TABLES, *MONITOR_TABLES, *DRILL_TABLES))
    named = _variables_named_in_src()
    # The gateway's file says ``admin_token: env:GARDE_ADMIN_TOKEN``: an example, not a read.
    stray = named - tables - set(COMMAND_LINE) - {"GARDE_ADMIN_TOKEN", "GARDE_REPLAY_"}
    assert stray == set(), f"variables read outside a part's table of settings: {stray}"
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    missing = sorted(v for v in tables | set(COMMAND_LINE) if f"`{v}`" not in docs)
    assert missing == [], f"environment variables not documented in docs/: {missing}"


def test_one_secret_resolver_names_the_unset_variable() -> None:
    assert resolve_secret("env:GARDE_TEST_PIN", {"GARDE_TEST_PIN": "1234"}) == "1234"
    assert resolve_secret("1234", {}) == "1234", "a value written as itself"
    with pytest.raises(SecretUnset, match="GARDE_TEST_PIN is unset or empty"):
        resolve_secret("env:GARDE_TEST_PIN", {"GARDE_TEST_PIN": ""})


def test_the_precedence_is_command_line_environment_file_default() -> None:
    from garde.monitor.config import MonitorSettings

    env = {"GARDE_MONITOR_PUBLIC_URL": "https://env.example", "GARDE_MONITOR_DB": "env.sqlite"}
    file = {"public_url": "https://file.example", "db": "file.sqlite", "location": "file"}
    settings = load_settings(
        MonitorSettings,
        env=env,
        file=file,
        given={"public_url": Given("https://flag.example", "--public-url")},
    )
    assert settings.public_url == "https://flag.example"
    assert settings.db == "env.sqlite"
    assert settings.location == "file"
    assert settings.host == MonitorSettings().host


def test_the_command_line_reports_a_bad_variable_without_a_traceback() -> None:
    from click.testing import CliRunner

    from garde.cli import cli

    result = CliRunner().invoke(
        cli, ["monitor", "--check"], env={"GARDE_MONITOR_PUBLIC_URL": "status.example"}
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit | SettingsInvalid)
    assert "GARDE_MONITOR_PUBLIC_URL" in result.output + str(result.exception)
