"""Mass recovery: two dozen gateways replay their journals into a service just back, whose
capacity is limited; does it stay within it?

    python -m bench.mass_recovery            # the mass-recovery drill, then its baseline
    python -m bench.mass_recovery --seed 2

The path measured is the whole chain, as ``garde drill mass-recovery`` plays it: the lab
(``garde lab up``), 24 ``garde gateway`` processes (20 pharmacies, 2 hospital sites of two
gateways sharing a PostgreSQL journal) and the monitor, the pharmacies' software sending
through them. Recip-e's executor, eAttest and the hubs are down for two scenario hours (one
real minute); then Recip-e is back, slow (300 ms) and limited to 40 requests a second per
data center: beyond, the lab answers 503 with ``Retry-After`` (docs/lab.md). What drains it
is each gateway's own replayer (the ``RunningGateway``'s, with the drill's settings:
docs/drills.md), which honours ``Retry-After`` and paces the service.

Measured, from the lab (its ledger and its per-second meter) and the gateways' journals:
sites and gateways, the writes journaled then delivered, the drain time from the last
fault's end, and Recip-e's peak load (requests offered to one data center in one second,
admitted or refused) from its recovery on, against its limit. The workload's own error
count is checked (connection errors and timeouts: its load tool's failures).

Baseline, in the same run: the same drill with Recip-e's limit raised out of reach (100,000
a second, still metered): the load the same replayers put on a service that never says it
is overloaded, the peak that a real service at 40 a second would have had to absorb.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from garde.drill import CheckedScenario, build_report, load_scenario, run_drill

SERVICE = "recipe-executor"
UNLIMITED = 100_000.0


def _limited(checked: CheckedScenario, capacity: float) -> CheckedScenario:
    services = dict(checked.scenario.services)
    services[SERVICE] = services[SERVICE].model_copy(update={"capacity": capacity})
    scenario = checked.scenario.model_copy(update={"services": services})
    return CheckedScenario(checked.name, checked.file, scenario, checked.catalog)


def _figures(report: dict[str, Any], wall: float) -> dict[str, Any]:
    loads = [e for e in report["load"] if e["service"] == SERVICE]
    counts: dict[str, int] = {}
    for row in report["outcomes"]:
        for outcome, n in row["counts"].items():
            counts[outcome] = counts.get(outcome, 0) + n
    return {
        "verdict": "held" if report["verdict"]["passed"] else "missed",
        "missed": [e["name"] for e in report["expectations"] if not e["met"]],
        "gateways": report["run"]["gateways"],
        "requests": report["run"]["requests"],
        "journaled": report["ledger"]["delivered_after_journal"],
        "acknowledged": report["ledger"]["acknowledged"],
        "lost": report["ledger"]["lost"],
        "duplicates": report["ledger"]["duplicates"],
        "peak_depth": report["times"]["peak_depth"],
        "drain": report["times"]["drain"],
        "errors": counts.get("error", 0),
        "peak": {e["dc"]: e["peak_recovery"] for e in loads},
        "peak_whole_run": {e["dc"]: e["peak_offered"] for e in loads},
        "refused": sum(e["refused_total"] for e in loads),
        "offered": sum(e["offered_total"] for e in loads),
        "wall": wall,
    }


async def _one(checked: CheckedScenario, seed: int, folder: Path) -> dict[str, Any]:
    started = time.monotonic()
    run = await run_drill(checked, folder, seed_value=seed)
    return _figures(build_report(run), time.monotonic() - started)


def _print(title: str, limit: float, f: dict[str, Any]) -> None:
    peaks = ", ".join(f"{dc} {n}/s" for dc, n in sorted(f["peak"].items()))
    whole = ", ".join(f"{dc} {n}/s" for dc, n in sorted(f["peak_whole_run"].items()))
    drain = "never" if f["drain"] is None else f"{f['drain']:.1f} s"
    print(f"{title} (Recip-e limit {limit:g}/s per data center): {f['verdict']}", end="")
    print(f" ({', '.join(f['missed'])})" if f["missed"] else "")
    print(
        f"  {f['gateways']} gateways, {f['requests']} requests from the sites,"
        f" {f['errors']} workload errors (connection or timeout)"
    )
    print(
        f"  {f['journaled']} writes journaled then delivered (peak depth {f['peak_depth']}),"
        f" {f['acknowledged']} acknowledged, {f['lost']} lost, {f['duplicates']} doubled;"
        f" drained {drain} after the last fault"
    )
    print(f"  Recip-e's peak load from its recovery: {peaks} (whole run: {whole})")
    print(
        f"  {f['refused']} of {f['offered']} requests to Recip-e refused with 503 +"
        f" Retry-After; wall time {f['wall']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    checked = load_scenario("mass-recovery")
    limit = checked.scenario.services[SERVICE].capacity or 0.0
    tolerance = checked.scenario.expect.peak_load or 0.0
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        limited = asyncio.run(_one(checked, args.seed, Path(folder) / "limited"))
        baseline = asyncio.run(
            _one(_limited(checked, UNLIMITED), args.seed, Path(folder) / "baseline")
        )
    _print("mass-recovery", limit, limited)
    print(f"  judged against {limit * (1 + tolerance):g}/s (limit + {tolerance:.0%})")
    _print("baseline, no limit reached", UNLIMITED, baseline)
    for name, figures in (("mass-recovery", limited), ("baseline", baseline)):
        if figures["errors"] > figures["requests"] * 0.05:
            raise SystemExit(
                f"{name}: the workload had {figures['errors']} errors: not a clean run"
            )


if __name__ == "__main__":
    main()
