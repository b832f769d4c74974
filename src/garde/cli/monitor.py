"""``garde monitor``, ``garde probe``, ``garde incident``, ``garde maintenance``, ``garde sla``.

The monitor and its tools share one database (``--db``): incident and maintenance commands
write to it directly, so they work whether or not the monitor is running.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from garde.cli.common import (
    catalog_option,
    console,
    given,
    json_option,
    load,
    log_options,
    print_json,
)
from garde.errors import UsageError
from garde.storage import MONITOR

if TYPE_CHECKING:
    from garde.catalog import Catalog
    from garde.monitor import Incident, ProbeSettings, Store

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PORT = 8490


def db_option(function: F) -> F:
    return click.option(
        "--db",
        "db_url",
        default=MONITOR.default,
        show_default=True,
        envvar=MONITOR.env,
        help="sqlite:///PATH or postgresql://USER@HOST/DB[?schema=NAME] (env GARDE_MONITOR_DB).",
    )(function)


def _open(db_url: str) -> Store:
    from garde.monitor import open_store

    store = open_store(db_url)
    # Closed when the command ends, whatever the way: a PostgreSQL connection left open
    # would only be closed by the garbage collector, with a warning.
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(store.close)
    return store


def _probe_settings(probes_file: str | None, catalog: Catalog) -> ProbeSettings | None:
    """The ``--probes`` file checked against the catalog (every problem at once), or None."""
    if probes_file is None:
        return None
    from garde.monitor import load_probe_settings

    return load_probe_settings(probes_file, catalog)


def _print_check(catalog: Catalog, settings: ProbeSettings | None, probes_file: str | None) -> None:
    from garde.monitor import targets_from_catalog

    targets = targets_from_catalog(catalog, settings)
    checks = sum(len(t.assertions) for t in targets)
    what = f"{probes_file}: valid" if probes_file is not None else "no --probes file"
    click.echo(
        f"{what}; catalog {catalog.name}: {len(targets)} targets, {checks} assertion checks"
        " (nothing was started)"
    )


@click.command()
@log_options
@catalog_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port.")
@click.option(
    "--public-url",
    envvar="GARDE_MONITOR_PUBLIC_URL",
    default=None,
    metavar="URL",
    help="Base URL readers reach the monitor at, for the Atom feed's ids and links"
    " (default: the address it listens on; env GARDE_MONITOR_PUBLIC_URL).",
)
@click.option("--location", default="local", show_default=True, help="Name of this probe site.")
@click.option(
    "--quorum",
    type=int,
    default=None,
    help="Locations that must agree a target is down (default: a majority).",
)
@click.option("--no-probes", is_flag=True, help="Do not probe from here; only pushed results.")
@click.option(
    "--admin-token",
    envvar="GARDE_MONITOR_ADMIN_TOKEN",
    default=None,
    help="Bearer token for API writes (incident updates, maintenance).",
)
@click.option(
    "--location-token",
    multiple=True,
    metavar="NAME=TOKEN",
    help="Accept results pushed by probe location NAME with TOKEN (repeatable).",
)
@click.option(
    "--webhook",
    multiple=True,
    metavar="URL",
    help="POST incident events to URL, signed with --webhook-secret (repeatable).",
)
@click.option(
    "--webhook-secret",
    envvar="GARDE_MONITOR_WEBHOOK_SECRET",
    default=None,
    help="HMAC-SHA256 key for the Garde-Signature header of webhooks.",
)
@click.option(
    "--alert",
    multiple=True,
    metavar="APPRISE_URL",
    help="Alert channel as an apprise URL: mailto://, slack://... (repeatable).",
)
@click.option(
    "--probes",
    "probes_file",
    default=None,
    help="Probe settings (YAML): identity, test NISS, fields, assertions.",
)
@click.option(
    "--subscriptions/--no-subscriptions",
    default=True,
    show_default=True,
    help="Take subscriptions per profession (form, confirmation, notifications).",
)
@click.option(
    "--subscribe-mail",
    envvar="GARDE_MONITOR_SUBSCRIBE_MAIL",
    default=None,
    metavar="APPRISE_MAILTO_URL",
    help="Account that e-mails subscribers, as an apprise mailto(s):// URL.",
)
@click.option(
    "--subscribe-per-client",
    default=5,
    show_default=True,
    type=int,
    help="Subscription requests per client address per hour.",
)
@click.option(
    "--subscribe-per-address",
    default=3,
    show_default=True,
    type=int,
    help="Confirmation messages per address or URL per day.",
)
@click.option(
    "--subscribe-pending-max",
    default=1000,
    show_default=True,
    type=int,
    help="Subscriptions waiting for confirmation at most.",
)
@click.option(
    "--subscribe-confirm-within",
    default="48h",
    show_default=True,
    help="How long a confirmation link is valid.",
)
@click.option(
    "--subscribe-private-hosts",
    is_flag=True,
    help="Allow subscribers' channels on loopback/private networks (labs, tests).",
)
@click.option(
    "--keep-raw",
    default="3d",
    show_default=True,
    help="How long raw probe results are kept.",
)
@click.option("--keep-minutes", default="30d", show_default=True, help="Per-minute rows.")
@click.option("--keep-hours", default="400d", show_default=True, help="Per-hour rows.")
@click.option(
    "--keep-days", default="forever", show_default=True, help="Per-day rows (or forever)."
)
@click.option(
    "--check",
    is_flag=True,
    help="Check the options, the catalog and the --probes file, then exit (1 listing every"
    " problem); nothing is opened or started.",
)
def monitor(
    catalog_source: str,
    db_url: str,
    host: str,
    port: int,
    public_url: str | None,
    location: str,
    quorum: int | None,
    no_probes: bool,
    admin_token: str | None,
    location_token: tuple[str, ...],
    webhook: tuple[str, ...],
    webhook_secret: str | None,
    alert: tuple[str, ...],
    probes_file: str | None,
    subscriptions: bool,
    subscribe_mail: str | None,
    subscribe_per_client: int,
    subscribe_per_address: int,
    subscribe_pending_max: int,
    subscribe_confirm_within: str,
    subscribe_private_hosts: bool,
    keep_raw: str,
    keep_minutes: str,
    keep_hours: str,
    keep_days: str,
    check: bool,
) -> None:
    """Probe every service in every data center; serve the status page, API and feeds."""
    from garde.monitor import (
        Monitor,
        Notifier,
        create_app,
        load_monitor_settings,
        open_subscriptions,
        serve,
    )
    from garde.settings import Given, environment

    # Every option is checked, all at once, before the database is opened: bad input
    # changes nothing.
    values = given(
        {
            "db": "db_url",
            "host": "host",
            "port": "port",
            "public_url": "public_url",
            "location": "location",
            "quorum": "quorum",
            "admin_token": "admin_token",
            "location_tokens": "location_token",
            "webhooks": "webhook",
            "webhook_secret": "webhook_secret",
            "alerts": "alert",
            "probes": "probes_file",
            "subscriptions": "subscriptions",
            "subscribe_mail": "subscribe_mail",
            "subscribe_per_client": "subscribe_per_client",
            "subscribe_per_address": "subscribe_per_address",
            "subscribe_pending_max": "subscribe_pending_max",
            "subscribe_confirm_within": "subscribe_confirm_within",
            "subscribe_private_hosts": "subscribe_private_hosts",
            "keep_raw": "keep_raw",
            "keep_minutes": "keep_minutes",
            "keep_hours": "keep_hours",
            "keep_days": "keep_days",
        }
    )
    values["probe_locally"] = Given(not no_probes, "--no-probes")
    options = load_monitor_settings(environment(), values)
    catalog = load(catalog_source)
    settings = _probe_settings(options.probes, catalog)
    if check:
        _print_check(catalog, settings, options.probes)
        return
    store = _open(options.db)
    mon = Monitor(
        catalog,
        store,
        location=options.location,
        quorum=options.quorum,
        retention=options.retention(),
        settings=settings,
        notifier=Notifier(options.channels()),
        push_tokens=options.location_tokens,
        probe_locally=options.probe_locally,
    )
    subs = None
    if options.subscriptions:
        subs = open_subscriptions(
            mon,
            rules=options.subscription_rules(),
            mailer=options.subscribe_mail,
            public_url=options.public_url,
        )
    app = create_app(
        mon, admin_token=options.admin_token, public_url=options.public_url, subscriptions=subs
    )

    def listening(bound: int) -> None:
        # With --port 0 the system picks the port: say which, for scripts and tests.
        click.echo(f"garde monitor: http://{options.host}:{bound}/ ({len(mon.targets)} targets)")

    try:
        asyncio.run(serve(mon, app, options.host, options.port, on_listening=listening))
    finally:
        store.close()


@click.command()
@log_options
@catalog_option
@click.option(
    "--location", required=True, help="Name of this probe site (as the monitor knows it)."
)
@click.option("--push", "push_url", required=True, help="Base URL of the monitor.")
@click.option(
    "--token",
    envvar="GARDE_PROBE_TOKEN",
    required=True,
    help="This location's token (env GARDE_PROBE_TOKEN).",
)
@click.option("--for", "run_for", default=None, help="Stop after this long (default: never).")
@click.option(
    "--probes", "probes_file", default=None, help="Probe settings (YAML), as for monitor."
)
def probe(
    catalog_source: str,
    location: str,
    push_url: str,
    token: str,
    run_for: str | None,
    probes_file: str | None,
) -> None:
    """Probe from this site and push the results to a monitor."""
    from garde.monitor import ProbeAgent, load_agent_settings, targets_from_catalog
    from garde.settings import environment

    options = load_agent_settings(
        environment(),
        given(
            {
                "location": "location",
                "push_url": "push_url",
                "token": "token",
                "run_for": "run_for",
                "probes": "probes_file",
            }
        ),
    )
    limit = options.run_for
    catalog = load(catalog_source)
    agent = ProbeAgent(
        targets_from_catalog(catalog, _probe_settings(options.probes, catalog)),
        location=options.location,
        push_url=options.push_url,
        token=options.token,
    )

    async def main() -> None:
        stop = asyncio.Event()
        if limit is not None:
            asyncio.get_running_loop().call_later(limit, stop.set)
        await agent.run(stop)

    asyncio.run(main())
    click.echo(f"pushed {agent.pushed} results ({agent.push_failures} failed pushes)")


def _when(ts: float | None) -> str:
    from garde.monitor import when

    return when(ts) or "–"


def _print_incident(incident: Incident) -> None:
    from rich.markup import escape

    out = console()
    out.print(
        f"[bold]#{incident.id} {escape(incident.title)}[/] ({incident.severity}, {incident.state})"
    )
    out.print(f"  started {_when(incident.started_at)}, resolved {_when(incident.resolved_at)}")
    if incident.impacted:
        out.print(f"  also impacted: {', '.join(incident.impacted)}")
    for u in incident.updates:
        author = f" ({u.author})" if u.author else ""
        # Plain text: an operator's message is not rich markup.
        out.print(f"  {_when(u.at)} {u.status}: {u.message}{author}", markup=False)


@click.group()
def incident() -> None:
    """List incidents and add operator updates to them."""


@incident.command("list")
@db_option
@click.option("--open", "open_only", is_flag=True, help="Only incidents still open.")
@json_option
def incident_list(db_url: str, open_only: bool, as_json: bool) -> None:
    """Incidents, newest first."""
    from garde.monitor import incident_json

    found = _open(db_url).incidents(open_only=open_only)
    if as_json:
        print_json({"incidents": [incident_json(i) for i in found]})
        return
    if not found:
        console().print("no incidents")
    for i in found:
        # Plain text: "[resolved]" and the titles are not rich markup.
        console().print(f"#{i.id} {_when(i.started_at)} [{i.state}] {i.title}", markup=False)


@incident.command("show")
@click.argument("incident_id", type=int)
@db_option
@json_option
def incident_show(incident_id: int, db_url: str, as_json: bool) -> None:
    """One incident with its timeline."""
    from garde.monitor import incident_json

    found = _open(db_url).incident(incident_id)
    if as_json:
        print_json(incident_json(found))
    else:
        _print_incident(found)


@incident.command("update")
@click.argument("incident_id", type=int)
@click.argument("message")
@click.option(
    "--status",
    default="update",
    show_default=True,
    help="investigating, identified, monitoring, update...",
)
@click.option("--author", default="operator", show_default=True, help="Who writes.")
@db_option
def incident_update(incident_id: int, message: str, status: str, author: str, db_url: str) -> None:
    """Add an operator update to incident INCIDENT_ID's timeline."""
    if not message.strip():
        raise UsageError("the update message is empty: say what is known or being done")
    store = _open(db_url)
    store.add_update(incident_id, time.time(), "operator", status, message.strip(), author)
    _print_incident(store.incident(incident_id))


