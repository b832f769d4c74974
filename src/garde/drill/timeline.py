"""Plays a scenario's timeline in real time: lab faults through the control API (the lab heals
each by itself after its ``for``), and SIGKILL then restart of the runner's own processes.

Each moment played is kept as a ``Played`` window (real seconds from the start), which the
report shades on its plots and measures detection, failover and recovery against.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

from garde.drill.scenario import LAB_KINDS, PROCESS_KINDS, FaultEntry
from garde.drill.stack import Stack
from garde.drill.truth import LabControl


@dataclass(frozen=True, slots=True)
class Played:
    """One timeline entry as it was played."""

    start: float
    end: float
    kind: str
    service: str | None = None
    dc: str | None = None
    site: str | None = None
    note: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def windows(entry: FaultEntry, time_scale: float, real_duration: float) -> tuple[float, float]:
    start = entry.at / time_scale
    if entry.for_ is None:  # a lab fault lasts to the end; a process is restarted at once
        end = start if entry.kind in PROCESS_KINDS else real_duration
    else:
        end = start + entry.for_ / time_scale
    return start, min(end, real_duration)


class Timeline:
    def __init__(self, stack: Stack, lab: LabControl, t0: float) -> None:
        self.stack, self.lab, self.t0 = stack, lab, t0
        self.scenario = stack.checked.scenario
        self.played: list[Played] = []
        self.kills = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self) -> None:
        """Every entry at its moment; returns when the last has started (restarts go on)."""
        scale, real = self.scenario.time_scale, self.scenario.real_duration
        entries = sorted(self.scenario.timeline, key=lambda e: e.at)
        pending: set[asyncio.Task[None]] = set()
        try:
            for entry in entries:
                start, end = windows(entry, scale, real)
                await asyncio.sleep(max(0.0, start - self.now()))
                task = asyncio.create_task(self.play(entry, start, end))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending)
        finally:
            for task in pending:
                task.cancel()

    async def play(self, entry: FaultEntry, start: float, end: float) -> None:
        error = None
        if entry.kind in LAB_KINDS:
            options = entry.lab_options(self.scenario.time_scale)
            options["for"] = max(0.1, end - self.now())
            for service, dc in entry.targets(self.stack.checked.catalog):
                try:
                    await self.lab.fault(service, dc, entry.kind, options)
                except Exception as exc:  # recorded in the report: one refused fault is not fatal
                    error = str(exc)
                self.played.append(
                    Played(start, end, entry.kind, service, dc, note=entry.note, error=error)
                )
            return
        self.played.append(
            Played(start, end, entry.kind, site=entry.site, note=entry.note, dc=None)
        )
        if entry.kind == "kill_monitor":
            process = self.stack.monitor
            if process is not None:
                await process.kill()
                self.kills += 1
                await asyncio.sleep(max(0.0, end - self.now()))
                with contextlib.suppress(Exception):
                    await self.stack.start_monitor()
            return
        gateways = self.stack.gateways_of(entry.site or "", entry.gateway or 1)
        await asyncio.gather(*(g.process.kill() for g in gateways))
        self.kills += len(gateways)
        await asyncio.sleep(max(0.0, end - self.now()))
        await asyncio.gather(*(g.start() for g in gateways), return_exceptions=True)
