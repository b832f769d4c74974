"""The BCP gaps of a catalog: what a continuity plan still has to answer.

A gap is a critical operation of a target group with no fallback procedure, no continuity
class, or an RTO that the topology cannot meet (detection plus activation of another data
center takes longer; a single data center whose repair takes longer; a dependency that
recovers more slowly than the service promises).
"""

from __future__ import annotations

from dataclasses import dataclass

from garde.catalog.durations import format_duration
from garde.catalog.model import Catalog, Service


@dataclass(frozen=True, slots=True)
class Gap:
    group: str
    service: str
    operation: str
    reason: str
    kind: str

    def as_json(self) -> dict[str, str]:
        return {
            "group": self.group,
            "service": self.service,
            "operation": self.operation,
            "reason": self.reason,
            "kind": self.kind,
        }


def rto_problems(catalog: Catalog, service: Service) -> list[str]:
    """Why ``service``'s RTO cannot be met by the topology, if it cannot."""
    problems = []
    detection = service.probe.interval * service.probe.failures
    dcs = [catalog.data_centers[dc] for dc in service.endpoints if dc in catalog.data_centers]
    if len(dcs) >= 2:
        alternatives = dcs[1:]
        fastest = min(dc.activation for dc in alternatives)
        needed = detection + fastest
        if needed > service.rto:
            problems.append(
                f"RTO {format_duration(service.rto)} is shorter than detection"
                f" ({format_duration(detection)}) plus activation of another data center"
                f" ({format_duration(fastest)})"
            )
    elif dcs and dcs[0].repair_time > service.rto:
        problems.append(
            f"RTO {format_duration(service.rto)} relies on a single data center"
            f" ({dcs[0].id}) whose repair takes {format_duration(dcs[0].repair_time)}"
        )
    for dep in service.depends_on:
        dep_rto = catalog.services[dep].rto
        if dep_rto > service.rto:
            problems.append(
                f"RTO {format_duration(service.rto)} depends on {dep}"
                f" whose RTO is {format_duration(dep_rto)}"
            )
    return problems


def coverage(catalog: Catalog) -> list[Gap]:
    gaps: list[Gap] = []
    rto_cache: dict[str, list[str]] = {}
    for gid, group in catalog.target_groups.items():
        for critical in group.critical:
            service, operation = catalog.operation(critical.service, critical.operation_id)
            where = (gid, critical.service, critical.operation_id)
            if critical.procedure is None:
                gaps.append(
                    Gap(
                        *where,
                        f"no fallback procedure for a {critical.level.value} operation",
                        "no_procedure",
                    )
                )
            if operation.continuity is None:
                gaps.append(Gap(*where, "no continuity class (treated as online)", "no_continuity"))
            if critical.service not in rto_cache:
                rto_cache[critical.service] = rto_problems(catalog, service)
            gaps.extend(Gap(*where, reason, "rto") for reason in rto_cache[critical.service])
    return gaps
