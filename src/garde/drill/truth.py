"""What really happened during a drill, read from the parts themselves.

The lab's ledger (through its control API) is the ground truth for loss and duplicates; the
gateways' ``/_garde/status`` and receipts say what garde did; the monitor's status and
incidents say what it saw. A ``Sampler`` polls gateways and monitor through the run, for the
report's curves (journal depth, data-center states). Every call is bounded in time; a part
that does not answer (it may have just been killed) gives a gap in the curve, not a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from garde.errors import DrillError

TIMEOUT = aiohttp.ClientTimeout(total=60)
"""Generous: a lab serving two dozen gateways' replays and health checks answers slowly."""
JSON_HEADERS = {"Content-Type": "application/json"}


class LabControl:
    """The lab's control API: faults in, ledger out."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body)
        try:
            async with self.session.request(
                method, self.url + path, data=data, headers=JSON_HEADERS, timeout=TIMEOUT
            ) as reply:
                raw = await reply.read()
                if reply.status >= 400:
                    raise DrillError(f"the lab refused {method} {path}: {raw[:300]!r}")
                if "ndjson" in reply.headers.get("Content-Type", ""):
                    return [json.loads(line) for line in raw.decode().splitlines() if line]
                return json.loads(raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DrillError(f"the lab's control API ({self.url}) did not answer: {exc}") from None

    async def endpoints(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = await self._call("GET", "/endpoints")
        return found

    async def fault(self, service: str, dc: str, kind: str, options: dict[str, Any]) -> None:
        await self._call("POST", "/faults", {"service": service, "dc": dc, "kind": kind, **options})

    async def heal(self) -> None:
        await self._call("DELETE", "/faults")

    async def capacity(self, service: str, rate: float, retry_after: float) -> None:
        """Limit each data center of ``service`` to ``rate`` requests per second."""
        body = {"rate": rate, "retry_after": retry_after}
        await self._call("PUT", f"/capacity/{service}", body)

    async def load(self) -> list[dict[str, Any]]:
        """The load each metered (service, data center) was offered, per second."""
        found: list[dict[str, Any]] = await self._call("GET", "/load")
        return found

    async def ledger(self) -> list[dict[str, Any]]:
        """Every effect the chain applied, in order."""
        effects: list[dict[str, Any]] = await self._call("GET", "/ledger/export")
        return effects


async def get_json(session: aiohttp.ClientSession, url: str, timeout: float = 3.0) -> Any:
    """The JSON at ``url``, or None if it does not answer (in time) or answers an error."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as reply:
            if reply.status == 200:
                return await reply.json(content_type=None)
    return None


@dataclass
class Samples:
    """Curves sampled through the run, at seconds from the timeline's start."""

    depth: list[tuple[float, int]] = field(default_factory=list)
    """(t, journal entries waiting over every gateway that answered)."""
    depth_by_service: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    dc_states: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """``service@dc`` -> (t, the monitor's state) at each change."""
    modes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """service -> (t, the worst mode any gateway is in) at each change."""


class Sampler:
    """Polls the gateways' status and the monitor's, every ``interval`` seconds."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        gateways: list[str],
        monitor: str | None,
        t0: float,
        interval: float = 0.5,
        journals: list[str] | None = None,
    ) -> None:
        self.session = session
        self.gateways = gateways
        self.journals = journals or gateways
        """The journal of each gateway: gateways sharing one (PostgreSQL) count it once."""
        self.monitor = monitor
        self.t0 = t0
        self.interval = interval
        self.samples = Samples()
        self.last_depth = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            await self.sample()
            wait = max(0.05, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def sample(self) -> None:
        t = self.now()
        statuses = await asyncio.gather(
            *(get_json(self.session, url + "/_garde/status") for url in self.gateways)
        )
        depths: dict[tuple[str, str], int] = {}
        modes: dict[str, list[str]] = {}
        for journal, status in zip(self.journals, statuses, strict=True):
            if not isinstance(status, dict):
                continue
            for sid, entry in status.get("services", {}).items():
                depth = entry.get("journal_depth") or 0
                depths[(journal, sid)] = max(depths.get((journal, sid), 0), depth)
                modes.setdefault(sid, []).append(str(entry.get("mode", "")))
        by_service: dict[str, int] = {}
        for (_, sid), depth in depths.items():
            by_service[sid] = by_service.get(sid, 0) + depth
        total = sum(by_service.values())
        if any(isinstance(s, dict) for s in statuses):
            self.last_depth = total
            self.samples.depth.append((t, total))
            for sid, depth in by_service.items():
                self.samples.depth_by_service.setdefault(sid, []).append((t, depth))
            for sid, seen in modes.items():
                _change(self.samples.modes, sid, t, _worst(seen))
        if self.monitor is not None:
            found = await get_json(self.session, self.monitor + "/api/v1/status")
            if isinstance(found, dict):
                for tid, target in found.get("targets", {}).items():
                    if "@" in tid and not tid.startswith("tls:"):
                        _change(self.samples.dc_states, tid, t, str(target.get("status")))
            else:
                for tid in self.samples.dc_states:
                    _change(self.samples.dc_states, tid, t, "unknown")

    async def depth_now(self) -> int | None:
        """Entries waiting in every journal now; None if a gateway does not answer."""
        statuses = await asyncio.gather(
            *(get_json(self.session, url + "/_garde/status") for url in self.gateways)
        )
        if any(not isinstance(s, dict) for s in statuses):
            return None
        depths: dict[tuple[str, str], int] = {}
        for journal, status in zip(self.journals, statuses, strict=True):
            for sid, entry in status.get("services", {}).items():
                key = (journal, sid)
                depths[key] = max(depths.get(key, 0), entry.get("journal_depth") or 0)
        return sum(depths.values())


_ORDER = ("normal", "degraded", "offline")


def _worst(modes: list[str]) -> str:
    ranked = [m for m in modes if m]
    return max(ranked, key=lambda m: _ORDER.index(m) if m in _ORDER else 1) if ranked else ""


def _change(series: dict[str, list[tuple[float, str]]], key: str, t: float, value: str) -> None:
    points = series.setdefault(key, [])
    if not points or points[-1][1] != value:
        points.append((t, value))


async def receipts(session: aiohttp.ClientSession, wanted: dict[str, list[str]]) -> dict[str, str]:
    """The state of each receipt, asked of the gateway that gave it (``{url: [ids]}``);
    ``missing`` when the gateway has no such receipt, ``unknown`` when it does not answer."""
    found: dict[str, str] = {}
    semaphore = asyncio.Semaphore(16)

    async def one(url: str, receipt: str) -> None:
        async with semaphore:
            try:
                async with session.get(
                    f"{url}/_garde/receipts/{receipt}", timeout=aiohttp.ClientTimeout(total=5)
                ) as reply:
                    if reply.status == 404:
                        found[receipt] = "missing"
                    elif reply.status == 200:
                        found[receipt] = str((await reply.json(content_type=None))["state"])
                    else:
                        found[receipt] = "unknown"
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                found[receipt] = "unknown"

    await asyncio.gather(*(one(url, r) for url, ids in wanted.items() for r in ids))
    return found


async def incidents(session: aiohttp.ClientSession, monitor: str | None) -> list[dict[str, Any]]:
    if monitor is None:
        return []
    found = await get_json(session, monitor + "/api/v1/incidents", timeout=5)
    return list(found.get("incidents", [])) if isinstance(found, dict) else []
