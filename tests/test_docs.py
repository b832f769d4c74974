"""The docs keep up with the code: every CLI command is documented in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import click

from garde.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands(group: click.Group, prefix: str = "garde") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


def test_every_cli_command_is_documented() -> None:
    """A command missing from docs/cli.md fails the build, so docs never drift."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [c for c in _commands(cli) if f"`{c}" not in text]
    assert not missing, f"document these commands in docs/cli.md: {missing}"


def test_every_option_is_documented() -> None:
    """Each option of each command appears in docs/cli.md."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = []

    def walk(group: click.Group, path: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{path} {name}")
                continue
            for param in command.params:
                if isinstance(param, click.Option):
                    longest = max(param.opts, key=len)
                    if longest not in text:
                        missing.append(f"{path} {name} {longest}")

    walk(cli, "garde")
    assert not missing, f"document these options in docs/cli.md: {missing}"


def test_the_complete_example_of_docs_catalog_is_valid() -> None:
    """The example a reader copies from docs/catalog.md loads without a problem."""
    from garde.catalog import parse_catalog

    text = (DOCS / "catalog.md").read_text(encoding="utf-8")
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    catalog = parse_catalog(example, "docs/catalog.md", env={})
    assert catalog.name == "tiny"
    assert set(catalog.services) == {"sts", "rx"}


def test_every_catalog_field_is_documented() -> None:
    """A catalog setting missing from docs/catalog.md fails the build."""
    from pydantic import BaseModel

    from garde.catalog import model

    text = (DOCS / "catalog.md").read_text(encoding="utf-8")
    missing = []
    for name in dir(model):
        cls = getattr(model, name)
        if (
            isinstance(cls, type)
            and issubclass(cls, BaseModel)
            and cls.__module__ == model.__name__
        ):
            for field_name, info in cls.model_fields.items():
                key = info.alias or field_name
                if key not in ("id", "class_") and f"`{key}`" not in text:
                    missing.append(f"{cls.__name__}.{key}")
    assert not missing, f"document these catalog fields in docs/catalog.md: {missing}"
