"""What the probe results mean: per target (hysteresis, quorum of locations), per service
(from its data centers and its dependencies) and per target group (the catalog's impact).

Hysteresis: a target goes ``down`` after ``failures`` consecutive failures and ``up`` again
after ``successes`` consecutive successes, so a flapping target does not flap its state; the
down state is back-dated to the first failure of the run. Quorum: with several probe
locations, a target is down only when ``quorum`` locations heard recently say so (one probe
site losing its network is not an outage of the chain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from garde.catalog import Catalog, FailedService, Impact, ServiceState, impact, service_states
from garde.monitor.probes import ProbeResult
from garde.monitor.targets import Target


class TargetStatus(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    """Answers, but slowly (or a certificate close to expiry)."""
    DOWN = "down"


class ServiceStatus(StrEnum):
    OPERATIONAL = "operational"
    REDUCED_REDUNDANCY = "reduced_redundancy"
    """A data center is down; the others serve."""
    DEGRADED = "degraded"
    """Served, but every data center left answers slowly."""
    OUTAGE = "outage"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    ServiceStatus.OPERATIONAL: 0,
    ServiceStatus.REDUCED_REDUNDANCY: 1,
    ServiceStatus.DEGRADED: 2,
    ServiceStatus.OUTAGE: 3,
}


@dataclass(slots=True)
class Hysteresis:
    """The state of one target as seen from one location."""

    failures: int
    successes: int
    status: TargetStatus = TargetStatus.UNKNOWN
    since: float | None = None
    fail_run: int = 0
    ok_run: int = 0
    slow_run: int = 0
    fast_run: int = 0
    first_failure: float | None = None
    last_at: float = 0.0
    last_error: str | None = None
    last_latency: float | None = None

    def feed(self, result: ProbeResult) -> bool:
        """Account for ``result``; True when the status changed."""
        if result.at < self.last_at:
            return False  # a late result from a slow location must not undo a newer one
        self.last_at = result.at
        self.last_latency = result.latency
        self.last_error = result.error
        before = self.status
        if not result.ok:
            if self.fail_run == 0:
                self.first_failure = result.at
            self.fail_run += 1
            self.ok_run = 0
            if self.status is not TargetStatus.DOWN and self.fail_run >= self.failures:
                self.status = TargetStatus.DOWN
                self.since = self.first_failure
            return self.status is not before
        self.ok_run += 1
        self.fail_run = 0
        if self.status is TargetStatus.DOWN and self.ok_run < self.successes:
            return False
        if result.slow:
            self.slow_run += 1
            self.fast_run = 0
        else:
            self.fast_run += 1
            self.slow_run = 0
        if self.status in (TargetStatus.DOWN, TargetStatus.UNKNOWN):
            self.status = TargetStatus.DEGRADED if result.slow else TargetStatus.UP
        elif self.status is TargetStatus.UP and self.slow_run >= self.failures:
            self.status = TargetStatus.DEGRADED
        elif self.status is TargetStatus.DEGRADED and self.fast_run >= self.successes:
            self.status = TargetStatus.UP
        if self.status is not before:
            self.since = result.at
        return self.status is not before


@dataclass(frozen=True, slots=True)
class TargetView:
    target: str
    service: str
    dc: str
    status: TargetStatus
    since: float | None
    locations: dict[str, TargetStatus]
    latency: float | None
    error: str | None


class TargetTracker:
    """All locations' hysteresis for every target, and the quorum over them."""

    def __init__(
        self,
        targets: Iterable[Target],
        *,
        quorum: int | None = None,
        location_ttl: float = 3.0,
    ) -> None:
        self.targets = {t.id: t for t in targets}
        self.quorum = quorum
        self.location_ttl = location_ttl
        """A location counts while its last result is newer than this many intervals."""
        self._state: dict[str, dict[str, Hysteresis]] = {tid: {} for tid in self.targets}

    def feed(self, result: ProbeResult) -> bool:
        target = self.targets.get(result.target)
        if target is None:
            return False
        per_location = self._state[result.target]
        machine = per_location.get(result.location)
        if machine is None:
            machine = per_location[result.location] = Hysteresis(target.failures, target.successes)
        return machine.feed(result)

    def view(self, target_id: str, now: float) -> TargetView:
        target = self.targets[target_id]
        machines = self._state[target_id]
        horizon = now - self.location_ttl * target.interval - target.timeout
        live = {loc: m for loc, m in machines.items() if m.last_at >= horizon}
        # With no recent result at all, keep what the last results said rather than forget.
        considered = live or machines
        statuses = {loc: m.status for loc, m in considered.items()}
        known = [m for m in considered.values() if m.status is not TargetStatus.UNKNOWN]
        if not known:
            return TargetView(
                target_id,
                target.service,
                target.dc,
                TargetStatus.UNKNOWN,
                None,
                statuses,
                None,
                None,
            )
        needed = self.quorum if self.quorum is not None else len(known) // 2 + 1
        needed = min(needed, len(known))
        down = [m for m in known if m.status is TargetStatus.DOWN]
        if len(down) >= needed:
            status = TargetStatus.DOWN
            chosen = down
            since = min(m.since or m.last_at for m in down)
        else:
            serving = [m for m in known if m.status is not TargetStatus.DOWN]
            slow = [m for m in serving if m.status is TargetStatus.DEGRADED]
            status = TargetStatus.DEGRADED if len(slow) * 2 > len(serving) else TargetStatus.UP
            chosen = serving
            since = max(m.since or m.last_at for m in serving)
        latest = max(chosen, key=lambda m: m.last_at)
        return TargetView(
            target_id,
            target.service,
            target.dc,
            status,
            since,
            statuses,
            latest.last_latency,
            latest.last_error,
        )

    def views(self, now: float) -> dict[str, TargetView]:
        return {tid: self.view(tid, now) for tid in self.targets}


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    service: str
    status: ServiceStatus
    data_centers: dict[str, TargetStatus]
    impacted_by: tuple[str, ...] = ()
    """Other services whose failure explains this one's (empty when it fails on its own)."""
    since: float | None = None

    @property
    def root_cause(self) -> bool:
        """Fails on its own, not because a dependency is down: worth its own alert."""
        return self.status is not ServiceStatus.OPERATIONAL and not self.impacted_by


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float
    targets: dict[str, TargetView]
    services: dict[str, ServiceSnapshot]
    failures: tuple[FailedService, ...]
    overall: ServiceStatus

    def impact(self, catalog: Catalog, language: str = "en") -> Impact:
        """Per target group: who is stopped and the procedure (the catalog's logic)."""
        return impact(catalog, self.failures, language)


