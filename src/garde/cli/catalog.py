"""``garde catalog``: check a catalog and ask it who is stopped when a service fails."""

from __future__ import annotations

import sys

import click
from rich.table import Table
from rich.text import Text

from garde.catalog import FORMATS, Impact, Status, parse_failures, render_graph
from garde.catalog import coverage as compute_coverage
from garde.catalog import impact as compute_impact
from garde.cli.common import (
    catalog_option,
    console,
    json_option,
    language_option,
    load,
    print_json,
)
from garde.errors import CatalogError

STATUS_STYLE = {
    Status.STOPPED: "bold red",
    Status.DEGRADED: "yellow",
    Status.UNAFFECTED: "green",
}
ACTION_WORDS = {
    "failover": "fails over to another data center",
    "journal": "journals it; delivered when back",
    "stale_read": "serves the last good answer, marked stale",
    "refuse": "refuses it, with the procedure",
}


@click.group()
def catalog() -> None:
    """Check a catalog and ask it who is stopped when a service fails."""


@catalog.command()
@click.argument("file", required=False)
@json_option
def check(file: str | None, as_json: bool) -> None:
    """Validate FILE (default: the built-in belgium catalog); exit 1 listing every problem."""
    source = file or "belgium"
    try:
        loaded = load(source)
    except CatalogError as exc:
        if as_json:
            print_json(
                {
                    "valid": False,
                    "problems": [
                        {
                            "file": p.file,
                            "line": p.line,
                            "column": p.column,
                            "path": p.path,
                            "message": p.message,
                            "hint": p.hint,
                        }
                        for p in exc.problems
                    ],
                }
            )
        else:
            out = console()
            out.print(f"[bold red]{source}: {len(exc.problems)} problem(s)[/]")
            for problem in exc.problems:
                out.print(Text(f"  {problem}"))
        sys.exit(1)
    operations = sum(len(s.operations) for s in loaded.services.values())
    summary = {
        "valid": True,
        "name": loaded.name,
        "data_centers": len(loaded.data_centers),
        "services": len(loaded.services),
        "operations": operations,
        "target_groups": len(loaded.target_groups),
        "procedures": len(loaded.procedures),
    }
    if as_json:
        print_json(summary)
    else:
        console().print(
            f"[green]{source}: valid[/] – {summary['data_centers']} data centers,"
            f" {summary['services']} services, {operations} operations,"
            f" {summary['target_groups']} target groups, {summary['procedures']} procedures"
        )


@catalog.command()
@click.argument("failures", nargs=-1, required=True, metavar="SERVICE[@DC]...")
@catalog_option
@language_option
@json_option
def impact(failures: tuple[str, ...], catalog_source: str, language: str, as_json: bool) -> None:
    """Who is stopped if these services fail (in one data center with @DC, else in all)."""
    loaded = load(catalog_source)
    result = compute_impact(loaded, parse_failures(loaded, failures), language)
    if as_json:
        print_json(result.as_json())
        return
    print_impact(result)


def print_impact(result: Impact) -> None:
    out = console()
    down = [
        sid if v.impacted_by == (sid,) else f"{sid} (impacted by {', '.join(v.impacted_by)})"
        for sid, v in result.services.items()
        if v.state == "down"
    ]
    reduced = [
        f"{sid} (left: {', '.join(v.dcs_left)})"
        for sid, v in result.services.items()
        if v.state == "reduced_redundancy"
    ]
    out.print(f"[bold]If {', '.join(str(f) for f in result.failures)} fail(s):[/]")
    if down:
        out.print(f"  [red]down:[/] {', '.join(down)}")
    if reduced:
        out.print(f"  [yellow]reduced redundancy:[/] {', '.join(reduced)}")
    table = Table(show_lines=True, title="Impact per target group")
    table.add_column("target group")
    table.add_column("status")
    table.add_column("critical operation")
    table.add_column("garde")
    table.add_column("procedure", max_width=60)
    for group in result.groups.values():
        style = STATUS_STYLE[group.status]
        if not group.operations:
            table.add_row(group.name, Text(group.status.value, style=style), "–", "–", "–")
            continue
        for i, op in enumerate(group.operations):
            table.add_row(
                group.name if i == 0 else "",
                Text(group.status.value, style=style) if i == 0 else "",
                Text(f"{op.service}.{op.operation}", style=STATUS_STYLE[op.status]),
                ACTION_WORDS[op.continuity.value],
                op.procedure or ("–" if op.continuity.value == "failover" else "NO PROCEDURE"),
            )
    out.print(table)


@catalog.command()
@catalog_option
@json_option
def coverage(catalog_source: str, as_json: bool) -> None:
    """The BCP gaps: critical operations without procedure, continuity class or a feasible RTO."""
    gaps = compute_coverage(load(catalog_source))
    if as_json:
        print_json({"gaps": [g.as_json() for g in gaps]})
        return
    out = console()
    if not gaps:
        out.print("[green]no gaps: every critical operation has a procedure and a feasible RTO[/]")
        return
    table = Table(title=f"{len(gaps)} BCP gap(s)")
    for column in ("target group", "service", "operation", "gap"):
        table.add_column(column)
    for gap in gaps:
        table.add_row(gap.group, gap.service, gap.operation, gap.reason)
    out.print(table)


@catalog.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mermaid", show_default=True)
@catalog_option
def graph(fmt: str, catalog_source: str) -> None:
    """The dependency graph, as Graphviz dot or Mermaid."""
    sys.stdout.write(render_graph(load(catalog_source), fmt))
