"""The drill's report, computed from a ``Run`` alone: outcomes per service, operation and
target group; loss and duplicates counted from the lab's **ledger**; detection, failover,
recovery and drain times; every expectation met or missed; a paragraph in plain words.

``build_report`` gives the ``report.json`` document (schema in docs/drills.md); the HTML
page (``garde.drill.html``) and the terminal summary (``garde.cli.drill``) are drawn from it.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from garde.catalog import format_duration
from garde.drill.runner import Run
from garde.drill.timeline import Played
from garde.drill.workload import (
    CONFLICT,
    DELIVERED,
    ERROR,
    EXPIRED,
    FAILED_OVER,
    JOURNALED,
    LOST,
    OUTCOMES,
    REFUSED,
    SERVED,
    STALE,
    Call,
)

VERSION = 1
DETECTABLE = ("down", "blackhole", "errors", "reset", "flap")
"""Lab faults the monitor is expected to flag (latency and slow may stay under its threshold)."""
UNHEALTHY = ("down", "degraded")
NORMAL_OUTCOMES = (SERVED, FAILED_OVER)
INCIDENT_TIMES = ("started_at", "resolved_at", "started_at_unix", "resolved_at_unix")
"""The monitor's incident times as its API gives them: RFC 3339, and for one release the
Unix seconds beside them (deprecated)."""


def _final(call: Call, applied: Counter[str], receipts: dict[str, str]) -> str:
    """A journaled call's outcome once the drill is over: the ledger says if it arrived."""
    if call.outcome != JOURNALED:
        return call.outcome
    if call.key is not None and applied[call.key] > 0:
        return DELIVERED
    state = receipts.get(call.receipt or "", "")
    if state == "conflict":
        return CONFLICT
    if state in ("expired", "discarded"):
        return EXPIRED
    return LOST


def build_report(run: Run) -> dict[str, Any]:
    checked = run.checked
    scenario = checked.scenario
    applied: Counter[str] = Counter(
        e["idempotency_key"] for e in run.ledger if e.get("idempotency_key")
    )
    finals = [(call, _final(call, applied, run.receipts)) for call in run.calls]
    ledger = _ledger(run, finals, applied)
    times = _times(run, finals)
    report: dict[str, Any] = {
        "version": VERSION,
        "scenario": {
            "name": checked.name,
            "file": checked.file,
            "description": scenario.description,
            "source": scenario.source,
            "duration": scenario.duration,
            "time_scale": scenario.time_scale,
            "real_duration": scenario.real_duration,
        },
        "run": {
            "seed": run.seed,
            "no_workload": run.no_workload,
            "started_at": datetime.fromtimestamp(run.started_at, UTC).isoformat(timespec="seconds"),
            "ended_after": round(run.ended_at, 3),
            "gateways": len(run.gateways),
            "kills": run.kills,
            "seeded_prescriptions": run.seeded,
            "requests": len(run.calls),
        },
        "outcomes": _outcomes(finals),
        "ledger": ledger,
        "times": times,
        "faults": [p.as_json() for p in run.played],
        "incidents": [
            {k: i.get(k) for k in ("id", "title", "severity", "state", *INCIDENT_TIMES)}
            for i in run.incidents
        ],
        "series": _series(run, finals),
        "load": _load(run),
    }
    report["expectations"] = _expectations(run, report, finals)
    missed = [e for e in report["expectations"] if not e["met"]]
    report["verdict"] = {
        "passed": not missed,
        "met": len(report["expectations"]) - len(missed),
        "missed": len(missed),
    }
    report["summary"] = _summary(run, report, finals)
    return report


def _outcomes(finals: list[tuple[Call, str]]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], Counter[str]] = {}
    for call, outcome in finals:
        rows.setdefault((call.service, call.operation, call.group), Counter())[outcome] += 1
    return [
        {
            "service": service,
            "operation": operation,
            "target_group": group,
            "counts": {o: counts[o] for o in OUTCOMES if counts[o]},
            "total": sum(counts.values()),
        }
        for (service, operation, group), counts in sorted(rows.items())
    ]


