"""The running monitor: probes feed the state, the state feeds incidents and alerts, and
history is written in batches by a periodic ``tick`` (tests call ``tick`` with a moved clock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

from garde.catalog import Catalog
from garde.monitor.alerts import Notifier
from garde.monitor.clock import Clock, SystemClock
from garde.monitor.history import SERVICE_PREFIX, SERVICE_SAMPLE_INTERVAL, Aggregator, expand
from garde.monitor.incidents import Event, IncidentManager
from garde.monitor.maintenance import Calendar
from garde.monitor.probes import Prober, ProbeResult
from garde.monitor.scheduler import Scheduler
from garde.monitor.state import ServiceStatus, Snapshot, TargetStatus, TargetTracker, snapshot
from garde.monitor.store.base import Aggregate, Retention, Store
from garde.monitor.targets import ProbeSettings, Target, targets_from_catalog
from garde.signals import Signal

log = logging.getLogger("garde.monitor")


class Monitor:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        *,
        targets: Sequence[Target] | None = None,
        settings: ProbeSettings | None = None,
        clock: Clock | None = None,
        location: str = "local",
        quorum: int | None = None,
        retention: Retention | None = None,
        notifier: Notifier | None = None,
        push_tokens: dict[str, str] | None = None,
        probe_locally: bool = True,
        max_concurrency: int = 512,
        sample_interval: float = SERVICE_SAMPLE_INTERVAL,
        settle_factor: float = 2.0,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.clock = clock or SystemClock()
        self.targets = (
            list(targets) if targets is not None else targets_from_catalog(catalog, settings)
        )
        self.location = location
        self.tracker = TargetTracker(self.targets, quorum=quorum)
        self.retention = retention or Retention()
        self.notifier = notifier or Notifier()
        self.push_tokens = dict(push_tokens or {})
        """Location name -> token a remote ``garde probe`` must present to push results."""
        self.probe_locally = probe_locally
        self.max_concurrency = max_concurrency
        self.sample_interval = sample_interval
        self.calendar = Calendar(store.maintenances())
        intervals: dict[str, float] = {}
        for target in self.targets:
            intervals[target.service] = max(intervals.get(target.service, 0.0), target.interval)
        self.incidents = IncidentManager(
            catalog, store, self.calendar, settle_factor=settle_factor, intervals=intervals
        )
        self.aggregator = Aggregator()
        self.scheduler: Scheduler | None = None
        self._pending: list[ProbeResult] = []
        self._next_sample = 0.0
        self._next_prune = 0.0
        self._next_calendar = 0.0
        self._changed = True
        self._next_snapshot = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.results_ingested = 0
        self.recent_events: list[Event] = []
        self.incident_events: Signal[[Sequence[Event]]] = Signal("Monitor.incident_events")
        """Incidents opened, changed, resolved, updated by an operator (muted ones too):
        the subscriptions' deliveries listen. Fired on the event loop; a subscriber must
        return at once (send in a task of its own)."""
        self.snapshot: Snapshot = snapshot(catalog, self.tracker, self.clock.now())

    # -- input ---------------------------------------------------------------------------

    def ingest(self, result: ProbeResult) -> None:
        target = self.tracker.targets.get(result.target)
        if target is None:
            return
        if self.tracker.feed(result):
            self._changed = True
        in_maintenance = self.calendar.in_maintenance(result.at, target.service, target.dc)
        self.aggregator.add(result, in_maintenance, target.interval)
        self._pending.append(result)
        self.results_ingested += 1

    def ingest_many(self, results: Iterable[ProbeResult]) -> int:
        count = 0
        for result in results:
            self.ingest(result)
            count += 1
        return count

    # -- periodic work -------------------------------------------------------------------

    async def tick(self) -> list[Event]:
        """Write history, re-derive states, open/close incidents, send alerts."""
        now = self.clock.now()
        if now >= self._next_calendar:
            self.calendar.replace(await asyncio.to_thread(self.store.maintenances))
            self._next_calendar = now + 30.0
        # Re-deriving 5,000 targets costs tens of ms on the probes' loop: only when a target
        # changed state, or every few seconds (silent locations age out with time alone).
        if self._changed or now >= self._next_snapshot:
            self._changed = False
            self.snapshot = snapshot(self.catalog, self.tracker, now)
            self._next_snapshot = now + 5.0
        if now >= self._next_sample:
            self._sample_services(self.snapshot)
            self._next_sample = now + self.sample_interval
        raw, self._pending = self._pending, []
        minutes = self.aggregator.take_closed(now)
        if raw:
            await asyncio.to_thread(self.store.add_results, raw)
        if minutes:
            await asyncio.to_thread(self._write_minutes, minutes)
        events = await asyncio.to_thread(self.incidents.on_snapshot, self.snapshot)
        if events:
            self._remember(events)
            self._spawn(self.notifier.dispatch(events))
        if now >= self._next_prune:
            await asyncio.to_thread(self.store.prune, now, self.retention)
            self._next_prune = now + 3600.0
        return events

    def _write_minutes(self, minutes: list[Aggregate]) -> None:
        self.store.add_aggregates(expand(minutes))

    def _sample_services(self, snap: Snapshot) -> None:
        for sid, service in snap.services.items():
            latencies = [
                v.latency
                for v in snap.targets.values()
                if v.service == sid and v.latency is not None and v.status is not TargetStatus.DOWN
            ]
            sample = ProbeResult(
                SERVICE_PREFIX + sid,
                snap.at,
                ok=service.status is not ServiceStatus.OUTAGE,
                latency=min(latencies) if latencies else 0.0,
                slow=service.status in (ServiceStatus.DEGRADED, ServiceStatus.REDUCED_REDUNDANCY),
                location=self.location,
            )
            self.aggregator.add(
                sample, self.calendar.in_maintenance(snap.at, sid), self.sample_interval
            )

    def _remember(self, events: list[Event]) -> None:
        for event in events:
            incident = event.incident
            level = logging.WARNING if event.kind.value == "opened" else logging.INFO
            muted = " (under maintenance: not sent)" if event.muted else ""
            log.log(
                level, "incident #%d %s: %s%s", incident.id, event.kind.value, event.message, muted
            )
        self.recent_events.extend(events)
        del self.recent_events[:-200]
        self.incident_events.emit(events)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def notify(self, events: list[Event]) -> None:
        """Send events made outside ``tick`` (operator updates)."""
        self._remember(events)
        self._spawn(self.notifier.dispatch(events))

    async def flush(self) -> None:
        """Write everything held in memory (on shutdown)."""
        raw, self._pending = self._pending, []
        rows = self.aggregator.flush(self.clock.now(), everything=True)
        await asyncio.to_thread(self.store.add_results, raw)
        await asyncio.to_thread(self.store.add_aggregates, rows)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, tick_every: float = 1.0) -> None:
        """Probe (unless ``probe_locally`` is off) and tick until ``stop`` is set."""
        async with Prober(location=self.location, clock=self.clock) as prober:
            scheduler_task = None
            if self.probe_locally:
                self.scheduler = Scheduler(
                    self.targets,
                    prober.probe,
                    self.ingest,
                    clock=self.clock,
                    max_concurrency=self.max_concurrency,
                )
                scheduler_task = asyncio.create_task(self.scheduler.run(stop))
            try:
                while not stop.is_set():
                    try:
                        await self.tick()
                    except Exception:
                        # Keep probing whatever happens to the database or a channel.
                        log.exception("monitor tick failed; retrying")
                    sleeper = asyncio.ensure_future(self.clock.sleep(tick_every))
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    sleeper.cancel()
                    stopper.cancel()
            finally:
                if scheduler_task is not None:
                    await scheduler_task
                await self.flush()
