"""Runs a drill: builds the chain (``stack``), prepares the morning (``seed``), plays the
timeline and the sites' workload at once, waits for recovery and the journals' drain, then
collects the truth (``truth``) for the report.

Bounded in time: the scenario's real duration, then at most ``drain_bound`` seconds of drain.
Whatever happens (a process that will not start, Ctrl-C, a bug here), every process it
started is stopped before ``run_drill`` returns or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from garde.drill import people, seed
from garde.drill.procs import stop_all
from garde.drill.scenario import CheckedScenario
from garde.drill.stack import Stack
from garde.drill.timeline import Played, Timeline
from garde.drill.truth import LabControl, Sampler, Samples, incidents, receipts
from garde.drill.workload import JOURNALED, Call, Pool, Site
from garde.errors import DrillError

Hook = Callable[["Stack", "Run"], Awaitable[None]]


@dataclass
class Progress:
    """What the runner is doing, for a progress display."""

    phase: str = "starting"
    elapsed: float = 0.0
    total: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    depth: int = 0


@dataclass
class Run:
    """Everything a drill saw, raw: the report is computed from this alone."""

    checked: CheckedScenario
    seed: int
    no_workload: bool
    started_at: float = 0.0
    """Unix time of the timeline's start (t = 0)."""
    real_duration: float = 0.0
    ended_at: float = 0.0
    """Seconds from t = 0 when collection began."""
    drained_at: float | None = None
    """Seconds from t = 0 when every journal was first seen empty after the timeline."""
    calls: list[Call] = field(default_factory=list)
    played: list[Played] = field(default_factory=list)
    samples: Samples = field(default_factory=Samples)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    """The lab's meter (``GET /load``) of each service given a capacity."""
    receipts: dict[str, str] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)
    """``service.operation`` -> writes the gateways answered 202 (their counters, read at the
    end): what garde says it acknowledged, for a drill without workload."""
    journal_entries: list[dict[str, Any]] = field(default_factory=list)
    """Every entry of every journal at the end (``garde journal export``): state and
    idempotency key of each write a gateway acknowledged with 202."""
    gateways: list[dict[str, str]] = field(default_factory=list)
    kills: int = 0
    seeded: int = 0
    t0: float = 0.0
    """``time.monotonic()`` at t = 0 (set when the timeline starts)."""

    def clock(self) -> float:
        """Seconds from the timeline's start: the clock of every call and sample."""
        return time.monotonic() - self.t0


AFTER = 10.0
"""Seconds the sites keep working once the timeline is over: a fault that lasts to the end
of the scenario must be seen to heal (its services served again) for recovery to be timed."""


def drain_bound(checked: CheckedScenario) -> float:
    """Longest wait for the journals to drain once the timeline ends."""
    expect = checked.scenario.expect
    return max(30.0, (expect.drain or 60.0) * 1.5)


async def run_drill(
    checked: CheckedScenario,
    run_dir: Path,
    *,
    seed_value: int = 1,
    no_workload: bool = False,
    progress: Callable[[Progress], None] | None = None,
    hooks: list[tuple[float, Hook]] | None = None,
    on_ready: Callable[[Stack], None] | None = None,
    linger: Hook | None = None,
) -> Run:
    """Play ``checked`` on real processes; ``hooks`` run at their real second (tests);
    ``linger`` runs once the truth is collected, with everything still up (``garde demo``
    serves the status page and the report meanwhile), until it returns or is cancelled."""
    run = Run(checked, seed_value, no_workload, real_duration=checked.scenario.real_duration)
    state = Progress(total=run.real_duration)
    stack = Stack(checked, run_dir)
    rng = random.Random(seed_value)  # noqa: S311 - a reproducible workload, not a secret

    def report(phase: str | None = None) -> None:
        if phase is not None:
            state.phase = phase
        if progress is not None:
            progress(state)

    try:
        report("starting the lab")
        await stack.start_lab()
        async with aiohttp.ClientSession() as session:
            lab = LabControl(session, stack.control)
            report("starting the gateways and the monitor")
            await stack.start_parts(await lab.endpoints())
            run.gateways = [{"site": g.site, "url": g.url} for g in stack.gateways]
            stack.write_endpoints()
            if on_ready is not None:
                on_ready(stack)
            sites = await _prepare(stack, session, run, rng, report)
            # The services' capacities hold for the whole timeline, not the morning's setup.
            for service, settings in run.checked.scenario.services.items():
                if settings.capacity is not None:
                    await lab.capacity(service, settings.capacity, settings.retry_after)
            await _play(stack, session, lab, run, sites, state, report, hooks or [])
            report("collecting the truth")
            await _collect(stack, session, lab, run)
            if linger is not None:
                report("serving until interrupted")
                await linger(stack, run)
    finally:
        report("stopping")
        await stop_all(stack.processes)
        await asyncio.to_thread(stack.drop_schemas)
    return run


async def _prepare(
    stack: Stack,
    session: aiohttp.ClientSession,
    run: Run,
    rng: random.Random,
    report: Callable[[str | None], None],
) -> list[Site]:
    if run.no_workload:
        return []
    report("preparing the morning (prescriptions, therapeutic links)")
    assert stack.wired is not None
    patients = people.patients(rng, 20)
    direct = seed.Direct(session, stack.wired, stack.endpoints)
    pool = Pool()
    needed = _deliveries(stack.checked, run.real_duration)
    if needed:
        pool.open.extend(await seed.prescriptions(direct, people.PRESCRIBER, patients, needed))
        run.seeded = len(pool.open)
    hospitals = [s.identity for s in stack.sites if _plays(stack, s.site, "hub.")]
    if hospitals:
        await seed.links(direct, hospitals, patients)
    sites = []
    for copy in stack.sites:
        workload = next(s for s in stack.checked.scenario.sites if s.name == copy.site).workload
        if workload is None:
            continue
        sites.append(
            Site(
                name=copy.name,
                group=copy.group,
                identity=copy.identity,
                gateways=[g.url for g in copy.gateways],
                mix=dict(workload.mix),
                rate=workload.rate,
                think_time=workload.think_time,
                catalog=stack.wired,
                pool=pool,
                patients=patients,
                rng=random.Random(rng.random()),  # noqa: S311 - as above
                record=run.calls.append,
                clock=run.clock,
            )
        )
    await asyncio.gather(*(site.warm(session) for site in sites))
    return sites


