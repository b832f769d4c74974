"""Settings as data: the one read of the process's environment, the one ``env:NAME`` secret
resolver, and the one loader that merges a part's settings from the command line, the
environment and a settings file.

Each part declares its settings once, as a pydantic model whose fields are the table
(name, type, default, help, environment variable): ``setting(help=..., env="GARDE_...")``.
``load_settings`` takes, for each field, the first of these that gives a value:

1. the command line (``--flag``);
2. the environment (the field's variable, when set and not empty);
3. the settings file (values its reader already checked, with their file and line);
4. the default.

Every bad value is reported at once, each naming where it came from (``--rate``,
``GARDE_REPLAY_RATE``, ``gateway.yaml:4``), as one ``SettingsInvalid``: the command line
prints it and exits 1. No other module reads ``os.environ`` for garde's own variables
(``tests/test_settings_env.py`` keeps it so); they take the mapping ``environment()`` gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

from garde.errors import Problem, SettingsInvalid, UsageError

if TYPE_CHECKING:
    from garde.catalog import NodeReader, Path_

M = TypeVar("M", bound=BaseModel)

SECRET_PREFIX = "env:"  # noqa: S105 (a prefix, not a secret)
"""A value written ``env:NAME`` in a settings file is the environment variable NAME's value."""

SUBJECT = "the configuration"
"""The subject of a report about environment variables and command-line options."""


def environment() -> Mapping[str, str]:
    """The process's environment: the only place garde reads it. Everything below it takes
    the mapping as an argument, so tests (and library callers) hand in their own."""
    return os.environ


def setting(
    default: Any = None,
    *,
    help: str,
    env: str | None = None,
    secret: bool = False,
    **constraints: Any,
) -> Any:
    """One row of a part's table of settings: ``field: type = setting(help=..., env=...)``.

    ``secret`` settings are never echoed in a message (their value is a key or a password).
    """
    extra: dict[str, Any] = {}
    if env is not None:
        extra["env"] = env
    if secret:
        extra["secret"] = True
    return Field(default, description=help, json_schema_extra=extra or None, **constraints)


def env_name(field: FieldInfo) -> str | None:
    """The environment variable of a row of the table, if it has one."""
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        name = extra.get("env")
        return name if isinstance(name, str) else None
    return None


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") is True


def env_table(*models: type[BaseModel]) -> dict[str, tuple[type[BaseModel], str]]:
    """Every environment variable the ``models`` read: ``{variable: (model, field)}``."""
    found: dict[str, tuple[type[BaseModel], str]] = {}
    for model in models:
        for name, field in model.model_fields.items():
            variable = env_name(field)
            if variable is not None:
                found[variable] = (model, name)
    return found


# ---------------------------------------------------------------------------------------
# ``env:NAME`` secrets


class SecretUnset(UsageError):
    """An ``env:NAME`` reference whose variable is unset or empty."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"environment variable {name} is unset or empty")


def is_secret_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


def resolve_secret(value: str, env: Mapping[str, str]) -> str:
    """``env:NAME`` is NAME's value (``SecretUnset`` if it is unset or empty); any other
    value is itself."""
    if not value.startswith(SECRET_PREFIX):
        return value
    name = value[len(SECRET_PREFIX) :]
    found = env.get(name)
    if not found:
        raise SecretUnset(name)
    return found


def resolve_secrets(
    data: Mapping[str, Any],
    where: Iterable[Path_],
    env: Mapping[str, str],
    reader: NodeReader,
    problems: list[Problem],
    *,
    when: str,
) -> dict[Path_, str]:
    """The ``env:NAME`` values at the locations ``where`` of a settings file's ``data``,
    resolved; each unset variable is a problem at its line. ``when`` ends the fix ("before
    starting the gateway")."""
    found: dict[Path_, str] = {}
    for path in where:
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if not is_secret_reference(value):
            continue
        try:
            found[path] = resolve_secret(value, env)
        except SecretUnset as exc:
            fix = f"export {exc.name}=... {when}, or write the value itself"
            problems.append(reader.problem(path, str(exc), fix))
    return found


# ---------------------------------------------------------------------------------------
# The loader


@dataclass(frozen=True, slots=True)
class Given:
    """A value given on the command line, and how a person names where (``--rate``)."""

    value: Any
    where: str


def load_settings(
    model: type[M],
    *,
    env: Mapping[str, str],
    given: Mapping[str, Given] | None = None,
    file: Mapping[str, Any] | None = None,
    subject: str = SUBJECT,
    docs: str = "",
) -> M:
    """``model`` from the command line (``given``), then the environment, then ``file``'s
    already-checked values, then the defaults; ``SettingsInvalid`` lists every bad value,
    each named by its flag or variable.

    Text from the environment or the command line becomes the field's type (``"32"`` an
    int, ``"2m"`` a duration through the field's validator): these tables are not strict,
    as the settings files are, because everything given there is text."""
    values: dict[str, Any] = dict(file or {})
    origin: dict[str, str] = {}
    for name, field in model.model_fields.items():
        variable = env_name(field)
        if variable is not None and env.get(variable):
            values[name] = env[variable]
            origin[name] = variable
    for name, item in (given or {}).items():
        if item.value is not None:
            values[name] = item.value
            origin[name] = item.where
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = _problems(model, exc, values, origin, subject, docs)
    raise SettingsInvalid(subject, problems)


def _problems(
    model: type[BaseModel],
    exc: ValidationError,
    values: Mapping[str, Any],
    origin: Mapping[str, str],
    subject: str,
    docs: str,
) -> list[Problem]:
    """Each error named by the flag or variable its value came from; an error about several
    settings (a model validator) by all that were given."""
    problems = []
    given = ", ".join(dict.fromkeys(origin.values())) or subject
    for error in exc.errors():
        loc = error["loc"]
        name = str(loc[0]) if loc else ""
        field = model.model_fields.get(name)
        message = _message(error)
        if field is None:
            where = given
        elif error["type"] == "missing":
            where = origin.get(name) or env_name(field) or name
            message = "missing: this setting is required"
        else:
            where = origin.get(name, name)
            shown = repr(values.get(name))
            if not is_secret(field) and shown not in message:
                message += f" (got {shown})"
        problems.append(Problem(where, None, None, "", message, _hint(field, docs)))
    return problems


def _message(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        return "not of the expected form"
    return str(error["msg"]).removeprefix("Value error, ")


def _hint(field: FieldInfo | None, docs: str) -> str:
    """What the setting is for, and where its row of the table is."""
    meaning = "" if field is None else (field.description or "")
    if docs:
        return f"{meaning}; see {docs}" if meaning else f"see {docs}"
    return meaning


def merge_problems(*loads: Any) -> list[Any]:
    """Run each of ``loads`` (callables), collecting the ``SettingsInvalid`` of all of them,
    so that one report lists every bad setting of several tables; the results in order."""
    results: list[Any] = []
    problems: list[Problem] = []
    subject = SUBJECT
    for load in loads:
        try:
            results.append(load())
        except SettingsInvalid as exc:
            problems.extend(exc.problems)
            results.append(None)
    if problems:
        raise SettingsInvalid(subject, problems)
    return results
