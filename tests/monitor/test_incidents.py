"""Incidents, alerts, dependency suppression and maintenance, through the running pipeline:
results are fed in, the clock is moved, ``tick`` does the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.monitor.alerts import Notifier
from garde.monitor.clock import ManualClock
from garde.monitor.incidents import Event, EventKind
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.store.base import IncidentState, Resolution, Store
from garde.monitor.store.sqlite import SqliteStore


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        self.events.append(event)


class Harness:
    def __init__(self, catalog: Catalog, store: Store) -> None:
        self.clock = ManualClock()
        self.recorder = Recorder()
        self.monitor = Monitor(
            catalog,
            store,
            clock=self.clock,
            notifier=Notifier([self.recorder]),
            probe_locally=False,
            settle_factor=1.0,  # 10 s rounds: open one round after the threshold
        )

    def round(self, failing: Callable[[str], bool] = lambda t: False, seconds: float = 10) -> None:
        """One probe round of every target, then a tick, then the clock moves on."""
        now = self.clock.now()
        for tid in self.monitor.tracker.targets:
            bad = failing(tid)
            self.monitor.ingest(
                ProbeResult(tid, now, not bad, 0.02, error="HTTP 503" if bad else None)
            )
        asyncio.run(self._tick())
        self.clock.advance(seconds)

    async def _tick(self) -> None:
        await self.monitor.tick()
        await self.monitor.flush()

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.kind.value, e.incident.service) for e in self.recorder.events]


@pytest.fixture
def harness(belgium: Catalog, tmp_path: Path) -> Harness:
    return Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))


def test_outage_opens_one_incident_backdated_then_resolves(harness: Harness) -> None:
    harness.round()
    start = harness.clock.now()
    for _ in range(4):
        harness.round(lambda t: t.startswith("recipe-executor@"))
    store = harness.monitor.store
    (incident,) = store.incidents(open_only=True)
    assert incident.service == "recipe-executor"
    assert incident.severity == "major"
    assert incident.started_at == start, "back-dated to the first failure"
    assert "pharmacist" in incident.groups
    for _ in range(3):
        harness.round()
    assert store.incidents(open_only=True) == []
    assert store.incident(incident.id).state is IncidentState.RESOLVED
    assert harness.kinds() == [
        ("incident.opened", "recipe-executor"),
        ("incident.resolved", "recipe-executor"),
    ]


def test_sts_outage_is_one_alert_not_twenty(harness: Harness) -> None:
    """Every dependant fails too (no token), but only the STS gets an incident and alerts;
    dependants are still monitored (their state and history are recorded)."""
    harness.round()
    sts_and_dependants = (
        "sts@",
        "recipe-",
        "insurability@",
        "eattest@",
        "efact@",
        "hub@",
        "ehbox",
        "chapter4",
        "etarif@",
        "memberdata@",
    )  # not etk (public, no token) nor kgss (probed by a WSDL GET, which needs none)
    for _ in range(4):
        harness.round(lambda t: t.startswith(sts_and_dependants))
    snap = harness.monitor.snapshot
    assert snap.services["recipe-executor"].impacted_by == ("sts",)
    opened = [k for k in harness.kinds() if k[0] == "incident.opened"]
    assert opened == [("incident.opened", "sts")]
    (incident,) = harness.monitor.store.incidents(open_only=True)
    assert "recipe-executor" in incident.impacted
    assert "insurability" in incident.impacted
    rows = harness.monitor.store.aggregates(Resolution.MINUTE, 0, targets=["recipe-executor@dc1"])
    assert sum(r.n for r in rows) >= 5, "dependants are still probed and recorded"
    for _ in range(3):
        harness.round()
    assert ("incident.resolved", "sts") in harness.kinds()


def test_flapping_target_sends_no_alert(harness: Harness) -> None:
    harness.round()
    for i in range(30):
        harness.round(lambda t, i=i: t == "insurability@dc1" and i % 2 == 0)  # type: ignore[misc]
    assert harness.recorder.events == []
    assert harness.monitor.store.incidents() == []


def test_one_dc_down_is_a_minor_incident_not_an_outage(harness: Harness) -> None:
    harness.round()
    for _ in range(4):
        harness.round(lambda t: t == "recipe-executor@dc2")
    (incident,) = harness.monitor.store.incidents(open_only=True)
    assert incident.severity == "minor"
    assert "reduced redundancy" in incident.title
    assert "dc2" in incident.title


def test_maintenance_mutes_alerts_but_not_resolutions_and_is_excluded(
    harness: Harness,
) -> None:
    now = harness.clock.now()
    harness.monitor.store.add_maintenance("SAN swap", ["recipe-executor"], now, now + 600)
    harness.round()
    for _ in range(4):
        harness.round(lambda t: t.startswith("recipe-executor@"))
    (incident,) = harness.monitor.store.incidents(open_only=True)
    assert incident.in_maintenance
    assert harness.recorder.events == [], "alerts muted during maintenance"
    assert harness.monitor.notifier.muted >= 1
    for _ in range(3):
        harness.round()
    assert harness.kinds() == [("incident.resolved", "recipe-executor")]
    rows = harness.monitor.store.aggregates(
        Resolution.DAY, 0, targets=["recipe-executor@dc1", "service:recipe-executor"]
    )
    for row in rows:
        assert row.n == row.up, "failures during maintenance are excluded from availability"
        assert row.maint > 0


def test_operator_update_is_added_and_notified(harness: Harness) -> None:
    harness.round()
    for _ in range(4):
        harness.round(lambda t: t.startswith("sts@"))
    (incident,) = harness.monitor.store.incidents(open_only=True)
    event = harness.monitor.incidents.operator_update(
        incident.id, "SAN failure identified", "ops", harness.clock.now(), "identified"
    )
    assert event.kind is EventKind.OPERATOR_UPDATE
    statuses = [u.status for u in harness.monitor.store.incident(incident.id).updates]
    assert statuses[-1] == "identified"


def test_incidents_survive_a_restart(belgium: Catalog, tmp_path: Path) -> None:
    first = Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))
    first.round()
    for _ in range(4):
        first.round(lambda t: t.startswith("hub@"))
    second = Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))
    second.clock = first.clock
    second.monitor.clock = first.clock
    for _ in range(3):
        second.round()
    assert second.kinds() == [("incident.resolved", "hub")]


def test_dependant_crossing_its_threshold_first_gets_no_incident(harness: Harness) -> None:
    """Recip-e's probes (no token) fail a round before the STS's own: the settle time lets
    the STS's failure explain them, so there is still one incident and one alert."""
    harness.round()
    harness.round(lambda t: t.startswith("recipe-executor@"))
    for _ in range(5):
        harness.round(lambda t: t.startswith(("recipe-executor@", "sts@")))
    assert [k for k in harness.kinds() if k[0] == "incident.opened"] == [("incident.opened", "sts")]