def _ledger(run: Run, finals: list[tuple[Call, str]], applied: Counter[str]) -> dict[str, Any]:
    groups: Counter[tuple[str, str, str]] = Counter(
        (e["service"], e["effect"], e["business_key"]) for e in run.ledger
    )
    doubled = {k: n for k, n in groups.items() if n > 1}
    by_effect: Counter[str] = Counter()
    for (service, effect, _), n in doubled.items():
        by_effect[f"{service} {effect}"] += n - 1
    # Writes someone was told were done: a 200 from the service or a 202 with a receipt.
    if run.no_workload:
        acknowledged, lost = _journal_truth(run, applied)
        lost_at: list[float] = []
    else:
        told = [(c, o) for c, o in finals if c.key and (c.status in (200, 202))]
        acknowledged = len(told)
        lost_calls = [
            c for c, o in told if o == LOST or (o in NORMAL_OUTCOMES and not applied[c.key or ""])
        ]
        lost = len(lost_calls)
        lost_at = [c.t for c in lost_calls]
    return {
        "effects": len(run.ledger),
        "acknowledged": acknowledged,
        "delivered_after_journal": sum(1 for _, o in finals if o == DELIVERED),
        "lost": lost,
        "lost_window": round(max(lost_at) - min(lost_at), 3) if lost_at else 0.0,
        "duplicates": sum(n - 1 for n in doubled.values()),
        "duplicated": [{"effect": k, "extra": n} for k, n in sorted(by_effect.items())],
        "keys_applied_twice": sum(1 for n in applied.values() if n > 1),
        "counted_from": "the lab's ledger (GET /ledger/export)",
    }


def _journal_truth(run: Run, applied: Counter[str]) -> tuple[int, int]:
    """Without a workload of its own, the drill knows what was acknowledged from the gateways:
    every journal entry was answered 202, and the 202 counters say how many there were (an
    entry gone from the journal is missing from the export, not from the counter)."""
    entries = run.journal_entries
    lost = sum(
        1
        for e in entries
        if e.get("state") not in ("conflict", "expired", "discarded")
        and not applied[str(e.get("idempotency_key", ""))]
    )
    held: Counter[str] = Counter(f"{e.get('service')}.{e.get('operation')}" for e in entries)
    vanished = sum(max(0, n - held[op]) for op, n in run.acknowledged.items())
    return max(len(entries), sum(run.acknowledged.values())), lost + vanished


def _lab_faults(run: Run) -> list[Played]:
    return [p for p in run.played if p.service is not None]


def _times(run: Run, finals: list[tuple[Call, str]]) -> dict[str, Any]:
    faults = _lab_faults(run)
    catalog = run.checked.catalog
    detection: dict[str, float | None] = {}
    failover: dict[str, float | None] = {}
    for fault in faults:
        where = f"{fault.service}@{fault.dc}"
        label = f"{where} {fault.kind} at {fault.start:g}s"
        if fault.kind in DETECTABLE:
            detection[label] = _detected(run, where, fault)
        service = catalog.services[fault.service or ""]
        primary = next(iter(service.endpoints))
        others_down = any(
            f.service == fault.service
            and f.dc != fault.dc
            and f.start < fault.end
            and f.end > fault.start
            for f in faults
        )
        called = any(
            c.service == fault.service and fault.start <= c.t < fault.end for c, _ in finals
        )
        # Judged where callers called the service meanwhile: the STS the gateways call for
        # their tokens, or a service no site uses, has nobody to fail over.
        if fault.dc == primary and not others_down and fault.kind in DETECTABLE and called:
            failover[label] = _failed_over(finals, fault)
    services = sorted({f.service for f in faults if f.service})
    recovery: dict[str, float | None] = {sid: _recovered(run, finals, sid) for sid in services}
    groups: dict[str, float | None] = {}
    for site in run.checked.scenario.sites:
        used = {op.partition(".")[0] for op in (site.workload.mix if site.workload else {})}
        measured = [recovery[s] for s in used if s in recovery]
        if measured:
            worst = None if None in measured else max(m for m in measured if m is not None)
            current = groups.get(site.target_group, 0.0)
            groups[site.target_group] = (
                None if worst is None or current is None else max(current, worst)
            )
    last_end = max((f.end for f in faults), default=0.0)
    journaled = any(d > 0 for _, d in run.samples.depth) or any(o == DELIVERED for _, o in finals)
    drain = _drain(run, last_end) if journaled else 0.0
    return {
        "last_fault_end": round(last_end, 3),
        "detection": detection,
        "failover": failover,
        "recovery": {"services": recovery, "target_groups": groups},
        "drain": drain,
        "peak_depth": max((d for _, d in run.samples.depth), default=0),
    }


