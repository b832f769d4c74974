"""The monitor's commands: in-process with click's runner, and the real processes end to end
(`garde monitor` receiving results pushed by `garde probe` from another location)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from garde.cli import cli
from garde.monitor.store.sqlite import SqliteStore
from tests.monitor.running import wait_for


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_incident_update_list_show(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite'}"
    store = SqliteStore(tmp_path / "m.sqlite")
    incident = store.open_incident("sts", "IAM Secure Token Service: outage", "major", 1e9)
    store.close()
    code, out = invoke(
        "incident",
        "update",
        str(incident.id),
        "SAN failure identified",
        "--status",
        "identified",
        "--author",
        "ops",
        "--db",
        db,
    )
    assert code == 0, out
    assert "identified: SAN failure identified (ops)" in out
    code, out = invoke("incident", "list", "--open", "--json", "--db", db)
    assert json.loads(out)["incidents"][0]["updates"][0]["status"] == "identified"
    code, out = invoke("incident", "show", "999", "--db", db)
    assert code != 0


def test_incident_update_refuses_an_empty_message(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite'}"
    result = CliRunner().invoke(cli, ["incident", "update", "1", "  ", "--db", db])
    assert result.exit_code != 0
    assert "empty" in str(result.exception)


def test_maintenance_add_list_cancel(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite'}"
    code, out = invoke(
        "maintenance",
        "add",
        "--title",
        "Weekly patching",
        "--scope",
        "hub@dc1",
        "--start",
        "2027-02-07T02:00:00Z",
        "--end",
        "2027-02-07T02:30:00Z",
        "--rrule",
        "FREQ=WEEKLY;BYDAY=SU",
        "--db",
        db,
    )
    assert code == 0, out
    assert "maintenance #1 planned" in out
    code, out = invoke("maintenance", "list", "--json", "--db", db)
    assert json.loads(out)["maintenance"][0]["rrule"] == "FREQ=WEEKLY;BYDAY=SU"
    assert invoke("maintenance", "cancel", "1", "--db", db)[0] == 0
    assert json.loads(invoke("maintenance", "list", "--json", "--db", db)[1]) == {"maintenance": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "nope"], "unknown service 'nope'"),
        (["--scope", "hub@dc3"], "does not run in data center 'dc3'"),
        (["--scope", "hub", "--rrule", "FREQ=NEVER"], "RRULE"),
    ],
)
def test_maintenance_add_rejects_bad_input_and_stores_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite'}"
    result = CliRunner().invoke(
        cli,
        [
            "maintenance",
            "add",
            "--title",
            "x",
            *args,
            "--start",
            "2027-01-01T00:00:00Z",
            "--end",
            "2027-01-01T01:00:00Z",
            "--db",
            db,
        ],
    )
    assert result.exit_code != 0
    assert message in str(result.exception)
    assert SqliteStore(tmp_path / "m.sqlite").maintenances() == []


def test_sla_formats(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.sqlite'}"
    code, out = invoke("sla", "--month", "2027-01", "--format", "csv", "--db", db)
    assert code == 0
    assert out.splitlines()[0].startswith("service,name,availability_percent")
    code, out = invoke("sla", "--month", "2027-01", "--json", "--db", db)
    assert json.loads(out)["services"][0]["availability"] is None  # nothing measured
    assert "<table>" in invoke("sla", "--month", "2027-01", "--format", "html", "--db", db)[1]
    result = CliRunner().invoke(cli, ["sla", "--month", "January", "--db", db])
    assert "YYYY-MM" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-days", "never"], "--keep-days: expected"),
        (["--location-token", "ghent"], "--location-token: each must be NAME=TOKEN"),
        (["--quorum", "0"], "--quorum: Input should be greater than or equal to 1"),
        (["--webhook", "http://127.0.0.1:9/x"], "--webhook needs --webhook-secret"),
    ],
)
def test_monitor_rejects_bad_options_before_touching_the_database(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "m.sqlite"
    result = CliRunner().invoke(cli, ["monitor", "--db", f"sqlite:///{db}", "--port", "0", *args])
    assert result.exit_code != 0
    assert message in str(result.exception)
    assert not db.exists()


def test_unknown_db_url_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["incident", "list", "--db", "mysql://x"])
    assert "sqlite:///PATH or postgresql://" in str(result.exception)


@pytest.mark.e2e
def test_monitor_and_remote_probe_processes(tmp_path: Path) -> None:
    """`garde probe` at location ghent pushes to `garde monitor --no-probes`, which shows
    ghent's view of each target."""
    env = {**os.environ, "GARDE_PROBE_TOKEN": "ghent-secret"}
    monitor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "garde",
            "monitor",
            "--db",
            f"sqlite:///{tmp_path / 'm.sqlite'}",
            "--port",
            "0",
            "--no-probes",
            "--location-token",
            "ghent=ghent-secret",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert monitor.stdout is not None
        line = monitor.stdout.readline()
        assert line.startswith("garde monitor: http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "garde",
                "probe",
                "--location",
                "ghent",
                "--push",
                url,
                "--for",
                "3s",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr
        assert "0 failed pushes" in probe.stdout

        def ghent_seen() -> bool:
            with urllib.request.urlopen(url + "/api/v1/status", timeout=5) as response:
                status = json.load(response)
            return "ghent" in status["targets"]["sts@dc1"]["locations"]

        wait_for(ghent_seen, 20, "results pushed by ghent")
    finally:
        monitor.terminate()
        monitor.wait(20)
        if monitor.stdout is not None:
            monitor.stdout.close()
