"""``garde gateway``: run the continuity proxy next to the care software."""

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
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import click

from garde.cli.common import catalog_option, console, load, run_loop
from garde.errors import UsageError

log = logging.getLogger("garde.gateway")

DEFAULT_JOURNAL = "sqlite:///garde-journal.db"


@dataclass(frozen=True)
class JournalChoice:
    """Where deferrable writes wait, and the key that seals them (picklable, for workers)."""

    url: str
    key_file: str | None = None
    no_encryption: bool = False

    async def open(self) -> Any:
        if self.url == "none":
            return None
        from garde.journal.factory import open_journal
        from garde.journal.sealing import Keyring

        keyring = Keyring.load(self.key_file, os.environ, allow_clear=self.no_encryption)
        return await open_journal(self.url, keyring)


@dataclass(frozen=True)
class WorkerRole:
    """One worker of ``--workers N`` (picklable): its number and the folder the workers share.

    Only worker 0 replays a SQLite journal (SQLite has no leases: two replayers could send the
    same entry); every worker accepts into it. With PostgreSQL every worker replays, leased.
    """

    index: int
    board: str
    replays: bool
    parent: int
    """The supervising process: a worker whose parent is gone stops (no orphan serving)."""


async def _serve(
    catalog_source: str, config: Any, journal: JournalChoice, role: WorkerRole | None
) -> None:
    from garde.gateway.runner import RunningGateway
    from garde.gateway.workers import WorkerBoard

    catalog = load(catalog_source)
    store = await journal.open()
    running = RunningGateway(
        catalog,
        config,
        store,
        reuse_port=role is not None,
        replays=role is None or role.replays,
        board=None if role is None else WorkerBoard(role.board, role.index),
    )
    await running.start()
    # Everything made so far (modules, catalog, configuration) lives as long as the process:
    # out of the collector's sight, a full collection takes microseconds instead of the tens
    # of milliseconds that showed up in the gateway's p99 under load.
    gc.freeze()
    if role is None or role.index == 0:
        _banner(running, catalog, journal.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watching = None if role is None else loop.create_task(_watch_parent(role.parent, stop))
    try:
        await stop.wait()
    finally:
        if watching is not None:
            watching.cancel()
        await running.stop()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop this worker if its supervisor is gone (killed with SIGKILL, say): otherwise the
    worker would keep serving its share of the port, with nobody to restart or stop it."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the supervising process %d is gone: this worker stops", parent)
    stop.set()


def _banner(running: Any, catalog: Any, journal_url: str | None) -> None:
    out = console()
    config = running.config
    out.print(
        f"[bold green]garde gateway[/] listening on [bold]{running.url}[/]"
        f" – catalog {catalog.name}, journal {journal_url or 'none'},"
        f" target group {config.target_group or '(from Garde-Target-Group)'}"
    )
    out.print(f"  data plane: {_data_plane(running)}")
    out.print(
        f"  admin: {running.url}/_garde/status, /_garde/events, /metrics"
        + (" (bearer token required)" if config.admin_token else " (loopback only, no token)")
    )
    # One line per service (not a table): startup output ends up in logs, where wrapped
    # table cells are unreadable and ungreppable.
    width = max(len(service.path_prefix) for service in catalog.services.values())
    for service in catalog.services.values():
        dcs = ", ".join(f"{dc} {url}" for dc, url in service.endpoints.items())
        out.print(f"  {service.path_prefix:<{width}} -> {service.id}: {dcs}", soft_wrap=True)


def _data_plane(running: Any) -> str:
    mode = running.config.fast_path_mode()
    if running.server.native is not None:
        return "native (C, its own thread) for plain retry-safe pass-through; Python for the rest"
    if mode == "off":
        return "Python, every request on the general path (fast_path: off)"
    if mode == "python":
        return "Python fast path (fast_path: python)"
    return "Python fast path (the native data plane is not built or cannot serve here)"


def _run(catalog_source: str, config: Any, journal: JournalChoice, role: WorkerRole | None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_serve(catalog_source, config, journal, role))


