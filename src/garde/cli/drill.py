"""``garde drill``: list the built-in scenarios and check a scenario file.

Thin: the scenario format and its checks live in ``garde.drill``. The runner that plays a
scenario on the lab is not built yet; asking for a run says so instead of pretending.
"""

from __future__ import annotations

import sys

import click

from garde.catalog import format_duration
from garde.errors import SettingsInvalid

INVALID = 2
"""Exit code of ``--check`` on a scenario with problems (and of a run asked for today)."""


@click.command()
@click.argument("scenario", required=False)
@click.option("--list", "listing", is_flag=True, help="List the built-in scenarios.")
@click.option("--check", is_flag=True, help="Check SCENARIO and exit: 0 valid, 2 problems.")
def drill(scenario: str | None, listing: bool, check: bool) -> None:
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
    try:
        checked = load_scenario(scenario)
    except SettingsInvalid as exc:
        # Plain lines, never wrapped: each problem is one line a reader (or grep) can take.
        click.echo(str(exc))
        sys.exit(INVALID)
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
    click.echo(
        "garde drill: the runner is not built yet (issue 16); only --check and --list work"
        " today. The scenario above is valid and will run unchanged once it is.",
        err=True,
    )
    sys.exit(INVALID)