def test_the_whole_pipeline_on_every_store(belgium: Catalog, store: Store) -> None:
    """Incidents, history and maintenance through the monitor, on SQLite and PostgreSQL."""
    harness = Harness(belgium, store)
    now = harness.clock.now()
    store.add_maintenance("dc3 patching", ["*"], now + 86400, now + 90000, rrule="FREQ=WEEKLY")
    harness.round()
    for _ in range(4):
        harness.round(lambda t: t.startswith("insurability@"))
    for _ in range(3):
        harness.round()
    assert harness.kinds() == [
        ("incident.opened", "insurability"),
        ("incident.resolved", "insurability"),
    ]
    rows = store.aggregates(Resolution.DAY, 0, targets=["service:insurability"])
    assert sum(r.n for r in rows) == 8
    assert sum(r.up for r in rows) == 5


def test_only_status_changes_alert_not_each_data_center(harness: Harness) -> None:
    """dc1, then dc2 down (still reduced redundancy: one alert), then dc3 (outage: one more)."""
    harness.round()
    for _ in range(4):
        harness.round(lambda t: t == "recipe-executor@dc1")
    for _ in range(4):
        harness.round(lambda t: t in ("recipe-executor@dc1", "recipe-executor@dc2"))
    for _ in range(4):
        harness.round(lambda t: t.startswith("recipe-executor@"))
    assert [k for k, _ in harness.kinds()] == ["incident.opened", "incident.updated"]
    (incident,) = harness.monitor.store.incidents(open_only=True)
    assert len(incident.updates) == 3, "every change is in the timeline"


