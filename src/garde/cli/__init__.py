"""The ``garde`` command line: thin; it parses, builds the parts and runs them.

Each part's commands live in a module of this package and are registered here, so the
command tree reads in one place. Heavy parts are imported inside the commands that need them,
so ``garde catalog check`` starts fast.
"""

from __future__ import annotations

import sys

import click

from garde import __version__
from garde.cli.catalog import catalog
from garde.cli.common import INTERRUPTED, exit_code
from garde.cli.demo import demo
from garde.cli.drill import drill
from garde.cli.gateway import gateway
from garde.cli.journal import journal
from garde.cli.lab import lab
from garde.cli.monitor import COMMANDS as MONITOR_COMMANDS
from garde.errors import GardeError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="garde")
def cli() -> None:
    """garde keeps the eHealth chain working for care providers when its services fail."""


cli.add_command(catalog)
cli.add_command(demo)
cli.add_command(drill)
for _command in MONITOR_COMMANDS:
    cli.add_command(_command)
cli.add_command(gateway)
cli.add_command(journal)
cli.add_command(lab)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``garde`` script; garde's own errors end in a message, not a trace."""
    try:
        cli.main(args=argv, prog_name="garde", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GardeError as exc:
        click.echo(f"garde: {exc}", err=True)
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
