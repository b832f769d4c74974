"""``garde demo``: the story of an outage, told on the embedded default catalog.

It opens with what the catalog says an STS outage stops, then runs the story live: the lab
and a gateway in this process, a pharmacy and a GP practice working through a Recip-e and
MyCareNet outage, and the lab's ledger as the judge of what was lost or doubled.
"""

from __future__ import annotations

import asyncio
import sys

import click

from garde.catalog import impact, parse_failures
from garde.cli.catalog import print_impact
from garde.cli.common import catalog_option, console, language_option, load, log_options


@click.command()
@log_options
@catalog_option
@language_option
@click.option(
    "--no-serve",
    is_flag=True,
    help="Exit when the story is told (CI); otherwise lab and gateway stay up until Ctrl-C.",
)
@click.option(
    "--minute",
    type=click.FloatRange(8, 600),
    default=60.0,
    show_default=True,
    help="Seconds of simulated work, split over the four steps.",
)
def demo(catalog_source: str, language: str, no_serve: bool, minute: float) -> None:
    """Tell the story of an outage: what it stops, then live, what garde keeps going."""
    from garde.cli.demo_story import run_story
    from garde.lab import lab_in_thread

    loaded = load(catalog_source)
    out = console()
    out.rule("27 January 2020: the STS fails in every data center")
    out.print(
        "Every call to the chain needs an STS token, so every profession is hit."
        " garde still journals the writes that may wait and serves recent reads, marked stale;"
        " for what must be online, each group is told its procedure.\n"
    )
    print_impact(impact(loaded, parse_failures(loaded, ["sts"]), language))
    out.rule("Live: a pharmacy and a GP practice through a Recip-e and MyCareNet outage")
    with lab_in_thread(loaded) as lab:
        ok = asyncio.run(run_story(loaded, lab, out, minute))
        if not no_serve:
            out.print(
                f"\nThe lab stays up (control API {lab.control_url}); Ctrl-C to stop."
                " Try: garde lab status, garde catalog impact recipe-executor."
            )
            try:
                while True:
                    asyncio.run(asyncio.sleep(3600))
            except KeyboardInterrupt:
                pass
    if not ok:
        sys.exit(2)