def _drain(run: Run, last_end: float) -> float | None:
    """Seconds from the last fault's end until every journal was empty for good (sampled)."""
    after = [(t, d) for t, d in run.samples.depth if t >= last_end]
    busy = [t for t, d in after if d > 0]
    settled = [t for t, d in after if d == 0 and t > max(busy, default=-1.0)]
    if run.drained_at is None:
        return None
    # The runner stops sampling once it sees every journal empty: the last sample may still
    # show a few entries, and the runner's own observation is then the drain's end.
    end = settled[0] if settled else run.drained_at
    if end <= max(busy, default=-1.0):
        return None  # entries were seen waiting after it: not empty for good
    return round(max(0.0, end - last_end), 3)


def _detected(run: Run, where: str, fault: Played) -> float | None:
    """Seconds from the fault's start until the monitor flagged the data center; 0 when it
    was still flagged from a fault before (the states are kept as changes)."""
    changes = run.samples.dc_states.get(where, [])
    before = [state for t, state in changes if t <= fault.start]
    if before and before[-1] in UNHEALTHY:
        return 0.0
    for t, state in changes:
        if fault.start <= t <= fault.end + 5 and state in UNHEALTHY:
            return round(t - fault.start, 3)
    return None


def _failed_over(finals: list[tuple[Call, str]], fault: Played) -> float | None:
    for call, outcome in sorted(finals, key=lambda f: f[0].t):
        during = call.service == fault.service and fault.start <= call.t < fault.end
        if during and outcome == FAILED_OVER:
            return round(max(0.0, call.t + call.took - fault.start), 3)
    return None


def _recovered(run: Run, finals: list[tuple[Call, str]], service: str) -> float | None:
    """Seconds from the end of the service's last fault until it is served again through the
    gateways (its last bad answer; without calls, its mode no longer ``offline`` on any
    gateway) and its journal is empty; None when that was not seen before the drill ended."""
    end = max(f.end for f in _lab_faults(run) if f.service == service)
    after = [(c, o) for c, o in finals if c.service == service and c.t + c.took >= end]
    moments = [end]
    if after:
        good = [c.t + c.took for c, o in after if o in (*NORMAL_OUTCOMES, DELIVERED)]
        bad = [c.t + c.took for c, o in after if o not in (*NORMAL_OUTCOMES, DELIVERED)]
        if bad and (not good or max(bad) > max(good)):
            return None  # still failing when the drill ended
        moments += bad
    else:
        modes = run.samples.modes.get(service, [])
        if modes and modes[-1][1] == "offline":
            return None
        moments += [t for t, mode in modes[-1:] if t >= end]
    depth = run.samples.depth_by_service.get(service, [])
    busy = [t for t, d in depth if d > 0 and t >= end]
    if busy:
        empty = [t for t, d in depth if d == 0 and t > max(busy)]
        if not empty:
            return None
        moments.append(empty[0])
    return round(max(0.0, max(moments) - end), 3)


def _series(run: Run, finals: list[tuple[Call, str]]) -> dict[str, Any]:
    seconds = max(1, math.ceil(run.ended_at))
    outcomes = {o: [0] * seconds for o in OUTCOMES}
    for call, outcome in finals:
        second = min(seconds - 1, max(0, int(call.t)))
        outcomes[outcome][second] += 1
    return {
        "seconds": seconds,
        "outcomes": {o: counts for o, counts in outcomes.items() if any(counts)},
        "depth": [[round(t, 2), d] for t, d in run.samples.depth],
        "dc_states": {
            k: [[round(t, 2), s] for t, s in v] for k, v in run.samples.dc_states.items()
        },
        "modes": {k: [[round(t, 2), s] for t, s in v] for k, v in run.samples.modes.items()},
    }


OUTAGE_KINDS = ("down", "blackhole", "flap", "errors", "reset")
"""Faults after which a service recovers: its load is judged from the first one's end."""