def test_an_outage_keeps_its_title_when_it_recovers_through_reduced_redundancy(
    belgium: Catalog, store: Store
) -> None:
    """Recip-e down everywhere, then only dc2, then back: the register, the API, the Atom
    feed and ``garde incident`` call it an outage (not "reduced redundancy, dc2 down; the
    others serve"), and its timeline has the three changes in order."""
    from click.testing import CliRunner
    from lxml import etree
    from starlette.testclient import TestClient

    from garde.cli import cli
    from garde.monitor.web.app import create_app
    from tests.monitor.test_figures import db_url

    harness = Harness(belgium, store)
    harness.round()
    for _ in range(4):
        harness.round(lambda t: t.startswith("recipe-executor@"))
    for _ in range(3):
        harness.round(lambda t: t == "recipe-executor@dc2")
    for _ in range(3):
        harness.round()
    outage = "Recip-e executor v4: outage, no data center answers"
    reduced = "Recip-e executor v4: reduced redundancy, dc2 down; the others serve"
    assert harness.kinds() == [
        ("incident.opened", "recipe-executor"),
        ("incident.updated", "recipe-executor"),
        ("incident.resolved", "recipe-executor"),
    ]
    (updated,) = [e for e in harness.recorder.events if e.kind is EventKind.UPDATED]
    assert updated.message == reduced, "the alert says what changed"
    assert updated.incident.title == outage, "its subject, how bad it got"

    c = TestClient(create_app(harness.monitor))
    (incident,) = c.get("/api/v1/incidents").json()["incidents"]
    assert incident["title"] == outage
    assert incident["worst_status"] == "outage"
    assert incident["severity"] == "major"
    assert incident["state"] == "resolved"
    timeline = [(u["status"], u["message"]) for u in incident["updates"]]
    assert timeline == [
        ("outage", outage),
        ("reduced_redundancy", reduced),
        ("resolved", "Recip-e executor v4: operational again"),
    ]

    register = etree.HTML(c.get("/").text).xpath(f'//tr[@id="register-{incident["id"]}"]')[0]
    assert outage in "".join(register.itertext())
    assert "reduced redundancy" not in "".join(register.itertext())

    atom = {"a": "http://www.w3.org/2005/Atom"}
    (entry,) = etree.fromstring(c.get("/feed.atom").content).xpath("//a:entry", namespaces=atom)
    assert entry.findtext("a:title", namespaces=atom) == f"[resolved] {outage}"
    summary = entry.findtext("a:summary", namespaces=atom)
    assert summary.startswith(f"{outage} (major). Started ")
    assert "resolved" in summary
    content = entry.findtext("a:content", namespaces=atom).splitlines()
    assert [line.split(" ", 1)[1] for line in content] == [
        f"outage: {outage}",
        f"reduced_redundancy: {reduced}",
        "resolved: Recip-e executor v4: operational again",
    ]

    listed = CliRunner().invoke(cli, ["incident", "list", "--db", db_url(store)])
    assert listed.exit_code == 0, listed.output
    (line,) = listed.output.splitlines()
    assert line.endswith(f"[resolved] {outage}")
    shown = CliRunner().invoke(
        cli, ["incident", "show", str(incident["id"]), "--db", db_url(store)]
    )
    lines = shown.output.splitlines()
    assert lines[0].startswith(f"#{incident['id']} {outage} (major, resolved)")
    # Each update: its Belgian time with the offset (2026-01-28 09:38 +01:00), then its words.
    assert [x.strip().split(" ", 3)[3] for x in lines[2:]] == [
        f"outage: {outage}",
        f"reduced_redundancy: {reduced}",
        "resolved: Recip-e executor v4: operational again",
    ]


