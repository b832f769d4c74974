"""The processes a drill starts (lab, gateways, monitor), and the guarantee it stops them.

Also what the crash tests, the real-client tests and the benchmarks start their gateways
with (``GatewayProcess``): one launcher and killer of garde's processes.

Each runs in its own process group with its output in a log file of the run's directory, so
that a kill reaches its workers too and nothing blocks on a full pipe. Every process started
is registered; ``stop_all`` ends them all (SIGTERM, then SIGKILL), and an ``atexit`` hook
does it again should the runner itself die on an exception it did not expect.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
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
            # Soon: a test that kills and restarts a gateway under load (the crash test)
            # measures the moments it is up, and the kernel already queues its callers.
            await asyncio.sleep(0.01)

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


_LOGS = itertools.count(1)


class GatewayProcess:
    """``garde gateway`` on loopback with a catalog, a settings file and a journal (in clear
    unless ``sealed``: the data are made up, and tests read the journal; a sealed journal
    takes its keys from ``GARDE_JOURNAL_KEYS`` in ``env``). ``port=0``: the kernel picks a free
    port at each start (``start`` says which); else the gateway keeps ``port`` across a kill
    and restart. Its output goes to ``log`` (default: a new file next to the catalog)."""

    def __init__(
        self,
        catalog_file: Path,
        config_file: Path,
        journal: str,
        env: dict[str, str] | None = None,
        *,
        port: int = 0,
        log: Path | None = None,
        extra: list[str] | None = None,
        sealed: bool = False,
    ) -> None:
        args = ["gateway", "--catalog", str(catalog_file), "--config", str(config_file),
                "--journal", journal, "--port", str(port), *(extra or [])]  # fmt: skip
        if not sealed:
            args.append("--journal-no-encryption")
        log = log or catalog_file.parent / f"gateway-{next(_LOGS)}.log"
        self.process = Process(f"the gateway ({log.name})", args, log, env=env)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def pid(self) -> int | None:
        """The gateway's process id (its workers' parent), once started."""
        return None if self.process.popen is None else self.process.popen.pid

    async def start(self, timeout: float = 60.0) -> int:
        """Start it and wait until it listens; its port."""
        found = await self.process.start(r"listening on http://127\.0\.0\.1:(\d+)", timeout)
        self.port = int(found.group(1))
        return self.port

    async def kill(self) -> None:
        """SIGKILL, to it and its workers: a crash, mid-write."""
        await self.process.kill()

    async def stop(self, grace: float = 20.0) -> None:
        """SIGTERM (it finishes what it was doing), SIGKILL after ``grace`` seconds."""
        await self.process.stop(grace)


async def stop_all(processes: list[Process]) -> None:
    """Stop every process, all at once (each has its own grace)."""
    await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)


def free_port() -> int:
    """A port free on loopback now (the gateway keeps it across its restarts)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
