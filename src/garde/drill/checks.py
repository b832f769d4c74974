"""A scenario checked against its catalog and the lab: names exist, windows fit, options fit.

Every check reads the raw data (plain dicts and lists, as the YAML had them), so that it runs
even where the schema failed elsewhere in the file: a wrong type in one entry does not hide an
unknown service in the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from garde.catalog import (
    BUILTIN,
    Catalog,
    Continuity,
    NodeReader,
    Path_,
    format_duration,
    load_catalog,
    parse_duration,
    unknown_name,
)
from garde.drill.scenario import KINDS, LAB_KINDS, FaultEntry
from garde.errors import CatalogError, Problem, UsageError
from garde.lab import OPTIONS, FaultKind, make_fault

COMMON = ("at", "for", "kind", "note")
"""Keys every timeline entry may have."""
TARGET = ("service", "dc")
PROCESS_KEYS = {"kill_gateway": ("site", "gateway"), "kill_monitor": ()}
REQUIRED = {"latency": ("latency",), "slow": ("bandwidth",)}
SCENARIO_CLOCK = ("period",)
"""Options that are on the scenario's clock (compressed by ``time_scale``); the others are
real time, because a request really waits that long."""
MIN_REAL = 0.1
"""The shortest fault window, in real seconds, that the lab and the runner can play."""


def catalog_for(
    data: dict[str, Any], file: str, reader: NodeReader
) -> tuple[Catalog | None, list[Problem]]:
    """The scenario's catalog (a built-in name, or a path relative to the scenario file)."""
    source = data.get("catalog", "belgium")
    if not isinstance(source, str) or not source:
        return None, []  # the schema reports it
    if source not in BUILTIN and not Path(source).is_absolute():
        source = str(Path(file).parent / source)
    try:
        return load_catalog(source, env={}), []
    except CatalogError as exc:
        head = reader.problem(
            ("catalog",),
            f"the catalog {data.get('catalog', 'belgium')!r} cannot be used"
            f" ({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''})",
            f"name a built-in ({', '.join(BUILTIN)}) or a catalog file, relative to this"
            " scenario; garde catalog check FILE shows its problems",
        )
        return None, [head, *exc.problems]


def cross_check(data: dict[str, Any], catalog: Catalog, reader: NodeReader) -> list[Problem]:
    duration = _seconds(data.get("duration"))
    scale = data.get("time_scale", 1)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale <= 0:
        scale = None
    sites = _sites(data.get("sites"), catalog, reader)
    problems = sites.problems
    problems.extend(_timeline(data.get("timeline"), catalog, reader, duration, scale, sites))
    problems.extend(_expectations(data.get("expect"), catalog, reader))
    problems.extend(_services(data, catalog, reader))
    return problems


def _services(data: dict[str, Any], catalog: Catalog, reader: NodeReader) -> list[Problem]:
    raw = data.get("services")
    services = raw if isinstance(raw, dict) else {}
    problems = [
        unknown_name(reader, ("services", name), "service", str(name), catalog.services)
        for name in services
        if name not in catalog.services
    ]
    expect = data.get("expect")
    limited = [s for s in services.values() if isinstance(s, dict) and "capacity" in s]
    if isinstance(expect, dict) and "peak_load" in expect and not limited:
        problems.append(
            reader.problem(
                ("expect", "peak_load"),
                "peak_load judges services against their capacity, and no service has one",
                "give a service one: services: {recipe-executor: {capacity: 40}}",
            )
        )
    return problems


class _Sites:
    def __init__(self) -> None:
        self.gateways: dict[str, int] = {}
        self.problems: list[Problem] = []


def _sites(raw: Any, catalog: Catalog, reader: NodeReader) -> _Sites:
    found = _Sites()
    for i, site in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(site, dict):
            continue
        path: Path_ = ("sites", i)
        name = site.get("name")
        if isinstance(name, str):
            if name in found.gateways:
                found.problems.append(
                    reader.problem(
                        (*path, "name"),
                        f"a second site named {name!r}",
                        "give each site its own name (copies: N makes N alike)",
                    )
                )
            gateways = site.get("gateways", 1)
            found.gateways[name] = gateways if isinstance(gateways, int) else 1
        group = site.get("target_group")
        if isinstance(group, str) and group not in catalog.target_groups:
            found.problems.append(
                unknown_name(
                    reader, (*path, "target_group"), "target group", group, catalog.target_groups
                )
            )
        gateways = site.get("gateways", 1)
        if site.get("journal", "sqlite") == "sqlite" and isinstance(gateways, int) and gateways > 1:
            found.problems.append(
                reader.problem(
                    (*path, "gateways"),
                    f"{gateways} gateways cannot share one SQLite journal (one file, one writer)",
                    "write journal: postgres for gateways sharing a journal, or copies:"
                    f" {gateways} for that many sites of one gateway each",
                )
            )
        workload = site.get("workload")
        mix = workload.get("mix") if isinstance(workload, dict) else None
        for key in mix if isinstance(mix, dict) else {}:
            found.problems.extend(
                _operation(str(key), (*path, "workload", "mix", key), catalog, reader)
            )
    return found