def test_a_worse_moment_retitles_a_milder_one_never(harness: Harness) -> None:
    """dc1 down, then dc1 and dc2, then only dc2, then every data center: the title follows
    each worse moment (two data centers down is worse than one) and never a milder one."""
    store = harness.monitor.store
    harness.round()
    titles = []
    for failing in (
        {"recipe-executor@dc1"},
        {"recipe-executor@dc1", "recipe-executor@dc2"},
        {"recipe-executor@dc2"},
        {"recipe-executor@dc1", "recipe-executor@dc2", "recipe-executor@dc3"},
    ):
        for _ in range(4):
            harness.round(lambda t, failing=failing: t in failing)  # type: ignore[misc]
        (incident,) = store.incidents(open_only=True)
        titles.append((incident.title.split(": ", 1)[1], incident.worst_status))
    assert titles == [
        ("reduced redundancy, dc1 down; the others serve", "reduced_redundancy"),
        ("reduced redundancy, dc1, dc2 down; the others serve", "reduced_redundancy"),
        ("reduced redundancy, dc1, dc2 down; the others serve", "reduced_redundancy"),
        ("outage, no data center answers", "outage"),
    ]
    (incident,) = store.incidents(open_only=True)
    assert incident.severity == "major"
    assert [u.message.split(": ", 1)[1] for u in incident.updates] == [
        "reduced redundancy, dc1 down; the others serve",
        "reduced redundancy, dc1, dc2 down; the others serve",
        "reduced redundancy, dc2 down; the others serve",
        "outage, no data center answers",
    ]


def test_the_worst_moment_survives_a_restart(belgium: Catalog, tmp_path: Path) -> None:
    """A monitor restarted while an outage recovers keeps the outage as the title, and does
    not add a timeline entry or an alert for a state it had already recorded."""
    first = Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))
    first.round()
    for _ in range(4):
        first.round(lambda t: t.startswith("hub@"))
    for _ in range(3):
        first.round(lambda t: t == "hub@dc2")
    second = Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))
    second.clock = first.clock
    second.monitor.clock = first.clock
    # The restarted monitor learns the states again (hysteresis) before its first tick.
    for _ in range(3):
        for tid in second.monitor.tracker.targets:
            ok = tid != "hub@dc2"
            second.monitor.ingest(ProbeResult(tid, second.clock.now(), ok, 0.02))
        second.clock.advance(10)
    for _ in range(3):
        second.round()
    (incident,) = second.monitor.store.incidents()
    assert (
        incident.title
        == "Hub (RSW, RSB/Abrumet, Vitalink) with SumEHR: outage, no data center answers"
    )
    assert [u.status for u in incident.updates] == ["outage", "reduced_redundancy", "resolved"]
    assert second.kinds() == [("incident.resolved", "hub")]


def test_a_restart_during_an_outage_neither_resolves_nor_reopens_it(
    belgium: Catalog, tmp_path: Path
) -> None:
    """The restarted monitor does not know its data centers' states until it has probed them
    enough: until then the open incident stays open, with no resolved/opened pair of alerts
    sent for nothing; once the data centers are known to serve, it resolves."""
    first = Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))
    first.round()
    for _ in range(4):
        first.round(lambda t: t.startswith("hub@"))
    second = Harness(belgium, SqliteStore(tmp_path / "m.sqlite"))
    second.clock = first.clock
    second.monitor.clock = first.clock
    for _ in range(4):
        second.round(lambda t: t.startswith("hub@"))
    assert [k for k in second.kinds() if k[1] == "hub"] == []
    (incident,) = second.monitor.store.incidents(open_only=True)
    assert incident.service == "hub"
    for _ in range(3):
        second.round()
    assert second.kinds() == [("incident.resolved", "hub")]
