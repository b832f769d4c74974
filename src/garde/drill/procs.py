"""The processes a drill starts (lab, gateways, monitor), and the guarantee it stops them.

Each runs in its own process group with its output in a log file of the run's directory, so
that a kill reaches its workers too and nothing blocks on a full pipe. Every process started
is registered; ``stop_all`` ends them all (SIGTERM, then SIGKILL), and an ``atexit`` hook
does it again should the runner itself die on an exception it did not expect.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from garde.errors import DrillError
from garde.settings import environment

_STARTED: set[Process] = set()


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@atexit.register
def _reap_all() -> None:
    for process in list(_STARTED):
        process.kill_now()


class Process:
    """One ``garde ...`` command of the drill, restartable with the same arguments."""

    def __init__(
        self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "garde", *args]
        self.log = log
        self.env = {**environment(), "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    async def start(self, ready: str, timeout: float = 60.0) -> re.Match[str]:
        """Start it and wait until its output matches ``ready`` (a regex); the match."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        _STARTED.add(self)
        self.starts += 1
        pattern = re.compile(ready)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_bytes()[offset:].decode("utf-8", "replace")
            found = pattern.search(text)
            if found:
                return found
            if self.popen.poll() is not None:
                raise DrillError(
                    f"{self.name} exited at start (code {self.popen.returncode}); its output"
                    f" ({self.log}):\n{text[-1500:]}"
                )
            if time.monotonic() > deadline:
                self.kill_now()
                raise DrillError(f"{self.name} did not start within {timeout:g}s (see {self.log})")
            await asyncio.sleep(0.05)

    def kill_now(self) -> None:
        """SIGKILL to its whole process group, and reap it."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            _kill_group(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        _STARTED.discard(self)

    async def kill(self) -> None:
        await asyncio.to_thread(self.kill_now)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (a clean stop), then SIGKILL after ``grace`` seconds."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            _kill_group(popen.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while popen.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self.kill_now()


async def stop_all(processes: list[Process]) -> None:
    """Stop every process, all at once (each has its own grace)."""
    await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)


def free_port() -> int:
    """A port free on loopback now (the gateway keeps it across its restarts)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
