"""Load a catalog from YAML and report every problem with its file, line and a fix.

Loading happens in three passes, each collecting all of its problems before giving up:
1. YAML syntax, duplicate keys and ``${ENV}`` expansion, walking the node tree so that every
   value keeps its line and column;
2. the schema (pydantic), whose error locations are mapped back to those lines;
3. references between parts (unknown services, operations, procedures, data centers),
   dependency cycles, overlapping path prefixes.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from garde.catalog.model import ID_PATTERN, OPERATION_ID_PATTERN, Catalog
from garde.errors import CatalogInvalid, CatalogSyntaxError, Problem, SettingsInvalid
from garde.settings import environment

BUILTIN = ("belgium", "belgium-production")
"""Catalogs shipped inside the package; ``belgium`` is the default (endpoints on the lab)."""

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Location = tuple[str, int, int]
Path_ = tuple[str | int, ...]


def load_catalog(source: str | Path | None = None, *, env: dict[str, str] | None = None) -> Catalog:
    """Load a catalog by built-in name (``belgium``) or file path; default ``belgium``.

    Raises ``CatalogSyntaxError`` or ``CatalogInvalid`` listing every problem found.
    """
    name, text = _read(source)
    return parse_catalog(text, name, env=environment() if env is None else env)


def _read(source: str | Path | None, relative_to: str | None = None) -> tuple[str, str]:
    if source is None or (isinstance(source, str) and source in BUILTIN):
        builtin = source or "belgium"
        path = resources.files("garde.catalog") / "catalogs" / f"{builtin}.yaml"
        return f"{builtin}.yaml", path.read_text(encoding="utf-8")
    path = Path(source)
    if relative_to is not None and not path.is_absolute():
        path = Path(relative_to).parent / path
    try:
        return str(path), path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f"give a path to a YAML file or a built-in catalog: {', '.join(BUILTIN)}"
        raise CatalogSyntaxError(
            [Problem(str(path), None, None, "", "file not found", hint)]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogSyntaxError(
            [Problem(str(path), None, None, "", f"cannot read: {exc}", "")]
        ) from None


def parse_catalog(text: str, file: str = "<catalog>", *, env: Any = None) -> Catalog:
    """Parse catalog YAML ``text``; ``file`` names it in error messages."""
    reader = NodeReader(file, environment() if env is None else env)
    data = _compose(text, file, reader, depth=0)
    problems = list(reader.problems)
    catalog: Catalog | None = None
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        problems.extend(_schema_problems(exc, reader))
    if catalog is None:
        problems.extend(_reference_problems_raw(data, reader))
    else:
        problems.extend(_reference_problems(catalog, reader))
    if problems:
        problems.sort(key=lambda p: (p.file != file, p.file, p.line or 0, p.column or 0))
        raise CatalogInvalid(_unique(problems))
    assert catalog is not None
    return catalog


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML has it (several times faster: every ``garde`` start reads the
catalog), the pure-Python one otherwise; both give nodes with their line and column."""


def _compose(text: str, file: str, reader: NodeReader, depth: int) -> dict[str, Any]:
    """Plain data from YAML ``text``, with ``extends:`` resolved (the base, then overrides)."""
    root = compose_mapping(
        text, file, expected="a catalog is a YAML mapping", hint="start from docs/catalog.md"
    )
    if not isinstance(root, yaml.MappingNode):
        raise CatalogSyntaxError([root] if isinstance(root, Problem) else [])
    reader.file = file
    data: dict[str, Any] = reader.value(root, ())
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if depth >= 5 or not isinstance(base_name, str):
        raise CatalogSyntaxError(
            [reader.problem(("extends",), "extends names one catalog, at most 5 levels deep")]
        )
    base_file, base_text = _read(base_name, relative_to=file)
    overrides = reader.where, reader.key_where
    reader.where, reader.key_where = {}, {}
    base = _compose(base_text, base_file, reader, depth + 1)
    reader.where.update(overrides[0])
    reader.key_where.update(overrides[1])
    reader.file = file
    return _merge(base, data)


