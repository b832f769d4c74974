"""``garde gateway``: run the continuity proxy next to the care software."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from garde.cli.common import DONE, FAILED, catalog_option, console, log_options
from garde.storage import JOURNAL

if TYPE_CHECKING:
    from garde.gateway import JournalChoice, RunningGateway


def _banner(running: RunningGateway, journal: JournalChoice) -> None:
    """Printed by the gateway (worker 0) once it listens."""
    out = console()
    config = running.config
    catalog = running.gateway.catalog
    journal_url = journal.url
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


def _say(message: str) -> None:
    click.echo(message, err=True)


def _data_plane(running: RunningGateway) -> str:
    mode = running.config.fast_path_mode()
    if running.server.native is not None:
        return "native (C, its own thread) for plain retry-safe pass-through; Python for the rest"
    if mode == "off":
        return "Python, every request on the general path (fast_path: off)"
    if mode == "python":
        return "Python fast path (fast_path: python)"
    return "Python fast path (the native data plane is not built or cannot serve here)"


@click.command()
@log_options
@catalog_option
@click.option("--config", "config_file", default=None, help="Gateway settings file (YAML).")
@click.option(
    "--journal",
    "journal_url",
    default=JOURNAL.default,
    show_default=True,
    envvar=JOURNAL.env,
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
    from garde.gateway import JournalChoice, load_config, run_gateway
    from garde.journal import load_journal_settings
    from garde.settings import environment, merge_problems

    # The settings file and the environment checked together: one report lists everything.
    loaded, settings = merge_problems(
        lambda: load_config(config_file), lambda: load_journal_settings(environment())
    )
    config = loaded.with_overrides(
        host=host,
        port=port,
        target_group=target_group,
        monitor_feed=monitor_feed,
        fast_path=fast_path,
    )
    config.check()
    journal = JournalChoice(journal_url, journal_key_file, journal_no_encryption, settings)
    status = run_gateway(catalog_source, config, journal, workers, announce=_banner, say=_say)
    if workers > 1:
        # A worker that ended by itself: a failure, so that the service manager restarts.
        sys.exit(DONE if status == 0 else FAILED)