def _operation(ref: str, path: Path_, catalog: Catalog, reader: NodeReader) -> list[Problem]:
    sid, dot, oid = ref.partition(".")
    if not dot:
        return [
            reader.problem(
                path,
                f"{ref!r} is not service.operation",
                "e.g. recipe-executor.markAsDelivered (garde catalog check lists them)",
            )
        ]
    service = catalog.services.get(sid)
    if service is None:
        return [unknown_name(reader, path, "service", sid, catalog.services)]
    if oid not in service.operations:
        return [unknown_name(reader, path, f"operation of {sid}", oid, service.operations)]
    return []


def _timeline(
    raw: Any,
    catalog: Catalog,
    reader: NodeReader,
    duration: float | None,
    scale: float | None,
    sites: _Sites,
) -> list[Problem]:
    problems: list[Problem] = []
    windows: list[tuple[int, str, set[tuple[str, str]], float, float]] = []
    for i, entry in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(entry, dict):
            continue
        path: Path_ = ("timeline", i)
        kind = entry.get("kind")
        if not isinstance(kind, str):
            continue  # the schema reports it
        if kind not in KINDS:
            problems.append(unknown_name(reader, (*path, "kind"), "fault kind", kind, KINDS))
            continue
        at, length = _seconds(entry.get("at")), _seconds(entry.get("for"))
        problems.extend(_window(entry, path, reader, duration, scale, at, length))
        allowed = _keys(kind)
        for key in entry:
            if key not in allowed and key in _all_keys():
                problems.append(
                    reader.problem(
                        (*path, key),
                        f"{kind} does not take {key}",
                        f"{kind} takes: {', '.join(allowed)}",
                    )
                )
        for key in REQUIRED.get(kind, ()):
            if key not in entry:
                problems.append(
                    reader.problem(
                        (*path, "kind"),
                        f"{kind} needs {key}",
                        "e.g. latency: 2s" if key == "latency" else "e.g. bandwidth: 2000",
                    )
                )
        if kind in LAB_KINDS:
            targets, found = _targets(entry, path, catalog, reader)
            problems.extend(found)
            if not found and _well_typed(entry) and all(k in entry for k in REQUIRED.get(kind, ())):
                problems.extend(_lab_accepts(entry, path, kind, reader, scale))
            if targets and at is not None and duration is not None:
                end = at + (length if length is not None else max(duration - at, 0))
                for j, other_kind, other, start, stop in windows:
                    if other_kind == kind and other & targets and at < stop and start < end:
                        problems.append(
                            reader.problem(
                                (*path, "at"),
                                f"overlaps timeline[{j}]: the same {kind} fault on"
                                f" {_names(other & targets)}",
                                "the lab holds one fault of a kind per data center: start this"
                                " one after the other ends, or merge them",
                            )
                        )
                        break
                windows.append((i, kind, targets, at, end))
        elif kind == "kill_gateway":
            problems.extend(_kill_gateway(entry, path, reader, sites))
    return problems


def _keys(kind: str) -> tuple[str, ...]:
    if kind in LAB_KINDS:
        return (*COMMON, *TARGET, *OPTIONS[FaultKind(kind)])
    return (*COMMON, *PROCESS_KEYS[kind])


def _all_keys() -> set[str]:
    keys = {*COMMON, *TARGET, "site", "gateway"}
    for options in OPTIONS.values():
        keys.update(options)
    return keys


def _window(
    entry: dict[str, Any],
    path: Path_,
    reader: NodeReader,
    duration: float | None,
    scale: float | None,
    at: float | None,
    length: float | None,
) -> list[Problem]:
    if duration is None or at is None:
        return []
    shown = format_duration(duration)
    if at >= duration:
        return [
            reader.problem(
                (*path, "at"),
                f"starts at {format_duration(at)}, after the scenario ends ({shown})",
                "move it into the scenario, or lengthen duration",
            )
        ]
    if length is not None and at + length > duration:
        return [
            reader.problem(
                (*path, "for"),
                f"ends at {format_duration(at + length)}, after the scenario ends ({shown})",
                f"shorten it to at most {format_duration(duration - at)}, or lengthen duration",
            )
        ]
    lab = entry.get("kind") in LAB_KINDS
    if lab and length is not None and scale is not None and length / scale < MIN_REAL:
        return [
            reader.problem(
                (*path, "for"),
                f"lasts {format_duration(length / scale)} of real time at time_scale {scale:g}",
                f"a fault must last at least {format_duration(MIN_REAL)} of real time:"
                " lengthen it or lower time_scale",
            )
        ]
    return []


