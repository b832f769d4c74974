"""A port that is taken gets one clear message and exit 1, from every server garde starts."""

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
