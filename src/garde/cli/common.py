"""Options and helpers shared by the commands: catalog choice, JSON output, the console."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from click.core import ParameterSource
from rich.console import Console

from garde.catalog import Catalog, load_catalog
from garde.errors import CatalogError, GardeError, UsageError

if TYPE_CHECKING:
    from garde.settings import Given

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes, the same for every command (docs/cli.md, "Exit codes"; tests/test_exit_codes.py
# runs each failure as a user would and reads that table). ``garde drill`` and ``garde demo``
# keep 1 for a missed expectation and so put a scenario's problems with the command line's.
DONE = 0
CORRECTABLE = 1
"""Something given can be corrected: a settings file, a URL, a path, an id, a port in use."""
COMMAND_LINE = 2
"""The command line itself is wrong: an unknown option, a missing argument (click's code)."""
FAILED = 3
"""garde or the chain failed while working: a store or the lab unreachable, entries left."""
INTERRUPTED = 130


def exit_code(error: GardeError) -> int:
    """The exit code of one of garde's own errors: what the user can correct, or a failure."""
    correctable = isinstance(error, UsageError | CatalogError) or error.status < 500
    return CORRECTABLE if correctable else FAILED


LANGUAGES = ("en", "fr", "nl")


def catalog_option(function: F) -> F:
    """``--catalog NAME|FILE``: the built-in ``belgium`` unless told otherwise."""
    return click.option(
        "--catalog",
        "catalog_source",
        default="belgium",
        show_default=True,
        envvar="GARDE_CATALOG",
        help="Built-in catalog name or path to a catalog YAML file (env GARDE_CATALOG).",
    )(function)


def log_options(function: F) -> F:
    """``--log-level`` and ``--log-format`` for a command that keeps running; the logging is
    set up before the command's body runs (``garde.logs``)."""

    @functools.wraps(function)
    def configured(*args: Any, log_level: str, log_format: str, **kwargs: Any) -> Any:
        from garde.logs import configure

        configure(log_level, "json" if log_format == "json" else "text")
        return function(*args, **kwargs)

    from garde.logs import FORMATS, LEVELS

    configured = click.option(
        "--log-format",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="Log lines on stderr: text, or one JSON object per line (time in UTC).",
    )(configured)
    configured = click.option(
        "--log-level",
        type=click.Choice(LEVELS),
        default="info",
        show_default=True,
        help="Least severe log records shown on stderr.",
    )(configured)
    return cast(F, configured)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        function
    )


def language_option(function: F) -> F:
    return click.option(
        "--lang",
        "language",
        type=click.Choice(LANGUAGES),
        default="en",
        show_default=True,
        help="Language of names and procedures.",
    )(function)


def given(fields: dict[str, str]) -> dict[str, Given]:
    """The running command's values for a part's table of settings (``{field: param}``),
    each named by where it came from: the variable when click read it from the environment,
    else the flag. Handed to the part's loader (``garde.settings.load_settings``)."""
    from garde.settings import Given

    context = click.get_current_context()
    params = {p.name: p for p in context.command.params}
    found = {}
    for field, name in fields.items():
        param = params[name]
        where = param.opts[0] if param.opts else name
        if (
            context.get_parameter_source(name) is ParameterSource.ENVIRONMENT
            and isinstance(param, click.Option)
            and isinstance(param.envvar, str)
        ):
            where = param.envvar
        found[field] = Given(context.params[name], where)
    return found


def load(source: str) -> Catalog:
    return load_catalog(source)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def console() -> Console:
    # Wide enough that procedure texts stay readable when output goes to a file or a pipe.
    return Console(width=None if sys.stdout.isatty() else 140)
