"""``garde drill``: list the built-in scenarios, check a scenario file, run a drill.

Thin: the scenario format, the runner and the report live in ``garde.drill``. A run shows a
Rich progress display on a terminal (none when the output is a file or a pipe), prints the
summary, writes ``report.json`` and ``report.html`` and exits 0 if every expectation held.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from garde.catalog import format_duration
from garde.cli.common import log_options
from garde.errors import DrillError, GardeError, SettingsInvalid, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from garde.drill import Progress

PASSED, MISSED, INVALID, FAILED = 0, 1, 2, 3
"""Exit codes: every expectation held; one missed; the scenario has problems (or a usage
error); the drill could not be run to its end (a process would not start...)."""


@click.command()
@log_options
@click.argument("scenario", required=False)
@click.option("--list", "listing", is_flag=True, help="List the built-in scenarios.")
@click.option("--check", is_flag=True, help="Check SCENARIO and exit: 0 valid, 2 problems.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where report.json, report.html and the run's files go (default: ./drill-SCENARIO).",
)
@click.option("--json-report", type=click.Path(dir_okay=False), help="Also write report.json here.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the workload.")
@click.option(
    "--no-workload",
    is_flag=True,
    help="Play only the timeline: your own software sends through the gateways.",
)
def drill(
    scenario: str | None,
    listing: bool,
    check: bool,
    report_dir: str | None,
    json_report: str | None,
    seed: int,
    no_workload: bool,
) -> None:
    """Rehearse an outage: SCENARIO is a built-in name (see --list) or a scenario file."""
    from garde.drill import builtin_names, load_scenario

    if listing:
        width = max(len(name) for name in builtin_names())
        for name in builtin_names():
            loaded = load_scenario(name).scenario
            real = format_duration(loaded.real_duration)
            click.echo(f"{name:<{width}}  {real:>6}  {loaded.description}")
        return
    if scenario is None:
        raise click.UsageError("name a scenario (garde drill --list shows the built-ins)")
    if json_report and not Path(json_report).resolve().parent.is_dir():
        # Found now, not after the drill has run for minutes.
        parent = Path(json_report).parent
        click.echo(
            f"garde: --json-report {json_report}: the directory {parent} does not exist;"
            f" check the path, or create it first (mkdir -p {parent})",
            err=True,
        )
        sys.exit(INVALID)
    try:
        checked = load_scenario(scenario)
    except SettingsInvalid as exc:
        # Plain lines, never wrapped: each problem is one line a reader (or grep) can take.
        click.echo(str(exc))
        sys.exit(INVALID)
    except GardeError as exc:
        # 1 is the verdict's here: what else the user can correct goes with the scenario.
        click.echo(f"garde: {exc}", err=True)
        sys.exit(INVALID if isinstance(exc, UsageError) else FAILED)
    body = checked.scenario
    summary = (
        f"{checked.name}: valid. {format_duration(body.duration)} of scenario time in"
        f" {format_duration(body.real_duration)} (time_scale {body.time_scale:g}),"
        f" {len(body.sites)} site(s), {body.gateway_count} gateway(s),"
        f" {len(body.timeline)} timeline entr{'y' if len(body.timeline) == 1 else 'ies'}"
    )
    click.echo(summary)
    if check:
        return
    directory = Path(report_dir or f"drill-{checked.name}")
    sys.exit(run_and_report(checked, directory, json_report, seed, no_workload))


def run_and_report(
    checked: Any,
    directory: Path,
    json_report: str | None,
    seed: int,
    no_workload: bool,
    hooks: list[Any] | None = None,
) -> int:
    """Run the drill, write and print its report; the exit code. ``hooks`` (tests): see
    ``garde.drill.runner.run_drill``."""
    import asyncio

    from garde.cli.common import console
    from garde.drill import build_report, render, run_drill

    out = console()
    directory.mkdir(parents=True, exist_ok=True)
    run_dir = directory / "run"
    if no_workload:
        out.print(
            f"No workload: send your software's requests through the gateways listed in"
            f" {run_dir / 'endpoints.json'} once it appears."
        )
    try:
        with _progress(out) as progress:
            drill = run_drill(
                checked,
                run_dir,
                seed_value=seed,
                no_workload=no_workload,
                progress=progress,
                hooks=hooks,
                on_ready=lambda stack: _endpoints(stack, run_dir, out, no_workload),
            )
            run = asyncio.run(_stoppable(drill))
    except DrillError as exc:
        out.print(f"[red]garde drill: the drill could not run to its end:[/] {exc}", markup=True)
        return FAILED
    except UsageError as exc:
        out.print(f"garde drill: {exc}", markup=False)
        return INVALID
    except GardeError as exc:
        out.print(f"garde drill: the drill could not run to its end: {exc}", markup=False)
        return FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        out.print("garde drill: interrupted; every process it started was stopped")
        return FAILED
    report = build_report(run)
    text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    (directory / "report.json").write_text(text, encoding="utf-8")
    if json_report:
        Path(json_report).write_text(text, encoding="utf-8")
    (directory / "report.html").write_text(render(report), encoding="utf-8")
    print_summary(out, report)
    out.print(f"report: {directory / 'report.html'} and {directory / 'report.json'}")
    return PASSED if report["verdict"]["passed"] else MISSED


async def _stoppable(drill: Any) -> Any:
    """Run ``drill`` so that SIGTERM stops it as Ctrl-C does: cancelled, its processes
    stopped on the way out."""
    import asyncio
    import contextlib
    import signal

    task = asyncio.ensure_future(drill)
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def _endpoints(stack: Any, run_dir: Path, out: Console, announce: bool) -> None:
    """Say where a vendor's software sends (also in ``endpoints.json``)."""
    if announce:
        for site in stack.sites:
            urls = ", ".join(g.url for g in site.gateways)
            out.print(f"  {site.name} ({site.group}, NIHII {site.identity}): {urls}")


