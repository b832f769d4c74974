"""``garde demo``: the shortest built-in drill (``demo``), told as a story on one screen.

What an STS outage would stop (in one line, with the command that lists it all), then the
``demo`` scenario played on real processes: Recip-e's primary data center fails, then
Recip-e and MyCareNet everywhere, then all heal. The story says what failed, who was stopped,
what garde did and what the lab's ledger says; then, unless ``--no-serve``, the monitor's
status page, the gateways' local pages and the HTML report stay served on loopback until
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from garde.cli.common import console, language_option, log_options

if TYPE_CHECKING:
    from rich.console import Console

    from garde.drill import Run, Stack


@click.command()
@log_options
@language_option
@click.option(
    "--no-serve",
    is_flag=True,
    help="Exit when the story is told (CI); otherwise the pages stay served until Ctrl-C.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    default="drill-demo",
    show_default=True,
    help="Where the drill's report.json, report.html and run files go.",
)
def demo(language: str, no_serve: bool, report_dir: str) -> None:
    """Tell the story of an outage: what it stops, then live, what garde keeps going."""
    from garde.catalog import Status, impact, load_catalog, parse_failures
    from garde.drill import load_scenario, run_drill
    from garde.errors import DrillError, GardeError, UsageError

    out = console()
    checked = load_scenario("demo")
    catalog = load_catalog("belgium")
    sts = impact(catalog, parse_failures(catalog, ["sts"]), language)
    stopped = [g for g in sts.groups.values() if g.status is Status.STOPPED]
    out.rule("27 January 2020: the STS fails in every data center")
    out.print(
        f"Every call needs an STS token: {len(stopped)} of {len(sts.groups)} target groups"
        " would be stopped for what must be online; garde journals the writes that may wait"
        " and serves recent reads. `garde catalog impact sts` lists every operation."
    )
    out.rule("Live: a pharmacy and a GP practice through a Recip-e and MyCareNet outage")
    out.print(f"{checked.scenario.description} (30 s on real processes; starting...)")
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    told: dict[str, Any] = {}

    async def linger(stack: Stack, run: Run) -> None:
        told["report"] = _write(directory, run)
        tell(out, told["report"])
        if no_serve:
            return
        await _serve(out, stack, directory)

    try:
        asyncio.run(run_drill(checked, directory / "run", linger=linger))
    except DrillError as exc:
        out.print(f"garde demo: the drill could not run: {exc}", markup=False)
        sys.exit(3)
    except GardeError as exc:
        # Not 1, the verdict's code: what the user can correct is 2, as for garde drill.
        out.print(f"garde demo: {exc}", markup=False)
        sys.exit(2 if isinstance(exc, UsageError) else 3)
    except KeyboardInterrupt:
        pass
    report = told.get("report")
    if report is None:
        sys.exit(3)
    if not report["verdict"]["passed"]:
        sys.exit(1)


def _write(directory: Path, run: Run) -> dict[str, Any]:
    from garde.drill import build_report, render

    report = build_report(run)
    text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    (directory / "report.json").write_text(text, encoding="utf-8")
    (directory / "report.html").write_text(render(report), encoding="utf-8")
    return report


def tell(out: Console, report: dict[str, Any]) -> None:
    """The story on one screen: what failed, who was stopped, what garde did, the ledger."""
    from rich.markup import escape

    notes = [f["note"] for f in report["faults"] if f.get("note")]
    out.print("[bold]What failed[/]: " + escape("; then ".join(dict.fromkeys(notes))) + ".")
    stopped: Counter[str] = Counter()
    did: Counter[str] = Counter()
    for row in report["outcomes"]:
        counts = row["counts"]
        if counts.get("refused with procedure"):
            stopped[f"{row['target_group']} ({row['service']}.{row['operation']})"] += counts[
                "refused with procedure"
            ]
        for outcome in ("failed over", "stale read", "journaled then delivered"):
            did[outcome] += counts.get(outcome, 0)
    who = ", ".join(f"{k}: {n}" for k, n in sorted(stopped.items())) or "nobody"
    out.print(f"[bold]Who was stopped[/] (refused with their fallback procedure): {escape(who)}.")
    out.print(
        f"[bold]What garde did[/]: {did['failed over']} calls failed over to another data"
        f" center, {did['stale read']} reads answered from the last good answer (marked"
        f" stale), {did['journaled then delivered']} writes journaled with a receipt and"
        " delivered once the chain was back."
    )
    ledger = report["ledger"]
    colour = "green" if ledger["lost"] == 0 and ledger["duplicates"] == 0 else "red"
    drain = report["times"]["drain"]
    out.print(
        f"[bold {colour}]What the ledger says[/]: of {ledger['acknowledged']} writes"
        f" acknowledged, {ledger['lost']} lost, {ledger['duplicates']} applied twice"
        + (f"; the journals drained {drain:.1f}s after the chain came back." if drain else ".")
    )
    passed = report["verdict"]["passed"]
    out.print("[bold green]Every expectation held.[/]" if passed else "[bold red]Missed.[/]")
    out.print("For the whole chain's impact of any failure: garde catalog impact SERVICE.")


async def _serve(out: Console, stack: Stack, directory: Path) -> None:
    """The HTML report on a loopback port, with the monitor and gateways still up."""
    from aiohttp import web

    from garde.drill import free_port

    page = (directory / "report.html").read_bytes()

    async def report(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", report)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    out.print(f"\nThe report: http://127.0.0.1:{port}/ (also {directory / 'report.html'})")
    if stack.monitor_url:
        out.print(f"The status page: {stack.monitor_url}/")
    for site in stack.sites:
        for gateway in site.gateways:
            out.print(f"The {site.name}'s gateway page: {gateway.url}/_garde/")
    out.print("Ctrl-C to stop everything.")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