def _plays(stack: Stack, site: str, prefix: str) -> bool:
    found = next(s for s in stack.checked.scenario.sites if s.name == site)
    return found.workload is not None and any(op.startswith(prefix) for op in found.workload.mix)


def _deliveries(checked: CheckedScenario, seconds: float) -> int:
    """Prescriptions the pharmacies may read or deliver during the drill (with a margin)."""
    total = 0.0
    for site in checked.scenario.sites:
        if site.workload is None:
            continue
        mix = site.workload.mix
        weight = sum(w for op, w in mix.items() if op.startswith("recipe-executor.") and
                     op.endswith(("getPrescriptionForExecutor", "markAsDelivered")))  # fmt: skip
        total += site.workload.rate * site.copies * seconds * weight / sum(mix.values())
    return min(3000, int(total * 1.2) + (10 if total else 0))


async def _play(
    stack: Stack,
    session: aiohttp.ClientSession,
    lab: LabControl,
    run: Run,
    sites: list[Site],
    state: Progress,
    report: Callable[[str | None], None],
    hooks: list[tuple[float, Hook]],
) -> None:
    t0 = time.monotonic()
    run.t0 = t0
    run.started_at = time.time()
    urls = [g.url for g in stack.gateways]
    interval = 0.5 if len(urls) <= 8 else 1.0
    journals = [g.journal for g in stack.gateways]
    sampler = Sampler(session, urls, stack.monitor_url, t0, interval, journals)
    timeline = Timeline(stack, lab, t0)
    stop_sampling = asyncio.Event()
    real = run.real_duration

    def tick() -> None:
        state.elapsed = time.monotonic() - t0
        state.depth = sampler.last_depth
        state.outcomes = Counter(c.outcome for c in run.calls)
        report(None)

    async def ticker() -> None:
        while True:
            tick()
            await asyncio.sleep(0.5)

    async def hook(at: float, body: Hook) -> None:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
        await body(stack, run)

    background = [
        asyncio.create_task(sampler.run(stop_sampling)),
        asyncio.create_task(ticker()),
    ]
    report("playing the timeline")
    playing = [asyncio.create_task(timeline.run())]
    playing += [asyncio.create_task(site.run(session, real + AFTER)) for site in sites]
    playing += [asyncio.create_task(hook(at, body)) for at, body in hooks]
    try:
        await asyncio.sleep(max(0.0, real - (time.monotonic() - t0)))
        # The scenario is over: whatever fault is left heals now (each would anyway, at the
        # end of its `for`: a lab too busy to answer in time does not stop the drill).
        with contextlib.suppress(DrillError):
            await lab.heal()
        report("draining the journals")
        await asyncio.wait(playing, timeout=max(5.0, drain_bound(stack.checked)))
        run.drained_at = await _drained(sampler, t0, drain_bound(stack.checked), run)
    finally:
        for task in playing:
            task.cancel()
        stop_sampling.set()
        await asyncio.gather(*background[:1], return_exceptions=True)
        background[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background[1]
    run.played = timeline.played
    run.kills = timeline.kills
    run.samples = sampler.samples
    run.ended_at = time.monotonic() - t0


async def _drained(sampler: Sampler, t0: float, bound: float, run: Run) -> float | None:
    """When every journal was empty and every 202 of the workload settled (a receipt no
    longer waiting); None if not within ``bound`` seconds of the timeline's end."""
    deadline = t0 + run.real_duration + bound
    while time.monotonic() < deadline:
        depth = await sampler.depth_now()
        if depth == 0:
            return time.monotonic() - t0
        await asyncio.sleep(0.25)
    return None


async def _collect(stack: Stack, session: aiohttp.ClientSession, lab: LabControl, run: Run) -> None:
    run.ledger = await lab.ledger()
    if run.checked.scenario.services:
        run.load = await lab.load()
    wanted: dict[str, list[str]] = {}
    for call in run.calls:
        if call.outcome == JOURNALED and call.receipt:
            wanted.setdefault(call.gateway, []).append(call.receipt)
    run.receipts = await receipts(session, wanted)
    run.incidents = await incidents(session, stack.monitor_url)
    run.acknowledged = await _acknowledged(session, [g.url for g in stack.gateways])
    for journal in sorted({g.journal for g in stack.gateways}):
        run.journal_entries += await _export(journal)


async def _export(journal: str) -> list[dict[str, Any]]:
    """Every entry of one journal, read with ``garde journal export`` (identifiers masked)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "garde", "journal", "export", "--journal", journal,
        "--journal-no-encryption",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        return []
    found = []
    for line in output.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found


async def _acknowledged(session: aiohttp.ClientSession, urls: list[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for url in urls:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
                for line in (await r.text()).splitlines():
                    head = line.startswith("garde_gateway_requests_total{")
                    if head and 'outcome="journaled"' in line:
                        labels, _, value = line.rpartition(" ")
                        service = labels.split('service="', 1)[1].split('"', 1)[0]
                        operation = labels.split('operation="', 1)[1].split('"', 1)[0]
                        counts[f"{service}.{operation}"] += int(float(value))
    return dict(counts)