class _progress:
    """A Rich live display on a terminal; nothing otherwise (logs and CI stay clean)."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.live: Any = None

    def __enter__(self) -> Any:
        if not self.out.is_terminal:
            return None
        from rich.live import Live

        self.live = Live(console=self.out, refresh_per_second=4, transient=True)
        self.live.__enter__()
        return self.update

    def update(self, state: Progress) -> None:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        left = max(0.0, state.total - state.elapsed)
        table.add_row("phase", state.phase)
        table.add_row("time left", f"{left:.0f}s of {state.total:.0f}s (then the drain)")
        table.add_row("journal depth", str(state.depth))
        said = ", ".join(f"{n} {o}" for o, n in state.outcomes.most_common())
        table.add_row("requests", said or "–")
        self.live.update(table)

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def print_summary(out: Console, report: dict[str, Any]) -> None:
    """The terminal summary: outcomes per operation, each expectation, the verdict."""
    from rich.markup import escape
    from rich.table import Table

    from garde.drill import OUTCOMES

    table = Table(title="Requests by outcome", title_justify="left")
    shown = [o for o in OUTCOMES if any(r["counts"].get(o) for r in report["outcomes"])]
    for column in ("operation", "group", *shown):
        table.add_column(column)
    for row in report["outcomes"]:
        counts = [str(row["counts"].get(o, "")) for o in shown]
        table.add_row(f"{row['service']}.{row['operation']}", row["target_group"], *counts)
    if report["outcomes"]:
        out.print(table)
    for e in report["expectations"]:
        mark = "[green]met[/]" if e["met"] else "[bold red]MISSED[/]"
        out.print(
            f"  {mark}  {escape(e['name'])}: {escape(e['measured'])}"
            f" (expected {escape(e['expected'])})"
        )
    out.print(escape(report["summary"]), soft_wrap=False)
    passed = report["verdict"]["passed"]
    out.print("[bold green]PASSED[/]" if passed else "[bold red]MISSED[/]")