SUSTAINED = 3
"""Seconds over which the peak load is averaged: a service is flattened by load it must
absorb for seconds, and the lab (one process on a shared machine) may itself stall for a
second and then count what queued meanwhile in the next."""


def _sustained_peak(offered: list[tuple[int, int]]) -> float:
    """The highest load per second averaged over ``SUSTAINED`` consecutive seconds."""
    per_second = dict(offered)
    best = 0.0
    for t in per_second:
        window = sum(per_second.get(t + k, 0) for k in range(SUSTAINED))
        best = max(best, window / SUSTAINED)
    return round(best, 1)


def _load(run: Run) -> list[dict[str, Any]]:
    """Each service given a capacity, per data center: its limit, the peak load it was
    offered and admitted in one second (overall, and from its recovery: the end of its first
    outage), and the load per second from t = 0."""
    found = []
    for entry in run.load:
        settings = run.checked.scenario.services.get(entry["service"])
        offered = [[round(s - run.started_at), n] for s, n in entry["offered"]]
        ends = [
            p.end for p in run.played if p.service == entry["service"] and p.kind in OUTAGE_KINDS
        ]
        since = min(ends, default=0.0)
        found.append(
            {
                "service": entry["service"],
                "dc": entry["dc"],
                "capacity": settings.capacity if settings is not None else None,
                "recovery_from": since,
                "peak_recovery": _sustained_peak([(t, n) for t, n in offered if t >= since]),
                "peak_offered": entry["peak_offered"],
                "peak_admitted": entry["peak_admitted"],
                "offered_total": entry["offered_total"],
                "refused_total": entry["refused_total"],
                "offered": offered,
            }
        )
    return found


def _expect(name: str, expected: str, measured: str, met: bool, detail: str = "") -> dict[str, Any]:
    return {"name": name, "expected": expected, "measured": measured, "met": met, "detail": detail}


def _seconds(value: float | None) -> str:
    return (
        "not seen" if value is None else format_duration(value) if value >= 1 else f"{value:.2f}s"
    )


def _expectations(
    run: Run, report: dict[str, Any], finals: list[tuple[Call, str]]
) -> list[dict[str, Any]]:
    expect = run.checked.scenario.expect
    ledger, times = report["ledger"], report["times"]
    found = []
    lost = ledger["lost"]
    # RPO 0: nothing acknowledged may be lost. Larger: the lost writes must fit in a window.
    met = lost == 0 if expect.rpo == 0 else ledger["lost_window"] <= expect.rpo
    found.append(
        _expect(
            "rpo", format_duration(expect.rpo), f"{lost} acknowledged write(s) lost", met,
            "acknowledged writes (200, or 202 with a receipt) missing from the ledger",
        )
    )  # fmt: skip
    found.append(
        _expect(
            "duplicates", str(expect.duplicates), f"{ledger['duplicates']} applied twice",
            ledger["duplicates"] <= expect.duplicates,
            "business effects the ledger holds more than once",
        )
    )  # fmt: skip
    for operation, share in sorted(expect.refused.items()):
        service, _, op = operation.partition(".")
        calls = [o for c, o in finals if c.service == service and c.operation == op]
        refused = sum(1 for o in calls if o == REFUSED)
        part = refused / len(calls) if calls else 0.0
        found.append(
            _expect(
                f"refused {operation}", f"at most {share:.0%}",
                f"{part:.1%} ({refused} of {len(calls)})", part <= share,
            )
        )  # fmt: skip
    for name, limit, values in (
        ("detection", expect.detection, times["detection"]),
        ("failover", expect.failover, times["failover"]),
    ):
        if limit is None:
            continue
        # Seen in time counts whatever the fault's length; not seen counts only against a
        # fault that lasted long enough to be seen.
        judged = {k: v for k, v in values.items() if v is not None or _long_enough(k, run, limit)}
        worst = [v for v in judged.values() if v is not None]
        missing = [k for k, v in judged.items() if v is None]
        met = not missing and all(v <= limit for v in worst)
        measured = (
            "nothing to judge"
            if not judged
            else (f"{len(missing)} never" if missing else f"worst {_seconds(max(worst))}")
        )
        detail = "; ".join(f"{k}: {_seconds(v)}" for k, v in judged.items())
        found.append(_expect(name, f"within {format_duration(limit)}", measured, met, detail))
    if expect.drain is not None:
        drain = times["drain"]
        found.append(
            _expect(
                "drain", f"within {format_duration(expect.drain)}", _seconds(drain),
                drain is not None and drain <= expect.drain,
                f"from the last fault's end; peak depth {times['peak_depth']}",
            )
        )  # fmt: skip
    if expect.peak_load is not None:
        for entry in report["load"]:
            if entry["capacity"] is None:
                continue
            allowed = entry["capacity"] * (1 + expect.peak_load)
            found.append(
                _expect(
                    f"peak load {entry['service']}@{entry['dc']}",
                    f"at most {allowed:g}/s (capacity {entry['capacity']:g}/s"
                    f" + {expect.peak_load:.0%})",
                    f"{entry['peak_recovery']:g}/s offered", entry["peak_recovery"] <= allowed,
                    f"averaged over {SUSTAINED}s, from its recovery"
                    f" ({entry['recovery_from']:.0f}s); in one second over the whole run"
                    f" {entry['peak_offered']}/s offered, {entry['peak_admitted']}/s admitted;"
                    f" {entry['refused_total']} of {entry['offered_total']} requests refused"
                    " with 503 and Retry-After",
                )
            )  # fmt: skip
    for kind, limits in (
        ("services", expect.rto.services),
        ("target_groups", expect.rto.target_groups),
    ):
        for name, limit in sorted(limits.items()):
            value = times["recovery"][kind].get(name)
            found.append(
                _expect(
                    f"rto {name}", f"within {format_duration(limit)}", _seconds(value),
                    value is not None and value <= limit,
                )
            )  # fmt: skip
    return found