@click.command()
@catalog_option
@click.option("--config", "config_file", default=None, help="Gateway settings file (YAML).")
@click.option(
    "--journal",
    "journal_url",
    default=DEFAULT_JOURNAL,
    show_default=True,
    envvar="GARDE_JOURNAL",
    help="Journal URL: sqlite:///path, postgresql://..., or none (env GARDE_JOURNAL).",
)
@click.option("--journal-key-file", default=None, help="Key file sealing journaled payloads.")
@click.option(
    "--journal-no-encryption",
    is_flag=True,
    help="Store journaled payloads in clear (not for production).",
)
@click.option("--target-group", default=None, help="Target group of the callers (pharmacist...).")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8480).")
@click.option(
    "--monitor-feed",
    default=None,
    help="Base URL of a garde monitor whose mode feed to follow (skips dead data centers).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT).",
)
@click.option(
    "--fast-path",
    type=click.Choice(["auto", "native", "python", "off"]),
    default=None,
    help="Who serves plain retry-safe pass-through: the native data plane, Python's fast"
    " path, or nobody (general path). Default: the config's fast_path, else auto.",
)
def gateway(
    catalog_source: str,
    config_file: str | None,
    journal_url: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    target_group: str | None,
    host: str | None,
    port: int | None,
    monitor_feed: str | None,
    workers: int,
    fast_path: str | None,
) -> None:
    """Run the continuity proxy: the care software calls it instead of the chain."""
    from garde.gateway.config import load_config

    config = load_config(config_file).with_overrides(
        host=host,
        port=port,
        target_group=target_group,
        monitor_feed=monitor_feed,
        fast_path=fast_path,
    )
    config.check()
    catalog = load(catalog_source)
    if config.target_group is not None and config.target_group not in catalog.target_groups:
        raise UsageError(
            f"--target-group {config.target_group}: unknown; the catalog has"
            f" {', '.join(catalog.target_groups)}"
        )
    journal = JournalChoice(journal_url, journal_key_file, journal_no_encryption)
    if journal.url != "none" and not (
        journal.key_file or journal.no_encryption or os.environ.get("GARDE_JOURNAL_KEYS")
    ):
        raise UsageError(
            "the journal seals payloads (health data) and needs a key: give --journal-key-file"
            " FILE or set GARDE_JOURNAL_KEYS, or --journal-no-encryption (not for production),"
            " or --journal none to refuse deferrable writes instead of journaling them"
        )
    if workers == 1:
        _run(catalog_source, config, journal, None)
        return
    if config.port == 0:
        raise UsageError("--workers needs a fixed --port: the workers must share one port")
    # Check the port is free before starting workers, so the error comes once and clearly.
    probe = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        probe.bind((config.host, config.port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    finally:
        probe.close()
    sys.exit(_supervise(catalog_source, config, journal, workers))


def _supervise(catalog_source: str, config: Any, journal: JournalChoice, workers: int) -> int:
    """Run ``workers`` processes until told to stop, or until one of them ends.

    A worker that dies takes the others down (exit status 1), so the service manager
    restarts the gateway whole: a gateway with a worker missing would lose its share of
    the connections, and worker 0's replaying of a SQLite journal.
    """
    leased = journal.url.startswith(("postgresql://", "postgres://"))
    board = tempfile.mkdtemp(prefix="garde-gateway-")  # counters and modes only: no health data
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_run,
            args=(
                catalog_source,
                config,
                journal,
                WorkerRole(i, board, leased or i == 0, os.getpid()),
            ),
            daemon=True,
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    click.echo(f"garde gateway: {workers} workers share port {config.port}", err=True)
    asked = False  # by SIGTERM or Ctrl-C: a clean stop

    def terminate() -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    def on_sigterm(*_: object) -> None:
        nonlocal asked
        asked = True
        terminate()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        ready = multiprocessing.connection.wait([p.sentinel for p in processes])
        if not asked:
            ended = next(p for p in processes if p.sentinel in ready)
            ended.join(5)  # reaped, so that its exit status is known
            click.echo(
                f"garde gateway: worker pid {ended.pid} ended (exit status {ended.exitcode});"
                " stopping the others",
                err=True,
            )
    except KeyboardInterrupt:
        asked = True
    finally:
        terminate()
        for process in processes:
            process.join(10)
        for process in processes:
            if process.is_alive():
                # Stuck in its own shutdown: killed, so that the gateway does stop and its
                # service manager can restart it (the journal is safe against a kill -9).
                click.echo(
                    f"garde gateway: worker pid {process.pid} did not stop within 10 s; killing it",
                    err=True,
                )
                process.kill()
                process.join(5)
        shutil.rmtree(board, ignore_errors=True)
    return 0 if asked else 1
