"""Errors at the door: what a person mistypes or forgets when starting garde gets one clear
message naming it and the fix, exit 1, and nothing started or created."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "command",
    [
        ["gateway", "--journal", "none"],
        ["monitor", "--db", "sqlite:///{tmp}/monitor.db"],
    ],
)
def test_a_port_in_use_is_one_message_not_a_traceback(command: list[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [a.format(tmp=tmp_path) for a in command]
        done = subprocess.run(
            [sys.executable, "-m", "garde", *args, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in done.stderr
    assert "choose another with --port" in done.stderr


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (
            ["gateway", "--journal-no-encryption", "--journal", "sqlite:///{tmp}/typo/j.db"],
            "journal",
        ),
        (["monitor", "--db", "sqlite:///{tmp}/typo/monitor.db"], "monitor store"),
    ],
)
def test_a_mistyped_database_directory_is_named_and_not_created(
    command: list[str], what: str, tmp_path: Path
) -> None:
    args = [a.format(tmp=tmp_path) for a in command]
    done = subprocess.run(
        [sys.executable, "-m", "garde", *args, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"the {what} {tmp_path}/typo/" in done.stderr
    assert f"mkdir -p {tmp_path}/typo" in done.stderr
    assert not (tmp_path / "typo").exists(), "a mistyped path creates nothing"


@pytest.mark.parametrize(
    ("command", "file"),
    [
        (["gateway", "--journal", "none", "--config"], "gateway.yaml"),
        (["monitor", "--check", "--probes"], "probes.yaml"),
    ],
)
def test_a_tab_in_a_settings_file_is_named_with_its_line(
    command: list[str], file: str, tmp_path: Path
) -> None:
    """A tab is invisible in most editors: the message says that is what is wrong."""
    (tmp_path / file).write_text("latency_factor: 2\nfields:\n\tsts: {}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "garde", *command, file],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{file}:3:1: YAML syntax error" in done.stderr
    assert "never tabs: replace the tab on this line with spaces" in done.stderr


def test_every_problem_of_a_gateway_settings_file_in_one_run(tmp_path: Path) -> None:
    """Unknown key, wrong type, a duration like 1x: all at once, each with its line and fix."""
    (tmp_path / "gateway.yaml").write_text(
        "admin_tokn: x\noutlier:\n  base_ejection: 1x\nmax_body: lots\n", encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "-m", "garde", "gateway", "--journal", "none", "--config", "gateway.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "has 3 problems" in done.stderr
    assert "gateway.yaml:1:1: admin_tokn: unknown key 'admin_tokn' (hint: did you mean" in (
        done.stderr
    )
    assert (
        "gateway.yaml:3:3: outlier.base_ejection: expected a number of seconds or a duration"
        in (done.stderr)
    )
    assert "gateway.yaml:4:1: max_body:" in done.stderr and "write a number" in done.stderr