def compose_mapping(
    text: str, file: str, *, expected: str, hint: str, empty_ok: bool = False
) -> yaml.MappingNode | Problem | None:
    """The YAML node tree of ``text`` when it is a mapping, else the problem, located; None
    for a file without a document (only comments, or nothing) when ``empty_ok``.

    Shared by every YAML file garde reads (the catalog, the monitor's probe settings), so that
    all of them report syntax errors the same way.
    """
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = f"YAML syntax error: {exc.problem or exc}"
        fix = "check indentation, a missing ':' or an unclosed quote near this line"
        lines = text.splitlines()
        if mark is not None and mark.line < len(lines) and "\t" in lines[mark.line]:
            # The most common one, and invisible in most editors: say it.
            fix = "YAML indents with spaces, never tabs: replace the tab on this line with spaces"
        return Problem(file, line, col, "", message, fix)
    if root is None and empty_ok:
        return None
    if root is None or not isinstance(root, yaml.MappingNode):
        return Problem(file, 1, 1, "", expected, hint)
    return root


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``override`` replaces; ``null`` removes."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class NodeReader:
    """Turns YAML nodes into plain data, remembering where each value came from.

    With ``env`` (a mapping), ``${NAME}`` and ``${NAME:-default}`` in strings are expanded;
    with ``None`` strings are kept as written.
    """

    def __init__(self, file: str, env: Any | None) -> None:
        self.file = file
        self.env = env
        self.where: dict[Path_, Location] = {}
        self.key_where: dict[Path_, Location] = {}
        self.problems: list[Problem] = []
        # One constructor for every scalar: it resolves YAML's tags (ints, bools, dates).
        self._scalars = yaml.SafeLoader("")

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.where[path] = (self.file, node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(self._scalars.construct_object(key_node))
                if key in out:
                    first = self.key_where[(*path, key)]
                    self.problems.append(
                        self.problem(
                            (*path, key),
                            f"duplicate key {key!r} (first defined on line {first[1]})",
                            "ids must be unique: rename or merge the two entries",
                            at=(
                                self.file,
                                key_node.start_mark.line + 1,
                                key_node.start_mark.column + 1,
                            ),
                        )
                    )
                    continue
                self.key_where[(*path, key)] = (
                    self.file,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.value(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        scalar = self._scalars.construct_object(node)
        if isinstance(scalar, str) and self.env is not None and "${" in scalar:
            return self._expand(scalar, path)
        return scalar

    def _expand(self, text: str, path: Path_) -> str:
        env = self.env or {}

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return str(env[name])
            if default is not None:
                return default
            self.problems.append(
                self.problem(
                    path,
                    f"environment variable {name} is not set",
                    f"export {name}=... or write ${{{name}:-default}}",
                )
            )
            return match.group(0)

        return _ENV.sub(replace, text)

    def locate(self, path: Path_) -> Location | None:
        # The longest known prefix: pydantic may point below what YAML had (a missing field).
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.key_where and end == len(path):
                return self.key_where[prefix]
            if prefix in self.where:
                return self.where[prefix]
        return None

    def problem(
        self, path: Path_, message: str, hint: str = "", at: Location | None = None
    ) -> Problem:
        found = at or self.locate(path)
        if found is None:
            return Problem(self.file, None, None, _dotted(path), message, hint)
        return Problem(found[0], found[1], found[2], _dotted(path), message, hint)


def _dotted(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_problems(exc: ValidationError, reader: NodeReader) -> list[Problem]:
    return schema_problems(
        exc, reader, allowed=_allowed_fields, docs="docs/catalog.md", skip=_is_union_tag
    )


def schema_problems(
    exc: ValidationError,
    reader: NodeReader,
    *,
    allowed: Callable[[Path_], list[str]],
    docs: str,
    skip: Callable[[str | int], bool] = lambda part: False,
) -> list[Problem]:
    """Pydantic's errors as problems located in the YAML: unknown keys with a "did you mean"
    (``allowed`` lists the keys valid under a location), missing keys, wrong types.

    ``skip`` drops the parts of pydantic's locations that are not in the file (union tags).
    """
    problems = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not skip(p))
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            known = allowed(loc[:-1])
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(known)}"
            problems.append(reader.problem(loc, f"unknown key {key!r}", hint))
        elif kind == "missing":
            problems.append(
                reader.problem(
                    loc, f"missing required key {loc[-1]!r}", f"add it ({docs} shows every field)"
                )
            )
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(reader.problem(loc, f"{message}{shown}", _hint_for(kind, docs)))
    return problems


def _is_union_tag(part: str | int) -> bool:
    return part in ("online", "deferrable", "async", "cacheable") or (
        isinstance(part, str) and part.startswith("function-")
    )


def _hint_for(kind: str, docs: str) -> str:
    if kind.startswith(("float", "int")):
        return "write a number"
    if kind.startswith("bool"):
        return "write true or false"
    if kind in ("literal_error", "enum"):
        return "use one of the values listed"
    if kind == "union_tag_invalid":
        return "class is one of online, deferrable, async, cacheable"
    if kind == "value_error":
        return f"see {docs} for the format"
    if kind == "string_type":
        return "quote it: YAML reads unquoted digits, true/false and dates as other types"
    if kind.startswith("dict"):
        return "write a mapping (key: value lines)"
    if kind.startswith("list"):
        return "write a list (lines starting with '- ')"
    return ""


def _allowed_fields(loc: Path_) -> list[str]:
    from garde.catalog import model

    depth_models: dict[int, type[model._Model]] = {
        0: model.Catalog,
        2: model.Service,
        4: model.Operation,
    }
    section = loc[0] if loc else None
    table: dict[str | None, dict[int, type[model._Model]]] = {
        None: {0: model.Catalog},
        "data_centers": {2: model.DataCenter},
        "services": depth_models,
        "procedures": {2: model.Procedure, 3: model.Texts},
        "target_groups": {2: model.TargetGroup, 3: model.Texts, 4: model.CriticalOperation},
        "token_service": {1: model.TokenService},
    }
    chosen = table.get(str(section) if section is not None else None, {}).get(len(loc))
    if section == "services" and len(loc) >= 3 and isinstance(loc[-1], str):
        nested: dict[str, type[model._Model]] = {
            "probe": model.Probe,
            "match": model.Match,
            "idempotency_key": model.KeyRule,
            "ordering_key": model.KeyRule,
            "cache_key": model.KeyRule,
        }
        chosen = nested.get(loc[-1], chosen)
        if loc[-1] == "continuity":
            return ["class", "deadline", "max_stale", "per_caller"]
    if chosen is None:
        return []
    return sorted((f.alias or n) for n, f in chosen.model_fields.items() if n != "id")


def _reference_problems(catalog: Catalog, reader: NodeReader) -> list[Problem]:
    problems: list[Problem] = []
    dcs = set(catalog.data_centers)
    for sid, service in catalog.services.items():
        base: Path_ = ("services", sid)
        if not re.match(ID_PATTERN, sid):
            problems.append(
                reader.problem(base, f"service id {sid!r} is not valid", "use lower-case-dashes")
            )
        for dc in service.endpoints:
            if dc not in dcs:
                problems.append(
                    unknown_name(reader, (*base, "endpoints", dc), "data center", dc, dcs)
                )
        for i, dep in enumerate(service.depends_on):
            if dep not in catalog.services:
                problems.append(
                    unknown_name(reader, (*base, "depends_on", i), "service", dep, catalog.services)
                )
        if service.probe.operation and service.probe.operation not in service.operations:
            problems.append(
                unknown_name(
                    reader,
                    (*base, "probe", "operation"),
                    f"operation of {sid}",
                    service.probe.operation,
                    service.operations,
                )
            )
        for oid, operation in service.operations.items():
            if not re.match(OPERATION_ID_PATTERN, oid):
                problems.append(
                    reader.problem((*base, "operations", oid), f"operation id {oid!r} is invalid")
                )
            if service.protocol == "rest" and not (operation.match.method and operation.match.path):
                problems.append(
                    reader.problem(
                        (*base, "operations", oid, "match"),
                        "a REST operation needs match.method and match.path",
                        "e.g. match: {method: GET, path: /members/{niss}}",
                    )
                )
            if service.protocol == "soap" and service.body_element_of(operation) is None:
                problems.append(
                    reader.problem(
                        (*base, "operations", oid),
                        "cannot recognise this SOAP operation on the wire",
                        "give the service a namespace or the operation a match.body_element",
                    )
                )
    problems.extend(_cycle_problems(catalog, reader))
    problems.extend(_prefix_problems(catalog, reader))
    for gid, group in catalog.target_groups.items():
        for i, critical in enumerate(group.critical):
            path: Path_ = ("target_groups", gid, "critical", i)
            if critical.service not in catalog.services:
                problems.append(
                    unknown_name(
                        reader, (*path, "operation"), "service", critical.service, catalog.services
                    )
                )
            elif critical.operation_id not in catalog.services[critical.service].operations:
                problems.append(
                    unknown_name(
                        reader,
                        (*path, "operation"),
                        f"operation of {critical.service}",
                        critical.operation_id,
                        catalog.services[critical.service].operations,
                    )
                )
            if critical.procedure is not None and critical.procedure not in catalog.procedures:
                problems.append(
                    unknown_name(
                        reader,
                        (*path, "procedure"),
                        "procedure",
                        critical.procedure,
                        catalog.procedures,
                    )
                )
    if catalog.token_service is not None:
        ts = catalog.token_service
        if ts.service not in catalog.services:
            problems.append(
                unknown_name(
                    reader, ("token_service", "service"), "service", ts.service, catalog.services
                )
            )
        elif ts.operation not in catalog.services[ts.service].operations:
            problems.append(
                unknown_name(
                    reader,
                    ("token_service", "operation"),
                    f"operation of {ts.service}",
                    ts.operation,
                    catalog.services[ts.service].operations,
                )
            )
    return problems


def _reference_problems_raw(data: Any, reader: NodeReader) -> list[Problem]:
    """Reference checks that still make sense when the schema failed: cycles, unknown deps.

    So that one run reports a typo, a wrong type, an unknown reference and a cycle together.
    """
    problems: list[Problem] = []
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return problems
    graph: dict[str, list[str]] = {}
    for sid, service in services.items():
        deps = service.get("depends_on", []) if isinstance(service, dict) else []
        if not isinstance(deps, list):
            continue
        graph[sid] = [d for d in deps if isinstance(d, str)]
        for i, dep in enumerate(deps):
            if isinstance(dep, str) and dep not in services:
                problems.append(
                    unknown_name(
                        reader, ("services", sid, "depends_on", i), "service", dep, services
                    )
                )
    problems.extend(_cycles(graph, reader))
    groups = data.get("target_groups")
    procedures = data.get("procedures") if isinstance(data.get("procedures"), dict) else {}
    if isinstance(groups, dict):
        for gid, group in groups.items():
            critical = group.get("critical") if isinstance(group, dict) else None
            for i, item in enumerate(critical if isinstance(critical, list) else []):
                if not isinstance(item, dict):
                    continue
                ref = item.get("operation")
                if isinstance(ref, str) and "." in ref:
                    sid, oid = ref.split(".", 1)
                    service = services.get(sid)
                    ops = service.get("operations") if isinstance(service, dict) else None
                    if service is None:
                        problems.append(
                            unknown_name(
                                reader,
                                ("target_groups", gid, "critical", i, "operation"),
                                "service",
                                sid,
                                services,
                            )
                        )
                    elif isinstance(ops, dict) and oid not in ops:
                        problems.append(
                            unknown_name(
                                reader,
                                ("target_groups", gid, "critical", i, "operation"),
                                f"operation of {sid}",
                                oid,
                                ops,
                            )
                        )
                proc = item.get("procedure")
                if isinstance(proc, str) and proc not in procedures:
                    problems.append(
                        unknown_name(
                            reader,
                            ("target_groups", gid, "critical", i, "procedure"),
                            "procedure",
                            proc,
                            procedures,
                        )
                    )
    return problems


M = TypeVar("M", bound=BaseModel)


@dataclass
class SettingsRead(Generic[M]):
    """A settings file read and checked against its schema, the problems kept for the caller
    to add its own checks to (it reports them all at once)."""

    data: dict[str, Any]
    """The file as plain data: the caller's cross-checks read it even where the schema failed."""
    model: M | None
    """The validated settings; None when the schema found problems."""
    problems: list[Problem]
    reader: NodeReader


def read_settings(
    text: str,
    file: str,
    model: type[M],
    *,
    subject: str,
    expected: str,
    hint: str,
    docs: str,
    allowed: Callable[[Path_], list[str]],
    empty_ok: bool = False,
) -> SettingsRead[M]:
    """Read a YAML settings file the way every garde file is read: syntax errors located,
    then ``model``'s errors as located problems with "did you mean". ``SettingsInvalid``
    (for ``subject``) only when the file is not a mapping at all."""
    root = compose_mapping(text, file, expected=expected, hint=hint, empty_ok=empty_ok)
    if isinstance(root, Problem):
        raise SettingsInvalid(subject, [root])
    reader = NodeReader(file, None)
    data: dict[str, Any] = {} if root is None else reader.value(root, ())
    problems = list(reader.problems)
    found: M | None = None
    try:
        found = model.model_validate(data)
    except ValidationError as exc:
        located = schema_problems(exc, reader, allowed=allowed, docs=docs)
        # One problem per error, in order: each gets what its setting is for (the field's
        # help), so that the fix names the setting's purpose as well as the expected form.
        for error, problem in zip(exc.errors(), located, strict=True):
            meaning = "" if error["type"] == "extra_forbidden" else _field_help(model, error["loc"])
            if meaning:
                problem = replace(
                    problem, hint=f"{meaning}; {problem.hint}" if problem.hint else meaning
                )
            problems.append(problem)
    return SettingsRead(data, found, problems, reader)


def _field_help(model: type[BaseModel], loc: Iterable[str | int]) -> str:
    """The help of the setting at pydantic's location ``loc`` in ``model`` (through nested
    models, mappings and lists), or "" where it has none."""
    current: type[BaseModel] | None = model
    meaning = ""
    for part in loc:
        if current is not None and isinstance(part, str) and part in current.model_fields:
            field = current.model_fields[part]
            meaning = field.description or ""
            current = _inner_model(field.annotation)
    return meaning


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def unknown_name(
    reader: NodeReader, path: Path_, what: str, name: str, known: Iterable[str]
) -> Problem:
    """``unknown service 'insurabilty'`` at ``path``, with the closest known name as a hint."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
    return reader.problem(path, f"unknown {what} {name!r}", hint)


def _cycle_problems(catalog: Catalog, reader: NodeReader) -> list[Problem]:
    graph = {sid: list(s.depends_on) for sid, s in catalog.services.items()}
    return _cycles(graph, reader)


def _cycles(graph: dict[str, list[str]], reader: NodeReader) -> list[Problem]:
    problems: list[Problem] = []
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = [*trail[trail.index(dep) :], dep]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    index = graph[node].index(dep)
                    problems.append(
                        reader.problem(
                            ("services", node, "depends_on", index),
                            f"dependency cycle: {' -> '.join(cycle)}",
                            "a service cannot depend on itself, even through others: "
                            "remove one of these depends_on entries",
                        )
                    )
            elif state.get(dep) is None:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    return problems


def _prefix_problems(catalog: Catalog, reader: NodeReader) -> list[Problem]:
    problems = []
    prefixes = sorted((s.path_prefix.rstrip("/") + "/", sid) for sid, s in catalog.services.items())
    for (a, sid_a), (b, sid_b) in itertools.pairwise(prefixes):
        if b.startswith(a):
            problems.append(
                reader.problem(
                    ("services", sid_b, "path_prefix"),
                    f"path_prefix overlaps with service {sid_a!r} ({a.rstrip('/')})",
                    "each service needs its own path prefix so the gateway can route",
                )
            )
    return problems


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            out.append(problem)
    return out