def _targets(
    entry: dict[str, Any], path: Path_, catalog: Catalog, reader: NodeReader
) -> tuple[set[tuple[str, str]], list[Problem]]:
    """The (service, data center) pairs a lab fault hits, with ``all`` expanded."""
    service, dc = entry.get("service"), entry.get("dc")
    problems: list[Problem] = []
    for key, value in (("service", service), ("dc", dc)):
        if value is None:
            problems.append(
                reader.problem(
                    (*path, key), f"missing required key {key!r}", f"name one, or write {key}: all"
                )
            )
    if not (isinstance(service, str) and isinstance(dc, str)):
        return set(), problems
    if service == "all":
        services = list(catalog.services.values())
        if dc != "all" and dc not in catalog.data_centers:
            problems.append(
                unknown_name(reader, (*path, "dc"), "data center", dc, catalog.data_centers)
            )
    elif service not in catalog.services:
        known = [*catalog.services, "all"]
        return set(), [unknown_name(reader, (*path, "service"), "service", service, known)]
    else:
        services = [catalog.services[service]]
        if dc != "all" and dc not in services[0].endpoints:
            problems.append(
                unknown_name(
                    reader,
                    (*path, "dc"),
                    f"data center of {service}",
                    dc,
                    [*services[0].endpoints, "all"],
                )
            )
    targets = {(s.id, d) for s in services for d in s.endpoints if dc in ("all", d)}
    return targets, problems


def _well_typed(entry: dict[str, Any]) -> bool:
    """Whether the entry passes the schema; if not, the schema has said what is wrong."""
    try:
        FaultEntry.model_validate(entry)
    except ValidationError:
        return False
    return True


def _lab_accepts(
    entry: dict[str, Any], path: Path_, kind: str, reader: NodeReader, scale: float | None
) -> list[Problem]:
    """The lab's own validation of the options, as the runner will send them (real time)."""
    options: dict[str, Any] = {}
    for name in OPTIONS[FaultKind(kind)]:
        if name not in entry:
            continue
        value = entry[name]
        if name in ("latency", "jitter", "period"):
            seconds = _seconds(value)
            if seconds is None:
                return []  # the schema reports it
            value = seconds / scale if name in SCENARIO_CLOCK and scale else seconds
        options[name] = value
    try:
        make_fault(kind, options)
    except UsageError as exc:
        where = next((n for n in OPTIONS[FaultKind(kind)] if n in str(exc) and n in entry), "kind")
        message, hint = str(exc), ""
        if where == "period" and scale:
            message = (
                f"{message}: period {format_duration(_seconds(entry['period']) or 0)} is"
                f" {format_duration(options['period'])} of real time at time_scale {scale:g}"
            )
            hint = "period is on the scenario's clock: lengthen it or lower time_scale"
        return [reader.problem((*path, where), message, hint)]
    return []


def _kill_gateway(
    entry: dict[str, Any], path: Path_, reader: NodeReader, sites: _Sites
) -> list[Problem]:
    site = entry.get("site")
    if site is None:
        return [reader.problem((*path, "kind"), "kill_gateway needs site", "e.g. site: pharmacy")]
    if not isinstance(site, str):
        return []
    if site not in sites.gateways:
        return [unknown_name(reader, (*path, "site"), "site", site, sites.gateways)]
    number = entry.get("gateway", 1)
    if isinstance(number, int) and number > sites.gateways[site]:
        return [
            reader.problem(
                (*path, "gateway"),
                f"site {site!r} has {sites.gateways[site]} gateway(s), not {number}",
                "gateways are numbered from 1",
            )
        ]
    return []


def _expectations(raw: Any, catalog: Catalog, reader: NodeReader) -> list[Problem]:
    if not isinstance(raw, dict):
        return []
    problems: list[Problem] = []
    refused = raw.get("refused")
    for key in refused if isinstance(refused, dict) else {}:
        path: Path_ = ("expect", "refused", key)
        found = _operation(str(key), path, catalog, reader)
        problems.extend(found)
        if found:
            continue
        sid, _, oid = str(key).partition(".")
        policy = catalog.services[sid].operations[oid].continuity
        cls = policy.class_ if policy is not None else Continuity.ONLINE
        if cls not in (Continuity.ONLINE, Continuity.CACHEABLE):
            problems.append(
                reader.problem(
                    path,
                    f"{key} is {cls.value}: garde journals it, it is never refused while its"
                    " deadline holds",
                    "refused applies to online and cacheable operations; rpo covers the writes",
                )
            )
    rto = raw.get("rto")
    if isinstance(rto, dict):
        for key, known, what in (
            ("services", catalog.services, "service"),
            ("target_groups", catalog.target_groups, "target group"),
        ):
            names = rto.get(key)
            for name in names if isinstance(names, dict) else {}:
                if name not in known:
                    problems.append(
                        unknown_name(reader, ("expect", "rto", key, name), what, str(name), known)
                    )
    return problems


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


def _names(targets: set[tuple[str, str]]) -> str:
    shown = sorted(f"{s}@{d}" for s, d in targets)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