@click.group()
def maintenance() -> None:
    """Plan, list and cancel maintenance windows."""


@maintenance.command("add")
@catalog_option
@db_option
@click.option("--title", required=True, help="What is done, as shown on the status page.")
@click.option(
    "--scope",
    multiple=True,
    required=True,
    metavar="SERVICE[@DC]|*",
    help="What the window covers (repeatable).",
)
@click.option("--start", required=True, help="Start, ISO 8601 (UTC unless an offset is given).")
@click.option("--end", required=True, help="End of the (first) occurrence, ISO 8601.")
@click.option("--rrule", default=None, help="Recurrence, RFC 5545 RRULE: FREQ=WEEKLY;BYDAY=SU.")
@click.option("--until", default=None, help="Last possible start of a recurring window.")
def maintenance_add(
    catalog_source: str,
    db_url: str,
    title: str,
    scope: tuple[str, ...],
    start: str,
    end: str,
    rrule: str | None,
    until: str | None,
) -> None:
    """Plan a maintenance window (one-off, or recurring with --rrule)."""
    from garde.monitor import WindowNames, plan_window

    window = plan_window(
        _open(db_url),
        load(catalog_source),
        title=title,
        scope=scope,
        starts=start,
        ends=end,
        rrule=rrule,
        until=until,
        now=time.time(),
        names=WindowNames("--start", "--end", "--until"),
    )
    starts, ends = window.starts_at, window.ends_at
    console().print(f"maintenance #{window.id} planned: {title}, {_when(starts)} – {_when(ends)}")


