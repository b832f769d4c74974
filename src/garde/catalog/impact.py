"""If these services fail (in these data centers), who is stopped, and what do they do?

Pure functions of a catalog and a set of failures. Three rules carry the model:
- redundancy: a service still served by another data center is ``reduced_redundancy``; its
  callers fail over and carry on (``degraded``, never ``stopped``);
- dependencies: a service whose dependency is down is down too, whatever its own data centers
  say (the 27 January 2020 STS outage stopped everything);
- continuity: when a service is down, garde journals deferrable and async writes, serves
  cacheable reads stale, and refuses online operations with the group's procedure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from garde.catalog.model import Catalog, Continuity, Level, Operation
from garde.errors import UsageError


class ServiceState(StrEnum):
    AVAILABLE = "available"
    REDUCED_REDUNDANCY = "reduced_redundancy"
    DOWN = "down"


class Action(StrEnum):
    """What garde does for an operation of an affected service."""

    FAILOVER = "failover"
    JOURNAL = "journal"
    STALE_READ = "stale_read"
    REFUSE = "refuse"


class Status(StrEnum):
    UNAFFECTED = "unaffected"
    DEGRADED = "degraded"
    STOPPED = "stopped"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.UNAFFECTED: 0, Status.DEGRADED: 1, Status.STOPPED: 2}


@dataclass(frozen=True, slots=True)
class FailedService:
    """A service failing in one data center, or in all of them (``dc`` is None)."""

    service: str
    dc: str | None = None

    def __str__(self) -> str:
        return self.service if self.dc is None else f"{self.service}@{self.dc}"

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.service, self.dc or "")


def parse_failures(catalog: Catalog, texts: Iterable[str]) -> list[FailedService]:
    """``["sts", "recipe-prescriber@dc1"]`` -> failures; unknown names raise ``UsageError``."""
    failures = []
    for text in texts:
        service, _, dc = text.partition("@")
        if service not in catalog.services:
            known = ", ".join(sorted(catalog.services))
            raise UsageError(f"unknown service {service!r} in {text!r}; known services: {known}")
        endpoints = catalog.services[service].endpoints
        if dc and dc not in endpoints:
            raise UsageError(
                f"service {service!r} does not run in data center {dc!r};"
                f" it runs in: {', '.join(endpoints)}"
            )
        failures.append(FailedService(service, dc or None))
    return failures


@dataclass(frozen=True, slots=True)
class ServiceView:
    state: ServiceState
    dcs_left: tuple[str, ...]
    impacted_by: tuple[str, ...] = ()
    """Services whose failure makes this one down (itself when it fails on its own)."""


def service_states(catalog: Catalog, failures: Iterable[FailedService]) -> dict[str, ServiceView]:
    failed_dcs: dict[str, set[str]] = {}
    for failure in failures:
        dcs = catalog.services[failure.service].endpoints
        failed_dcs.setdefault(failure.service, set()).update(
            dcs if failure.dc is None else {failure.dc}
        )
    views: dict[str, ServiceView] = {}

    def view(sid: str) -> ServiceView:
        if sid in views:
            return views[sid]
        service = catalog.services[sid]
        left = tuple(dc for dc in service.endpoints if dc not in failed_dcs.get(sid, set()))
        causes: list[str] = [] if left else [sid]
        for dep in service.depends_on:
            dep_view = view(dep)
            if dep_view.state is ServiceState.DOWN:
                causes.extend(c for c in dep_view.impacted_by if c not in causes)
        if causes:
            result = ServiceView(ServiceState.DOWN, left, tuple(causes))
        elif len(left) < len(service.endpoints):
            result = ServiceView(ServiceState.REDUCED_REDUNDANCY, left)
        else:
            result = ServiceView(ServiceState.AVAILABLE, left)
        views[sid] = result
        return result

    for sid in catalog.services:
        view(sid)
    return views


def action_when_down(operation: Operation) -> Action:
    continuity = operation.continuity
    if continuity is None or continuity.class_ is Continuity.ONLINE:
        return Action.REFUSE
    if continuity.class_ is Continuity.CACHEABLE:
        return Action.STALE_READ
    return Action.JOURNAL


@dataclass(frozen=True, slots=True)
class OperationImpact:
    service: str
    operation: str
    level: Level
    status: Status
    continuity: Action
    procedure_id: str | None
    procedure: str | None
    impacted_by: tuple[str, ...]
    dcs_left: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "service": self.service,
            "operation": self.operation,
            "level": self.level.value,
            "status": self.status.value,
            "continuity": self.continuity.value,
            "procedure": self.procedure,
            "procedure_id": self.procedure_id,
            "impacted_by": list(self.impacted_by),
            "data_centers_left": list(self.dcs_left),
        }


@dataclass(frozen=True, slots=True)
class GroupImpact:
    group: str
    name: str
    status: Status
    operations: tuple[OperationImpact, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Impact:
    failures: tuple[FailedService, ...]
    services: dict[str, ServiceView]
    groups: dict[str, GroupImpact]

    def as_json(self) -> dict[str, object]:
        return {
            "failures": [str(f) for f in self.failures],
            "services": {
                sid: {
                    "state": v.state.value,
                    "data_centers_left": list(v.dcs_left),
                    "impacted_by": list(v.impacted_by),
                }
                for sid, v in self.services.items()
                if v.state is not ServiceState.AVAILABLE
            },
            "groups": {
                gid: {
                    "name": g.name,
                    "status": g.status.value,
                    "operations": [o.as_json() for o in g.operations],
                }
                for gid, g in self.groups.items()
            },
        }


def impact(catalog: Catalog, failures: Iterable[FailedService], language: str = "en") -> Impact:
    """Who is stopped or degraded by ``failures``, per target group, with the procedures."""
    failures = tuple(sorted(set(failures), key=lambda f: f.sort_key))
    views = service_states(catalog, failures)
    groups: dict[str, GroupImpact] = {}
    for gid, group in catalog.target_groups.items():
        affected: list[OperationImpact] = []
        for critical in group.critical:
            view = views[critical.service]
            if view.state is ServiceState.AVAILABLE:
                continue
            _, operation = catalog.operation(critical.service, critical.operation_id)
            if view.state is ServiceState.REDUCED_REDUNDANCY:
                action, status = Action.FAILOVER, Status.DEGRADED
            else:
                action = action_when_down(operation)
                status = Status.STOPPED if action is Action.REFUSE else Status.DEGRADED
            affected.append(
                OperationImpact(
                    service=critical.service,
                    operation=critical.operation_id,
                    level=critical.level,
                    status=status,
                    continuity=action,
                    procedure_id=critical.procedure,
                    procedure=catalog.procedure_text(critical.procedure, language)
                    if action is not Action.FAILOVER
                    else None,
                    impacted_by=view.impacted_by,
                    dcs_left=view.dcs_left,
                )
            )
        worst = max((o.status for o in affected), key=lambda s: s.rank, default=Status.UNAFFECTED)
        groups[gid] = GroupImpact(gid, group.names.get(language), worst, tuple(affected))
    return Impact(failures, views, groups)