def _long_enough(label: str, run: Run, limit: float) -> bool:
    """A fault shorter than the time allowed to notice it cannot be judged on it."""
    for fault in _lab_faults(run):
        if label == f"{fault.service}@{fault.dc} {fault.kind} at {fault.start:g}s":
            return fault.end - fault.start >= limit
    return True


def _summary(run: Run, report: dict[str, Any], finals: list[tuple[Call, str]]) -> str:
    scenario = run.checked.scenario
    faults = _lab_faults(run)
    services = sorted({f.service for f in faults if f.service})
    counts = Counter(o for _, o in finals)
    parts = [
        f"{run.checked.name}: {format_duration(scenario.duration)} of the incident replayed in"
        f" {format_duration(scenario.real_duration)} on {len(run.gateways)} gateway(s);"
        f" {len(faults)} fault(s) on {', '.join(services) or 'no service'}"
        + (f" and {run.kills} process kill(s)" if run.kills else "")
        + "."
    ]
    if run.no_workload:
        parts.append("No workload of the drill's own: the sites' software was yours.")
    else:
        said = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])
        parts.append(f"The sites sent {len(finals)} requests: {said or 'none answered'}.")
    ledger, times = report["ledger"], report["times"]
    parts.append(
        f"The lab's ledger shows {ledger['lost']} acknowledged write(s) lost and"
        f" {ledger['duplicates']} business effect(s) applied twice"
        f" (of {ledger['acknowledged']} acknowledged)."
    )
    if times["drain"] is None:
        parts.append("The journals did not drain within the drill's bound.")
    elif times["peak_depth"] or ledger["delivered_after_journal"]:
        parts.append(
            f"Up to {times['peak_depth']} writes waited in the journals; they drained"
            f" {_seconds(times['drain'])} after the last fault ended."
        )
    missed = [e for e in report["expectations"] if not e["met"]]
    if missed:
        parts.append(
            "Missed: "
            + "; ".join(f"{e['name']} ({e['measured']}, expected {e['expected']})" for e in missed)
            + "."
        )
    else:
        parts.append("Every expectation held.")
    if counts[ERROR]:
        parts.append(
            f"{counts[ERROR]} request(s) got no usable answer (connection refused, timeout)."
        )
    if counts[STALE]:
        parts.append(
            f"{counts[STALE]} read(s) were answered from the last good answer, marked stale."
        )
    return " ".join(parts)
