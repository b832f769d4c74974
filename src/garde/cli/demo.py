"""``garde demo``: the story of an outage, told on the embedded default catalog."""

from __future__ import annotations

import click

from garde.catalog import impact, parse_failures
from garde.cli.catalog import print_impact
from garde.cli.common import catalog_option, console, language_option, load


@click.command()
@catalog_option
@language_option
def demo(catalog_source: str, language: str) -> None:
    """Tell the story of an outage: the STS fails, then one Recip-e data center."""
    loaded = load(catalog_source)
    out = console()
    out.rule("27 January 2020: the STS fails in every data center")
    out.print(
        "Every call to the chain needs an STS token, so every profession is hit."
        " garde still journals the writes that may wait and serves recent reads, marked stale;"
        " for what must be online, each group is told its procedure.\n"
    )
    print_impact(impact(loaded, parse_failures(loaded, ["sts"]), language))
    out.rule("One Recip-e prescriber data center of three fails")
    out.print("The other data centers still serve: reduced redundancy, nobody stopped.\n")
    print_impact(impact(loaded, parse_failures(loaded, ["recipe-prescriber@dc1"]), language))
    out.print(
        "\nAsk your own questions: garde catalog impact SERVICE[@DC]...,"
        " garde catalog coverage, garde catalog graph."
    )
