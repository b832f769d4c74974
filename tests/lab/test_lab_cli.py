"""`garde lab` as a user runs it: a real process, its control API, a clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from garde.cli import cli
from garde.errors import LabError


@pytest.fixture
def running_lab() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "garde", "lab", "up", "--base-port", "0", "--token-validity", "5m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert process.stdout is not None
    control = None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"control API: (http://127\.0\.0\.1:\d+)", line)
        if found:
            control = found.group(1)
            break
    try:
        assert control is not None, "".join(lines)
        yield process, control
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


def _garde(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.e2e
def test_lab_up_status_fault_heal_ledger_and_clean_stop(
    running_lab: tuple[subprocess.Popen[str], str],
) -> None:
    process, control = running_lab
    entries = json.loads(_garde("lab", "status", "--json", "--control", control))
    assert {e["service"] for e in entries} >= {"sts", "recipe-executor", "ehbox"}
    assert all(e["url"].startswith("http://127.0.0.1:") for e in entries)

    set_fault = json.loads(
        _garde(
            "lab",
            "fault",
            "sts",
            "dc1",
            "latency",
            "--latency",
            "150ms",
            "--for",
            "1m",
            "--json",
            "--control",
            control,
        )
    )
    assert set_fault["kind"] == "latency"
    shown = _garde("lab", "status", "--control", control)
    assert "latency(latency=150ms" in shown
    assert "healed 1 fault(s)" in _garde("lab", "heal", "sts", "--control", control)

    assert "no duplicates" in _garde("lab", "ledger", "--duplicates", "--control", control)
    assert json.loads(_garde("lab", "ledger", "--json", "--control", control)) == {"effects": []}

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert process.stdout is not None
    assert "lab stopped" in process.stdout.read()


def test_commands_without_a_lab_say_how_to_start_one() -> None:
    with pytest.raises(LabError, match="garde lab up"):
        CliRunner().invoke(
            cli, ["lab", "status", "--control", "http://127.0.0.1:9"], catch_exceptions=False
        )


def test_lab_up_refuses_a_non_loopback_host() -> None:
    result = CliRunner().invoke(cli, ["lab", "up", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "loopback" in str(result.exception)


@pytest.mark.e2e
def test_lab_on_other_ports_writes_the_catalog_the_others_use(tmp_path: Path) -> None:
    """`garde lab up --base-port 0 --write-catalog FILE`: nobody writes a 36-endpoint overlay
    by hand; the file is a complete catalog pointing at this lab, for --catalog FILE."""
    from garde.catalog import load_catalog

    written = tmp_path / "lab.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "garde", "lab", "up", "--base-port", "0",
         "--write-catalog", str(written)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not written.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert written.exists(), process.stderr.read() if process.stderr else ""
        catalog = load_catalog(str(written), env={})
        url = catalog.services["recipe-executor"].endpoints["dc2"]
        assert ":18052/" not in url, "the lab's own free ports, not the default ones"
        with urllib.request.urlopen(url + "?wsdl", timeout=10) as answer:
            assert answer.status == 200
        checked = CliRunner().invoke(cli, ["catalog", "check", str(written)])
        assert checked.exit_code == 0, checked.output
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    refused = subprocess.run(
        [sys.executable, "-m", "garde", "lab", "up", "--base-port", "0",
         "--write-catalog", str(tmp_path / "no" / "such" / "dir" / "lab.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "does not exist; create it" in refused.stderr and "Traceback" not in refused.stderr
