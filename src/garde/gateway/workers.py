"""Run the gateway as one process, or as N worker processes sharing one port: the process
model of ``garde gateway --workers N``, for the command line and library callers alike.

``run_gateway(catalog, config, JournalChoice(url, key_file), workers=4)`` checks the journal's
keys and the port, then serves until SIGTERM or Ctrl-C. A caller that wants to stop the
workers itself uses ``Workers``: ``start()``, ``wait()``, ``stop()``.

The workers share nothing in memory: SO_REUSEPORT hands each connection to one of them, and
what ``/metrics`` and ``/_garde/status`` need from the others goes through a board
(``board.py``). Worker processes are spawned, not forked, so everything handed to them is
picklable and each loads the catalog itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import TracebackType

from garde import logs
from garde.catalog import load_catalog
from garde.errors import UsageError
from garde.gateway.board import WorkerBoard
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from garde.journal import ENV_KEYS, JournalSettings, JournalStore, Keyring
from garde.logs import Format
from garde.loop import run_loop
from garde.storage import JOURNAL, is_postgres, parse_url

log = logging.getLogger("garde.gateway")

STOP_GRACE = 10.0
"""Seconds a worker has to stop cleanly before it is killed."""


@dataclass(frozen=True)
class JournalChoice:
    """Where deferrable writes wait, and the key that seals them (picklable, for workers).

    ``url`` is a ``garde.storage`` URL, or ``none``: deferrable writes are then refused with
    the procedure instead of journaled.
    """

    url: str
    key_file: str | None = None
    no_encryption: bool = False
    settings: JournalSettings = field(default_factory=JournalSettings)
    """The journal's settings from the environment (keys, replay pace, receipt webhooks),
    read once by whoever starts the gateway: ``load_journal_settings(environment())``."""

    @property
    def enabled(self) -> bool:
        return self.url != "none"

    @property
    def leased(self) -> bool:
        """PostgreSQL leases entries row by row, so every worker may replay; SQLite has no
        leases, so only worker 0 does (two replayers could send the same entry)."""
        return self.enabled and is_postgres(self.url)

    def check(self) -> None:
        """The URL parses, and a journal has a key to seal payloads with (they are health
        data), or was told explicitly to store them in clear."""
        if not self.enabled:
            return
        parse_url(self.url, JOURNAL)
        if not (self.key_file or self.no_encryption or self.settings.store.keys):
            raise UsageError(
                "the journal seals payloads (health data) and needs a key: give"
                f" --journal-key-file FILE or set {ENV_KEYS}, or --journal-no-encryption (not"
                " for production), or --journal none to refuse deferrable writes instead of"
                " journaling them"
            )

    async def open(self) -> JournalStore | None:
        if not self.enabled:
            return None
        from garde.journal import open_journal

        keyring = Keyring.load(
            self.key_file, self.settings.store.keys, allow_clear=self.no_encryption
        )
        return await open_journal(self.url, keyring, webhooks=self.settings.webhooks)


@dataclass(frozen=True)
class WorkerRole:
    """One worker of ``--workers N`` (picklable): its number and the folder the workers share.

    Only worker 0 replays a SQLite journal; every worker accepts into it. With PostgreSQL
    every worker replays, leased (``JournalChoice.leased``).
    """

    index: int
    board: str
    replays: bool
    parent: int
    """The supervising process: a worker whose parent is gone stops (no orphan serving)."""
    logging: tuple[str, Format] | None = None
    """How the supervisor logs (``garde.logs``): a spawned worker starts with none."""


Announce = Callable[[RunningGateway, JournalChoice], None]
"""Told once the gateway listens (by worker 0 only): the command line prints its banner.
Handed to spawned workers, so a module-level function."""

Say = Callable[[str], None]
"""Where the supervisor's few lines go (workers started, one ended, one killed)."""


def _log(message: str) -> None:
    log.warning("%s", message)


async def serve(
    catalog_source: str,
    config: GatewayConfig,
    journal: JournalChoice,
    role: WorkerRole | None = None,
    announce: Announce | None = None,
) -> None:
    """Serve one gateway (or one worker of several) until SIGINT or SIGTERM, or until the
    supervising process is gone."""
    catalog = load_catalog(catalog_source)
    store = await journal.open()
    running = RunningGateway(
        catalog,
        config,
        store,
        reuse_port=role is not None,
        replay=journal.settings.policy,
        replays=role is None or role.replays,
        board=None if role is None else WorkerBoard(role.board, role.index),
    )
    await running.start()
    # Everything made so far (modules, catalog, configuration) lives as long as the process:
    # out of the collector's sight, a full collection takes microseconds instead of the tens
    # of milliseconds that showed up in the gateway's p99 under load.
    gc.freeze()
    if announce is not None and (role is None or role.index == 0):
        announce(running, journal)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watching = None if role is None else loop.create_task(watch_parent(role.parent, stop))
    try:
        await stop.wait()
    finally:
        if watching is not None:
            watching.cancel()
        await running.stop()


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop this worker if its supervisor is gone (killed with SIGKILL, say): otherwise the
    worker would keep serving its share of the port, with nobody to restart or stop it."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the supervising process %d is gone: this worker stops", parent)
    stop.set()


def run_worker(
    catalog_source: str,
    config: GatewayConfig,
    journal: JournalChoice,
    role: WorkerRole | None = None,
    announce: Announce | None = None,
) -> None:
    """``serve`` on its own event loop; the target of each worker process."""
    if role is not None and role.logging is not None:
        logs.configure(*role.logging)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(catalog_source, config, journal, role, announce))