def snapshot(catalog: Catalog, tracker: TargetTracker, now: float) -> Snapshot:
    """Service states from target states, dependency-aware, through the catalog's logic."""
    views = tracker.views(now)
    per_service: dict[str, dict[str, TargetView]] = {}
    for view in views.values():
        if view.target.startswith("tls:"):
            continue
        per_service.setdefault(view.service, {})[view.dc] = view
    failures = tuple(
        FailedService(v.service, v.dc)
        for dcs in per_service.values()
        for v in dcs.values()
        if v.status is TargetStatus.DOWN
    )
    catalog_views = service_states(catalog, failures)
    services: dict[str, ServiceSnapshot] = {}
    for sid, cview in catalog_views.items():
        dcs = per_service.get(sid, {})
        dc_status = {
            dc: dcs[dc].status if dc in dcs else TargetStatus.UNKNOWN
            for dc in catalog.services[sid].endpoints
        }
        others = tuple(c for c in cview.impacted_by if c != sid)
        down_since = [v.since for v in dcs.values() if v.status is TargetStatus.DOWN and v.since]
        if cview.state is ServiceState.DOWN:
            status = ServiceStatus.OUTAGE
            # Its own data centers may fail *because* the dependency does (no token): the
            # dependency explains it, so it gets no alert of its own.
            impacted_by = others
        else:
            impacted_by = ()
            serving = [s for s in dc_status.values() if s is not TargetStatus.DOWN]
            known = [s for s in serving if s is not TargetStatus.UNKNOWN]
            if known and all(s is TargetStatus.DEGRADED for s in known):
                status = ServiceStatus.DEGRADED
                down_since = [v.since for v in dcs.values() if v.since]
            elif cview.state is ServiceState.REDUCED_REDUNDANCY:
                status = ServiceStatus.REDUCED_REDUNDANCY
            else:
                status = ServiceStatus.OPERATIONAL
        since = min(down_since) if down_since else None
        if impacted_by:
            dep_since = [services[d].since for d in impacted_by if d in services]
            since = min([s for s in dep_since if s] or [since or now])
        services[sid] = ServiceSnapshot(sid, status, dc_status, impacted_by, since)
    overall = max(
        (s.status for s in services.values()),
        key=lambda s: s.rank,
        default=ServiceStatus.OPERATIONAL,
    )
    return Snapshot(now, views, services, failures, overall)
