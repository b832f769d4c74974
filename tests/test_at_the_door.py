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