def check_port(config: GatewayConfig) -> None:
    """Workers need a fixed port that is free: checked before any starts, so that the error
    comes once and clearly rather than from each worker."""
    if config.port == 0:
        raise UsageError("--workers needs a fixed --port: the workers must share one port")
    probe = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        probe.bind((config.host, config.port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    finally:
        probe.close()


class Workers:
    """``count`` gateway processes sharing ``config.port``, supervised as one.

    A worker that dies takes the others down (``run`` returns 1), so the service manager
    restarts the gateway whole: a gateway with a worker missing would lose its share of the
    connections, and worker 0's replaying of a SQLite journal.
    """

    def __init__(
        self,
        catalog_source: str,
        config: GatewayConfig,
        journal: JournalChoice,
        count: int,
        *,
        announce: Announce | None = None,
        say: Say = _log,
    ) -> None:
        if count < 1:
            raise UsageError(f"a gateway needs at least one worker, not {count}")
        self.catalog_source = catalog_source
        self.config = config
        self.journal = journal
        self.count = count
        self.announce = announce
        self.say = say
        self.processes: list[BaseProcess] = []
        self.board: str | None = None
        self._wake_reader, self._wake_writer = multiprocessing.Pipe(duplex=False)

    def start(self) -> Workers:
        check_port(self.config)
        self.board = tempfile.mkdtemp(prefix="garde-gateway-")  # counters, modes: no health data
        context = multiprocessing.get_context("spawn")
        leased = self.journal.leased
        self.processes = [
            context.Process(
                target=run_worker,
                args=(
                    self.catalog_source,
                    self.config,
                    self.journal,
                    WorkerRole(i, self.board, leased or i == 0, os.getpid(), logs.current()),
                    self.announce,
                ),
                daemon=True,
            )
            for i in range(self.count)
        ]
        for process in self.processes:
            process.start()
        self.say(f"garde gateway: {self.count} workers share port {self.config.port}")
        return self

    def wait(self, timeout: float | None = None) -> BaseProcess | None:
        """Block until a worker ends (returned, reaped so its exit status is known), ``wake``
        is called, or ``timeout`` passes (None then)."""
        sentinels = {p.sentinel: p for p in self.processes}
        ready = multiprocessing.connection.wait([*sentinels, self._wake_reader], timeout)
        while self._wake_reader.poll():  # each wake counts once
            self._wake_reader.recv_bytes()
        ended = next((sentinels[s] for s in ready if s in sentinels), None)
        if ended is not None:
            ended.join(5)
        return ended

    def wake(self) -> None:
        """Make ``wait`` return now; safe from a signal handler or another thread."""
        with contextlib.suppress(OSError):
            self._wake_writer.send_bytes(b"!")

    def terminate(self) -> None:
        """Ask every live worker to stop (SIGTERM); ``stop`` waits for them."""
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    def stop(self) -> None:
        """Stop every worker, killing one that does not stop within ``STOP_GRACE``, and
        remove the board."""
        self.terminate()
        started = [p for p in self.processes if p.pid is not None]  # all, unless start failed
        for process in started:
            process.join(STOP_GRACE)
        for process in started:
            if process.is_alive():
                # Stuck in its own shutdown: killed, so that the gateway does stop and its
                # service manager can restart it (the journal is safe against a kill -9).
                self.say(
                    f"garde gateway: worker pid {process.pid} did not stop within"
                    f" {STOP_GRACE:.0f} s; killing it"
                )
                process.kill()
                process.join(5)
        if self.board is not None:
            shutil.rmtree(self.board, ignore_errors=True)
            self.board = None
        self._wake_reader.close()
        self._wake_writer.close()

    def run(self) -> int:
        """Start, serve until SIGTERM or Ctrl-C (0) or until a worker ends (1), stop. For
        the main thread: it takes over SIGTERM while it runs."""
        asked = False  # by SIGTERM or Ctrl-C: a clean stop

        def on_sigterm(*_: object) -> None:
            nonlocal asked
            asked = True
            self.terminate()

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            self.start()
            ended = self.wait()
            if not asked and ended is not None:
                self.say(
                    f"garde gateway: worker pid {ended.pid} ended (exit status"
                    f" {ended.exitcode}); stopping the others"
                )
        except KeyboardInterrupt:
            asked = True
        finally:
            self.stop()
            signal.signal(signal.SIGTERM, previous)
        return 0 if asked else 1

    def __enter__(self) -> Workers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_gateway(
    catalog_source: str,
    config: GatewayConfig,
    journal: JournalChoice,
    workers: int = 1,
    *,
    announce: Announce | None = None,
    say: Say = _log,
) -> int:
    """Serve a gateway until told to stop: in this process with one worker, else with
    ``workers`` processes sharing the port. Returns 0 after a stop that was asked for, 1
    when a worker ended by itself (``garde gateway`` exits 3 then: docs/cli.md, "Exit
    codes")."""
    catalog = load_catalog(catalog_source)
    if config.target_group is not None and config.target_group not in catalog.target_groups:
        raise UsageError(
            f"--target-group {config.target_group}: unknown; the catalog has"
            f" {', '.join(catalog.target_groups)}"
        )
    journal.check()
    if workers == 1:
        run_worker(catalog_source, config, journal, None, announce)
        return 0
    return Workers(catalog_source, config, journal, workers, announce=announce, say=say).run()