@maintenance.command("list")
@db_option
@json_option
def maintenance_list(db_url: str, as_json: bool) -> None:
    """Maintenance windows, cancelled ones left out."""
    from garde.monitor import maintenance_json

    windows = _open(db_url).maintenances()
    if as_json:
        print_json({"maintenance": [maintenance_json(w) for w in windows]})
        return
    if not windows:
        console().print("no maintenance planned")
    for w in windows:
        again = f" every {w.rrule}" if w.rrule else ""
        console().print(
            f"#{w.id} {w.title} ({', '.join(w.scope)}): {_when(w.starts_at)} –"
            f" {_when(w.ends_at)}{again}"
        )


@maintenance.command("cancel")
@click.argument("maintenance_id", type=int)
@db_option
def maintenance_cancel(maintenance_id: int, db_url: str) -> None:
    """Cancel maintenance window MAINTENANCE_ID."""
    _open(db_url).cancel_maintenance(maintenance_id)
    console().print(f"maintenance #{maintenance_id} cancelled")


@click.command()
@catalog_option
@db_option
@click.option("--month", required=True, help="The month, YYYY-MM.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "html"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@json_option
def sla(catalog_source: str, db_url: str, month: str, fmt: str, as_json: bool) -> None:
    """Monthly availability per service and data center over the time observed, maintenance
    excluded; the month so far while it runs."""
    from garde.monitor import sla_csv, sla_json, sla_report

    report = sla_report(load(catalog_source), _open(db_url), month, time.time())
    if as_json:
        print_json(sla_json(report))
        return
    if fmt == "csv":
        sys.stdout.write(sla_csv(report))
        return
    if fmt == "html":
        from garde.monitor import render_sla, templates

        sys.stdout.write(render_sla(templates(), report, "en"))
        return
    from rich.table import Table

    from garde.monitor import MIN_COVERAGE, MIN_OBSERVED, duration, when

    running = "" if report.complete else ", month in progress"
    table = Table(
        title=f"SLA {month}: {when(report.start)} – {when(report.until)}{running}",
        caption=f"Availability over the time observed, maintenance excluded; none with less"
        f" than {MIN_COVERAGE:.0%} of the period or {duration(MIN_OBSERVED)} observed.",
    )
    for column in (
        "service",
        "availability",
        "observed",
        "coverage",
        "downtime min",
        "maintenance min",
        "incidents",
    ):
        table.add_column(column)
    for r in report.rows:
        if r.availability is not None:
            figure = f"{r.availability * 100:.3f}%"
        else:
            figure = "insufficient data" if not r.observed.sufficient else "–"
        coverage = r.observed.coverage
        table.add_row(
            r.service,
            figure,
            duration(r.observed.seconds),
            "–" if coverage is None else f"{coverage * 100:.3f}%",
            "–" if r.downtime_minutes is None else f"{r.downtime_minutes:.1f}",
            f"{r.maintenance_minutes:.1f}",
            str(r.incidents),
        )
    console().print(table)


COMMANDS = [monitor, probe, incident, maintenance, sla]
"""Registered by ``garde.cli``."""
