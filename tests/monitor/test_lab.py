"""The monitor against the lab: real SOAP services behind fault proxies, real STS tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.lab import Lab, lab_in_thread
from garde.monitor.alerts import Notifier
from garde.monitor.incidents import Event
from garde.monitor.service import Monitor
from garde.monitor.state import ServiceStatus
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.targets import ProbeSettings


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def lab(belgium: Catalog) -> Iterator[Lab]:
    with lab_in_thread(belgium) as running:
        yield running


@pytest.fixture
def chain(lab: Lab, belgium: Catalog) -> Iterator[Catalog]:
    lab.faults.heal()
    yield belgium.with_endpoints(lab.endpoints)
    lab.faults.heal()


def watch(monitor: Monitor, condition: Callable[[Monitor], bool], timeout: float = 20.0) -> None:
    """Run the monitor (real probes, real clock) until ``condition`` holds."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(monitor.run(stop, tick_every=0.1))
        deadline = time.monotonic() + timeout
        try:
            while not condition(monitor):
                if time.monotonic() > deadline:
                    raise AssertionError(f"condition not met in {timeout}s: {monitor.snapshot}")
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task

    asyncio.run(main())


def make(chain: Catalog, tmp_path: Path, **settings: float) -> tuple[Monitor, Recorder]:
    recorder = Recorder()
    monitor = Monitor(
        chain,
        SqliteStore(tmp_path / "m.sqlite"),
        notifier=Notifier([recorder]),
        settings=ProbeSettings(interval_override=0.2, **settings),  # type: ignore[arg-type]
    )
    return monitor, recorder


def status(service: str) -> Callable[[Monitor], ServiceStatus]:
    return lambda m: m.snapshot.services[service].status


def test_healthy_lab_is_operational_with_real_tokens(chain: Catalog, tmp_path: Path) -> None:
    monitor, _ = make(chain, tmp_path)
    watch(monitor, lambda m: all(v.status.value == "up" for v in m.snapshot.targets.values()))
    assert monitor.snapshot.overall is ServiceStatus.OPERATIONAL


def test_one_data_center_down_is_reduced_redundancy(
    lab: Lab, chain: Catalog, tmp_path: Path
) -> None:
    lab.faults.set("recipe-prescriber", "dc2", "down")
    monitor, _ = make(chain, tmp_path)
    watch(monitor, lambda m: status("recipe-prescriber")(m) is ServiceStatus.REDUCED_REDUNDANCY)
    watch(monitor, lambda m: bool(m.store.incidents(open_only=True)))
    (incident,) = monitor.store.incidents(open_only=True)
    assert incident.severity == "minor"


def test_sts_down_everywhere_is_one_incident_and_one_alert(
    lab: Lab, chain: Catalog, tmp_path: Path
) -> None:
    """The 27 January 2020 outage: the STS alone fails, and every service behind it stops."""
    for dc in chain.services["sts"].endpoints:
        lab.faults.set("sts", dc, "down")
    monitor, recorder = make(chain, tmp_path)
    deadline = time.monotonic() + 2.0
    watch(
        monitor,
        lambda m: (
            status("sts")(m) is ServiceStatus.OUTAGE
            and m.snapshot.services["recipe-executor"].impacted_by == ("sts",)
            and len(m.store.incidents(open_only=True)) == 1
        ),
    )
    # Longer than any dependant's settle time: no late incident of their own may follow.
    watch(monitor, lambda m: time.monotonic() > deadline, timeout=5)
    opened = [e.incident.service for e in recorder.events if e.kind.value == "incident.opened"]
    assert opened == ["sts"]
    (incident,) = monitor.store.incidents(open_only=True)
    assert {"recipe-executor", "insurability", "eattest"} <= set(incident.impacted)
    pharmacist = monitor.snapshot.impact(chain).groups["pharmacist"]
    assert pharmacist.status.value == "stopped"

    lab.faults.heal(service="sts")
    watch(monitor, lambda m: m.snapshot.overall is ServiceStatus.OPERATIONAL)
    watch(monitor, lambda m: not m.store.incidents(open_only=True))
    kinds = [e.kind.value for e in recorder.events]
    # Opened, perhaps escalated (its data centers cross the threshold one after the other)
    # and partly recovered, resolved: only status changes alert, never one per dependant
    # or per data center.
    assert kinds[0] == "incident.opened"
    assert kinds[-1] == "incident.resolved"
    assert kinds.count("incident.updated") <= 2
    assert {e.incident.service for e in recorder.events} == {"sts"}


def test_slow_answers_everywhere_are_degraded(lab: Lab, chain: Catalog, tmp_path: Path) -> None:
    for dc in chain.services["insurability"].endpoints:
        lab.faults.set("insurability", dc, "latency", latency="300ms")
    # Threshold: 2 % of the 5 s probe timeout, i.e. 100 ms.
    monitor, _ = make(chain, tmp_path, latency_factor=0.02)
    watch(monitor, lambda m: status("insurability")(m) is ServiceStatus.DEGRADED)
    assert monitor.snapshot.services["sts"].status is ServiceStatus.OPERATIONAL
