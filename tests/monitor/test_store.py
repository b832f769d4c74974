"""The same behaviour from every store: SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from garde.errors import NotFound, UsageError
from garde.monitor.history import Aggregator
from garde.monitor.probes import ProbeResult
from garde.monitor.store import open_store
from garde.monitor.store.base import Aggregate, IncidentState, Resolution, Retention, Store

DAY = 86400.0
T0 = 1_800_000_000.0  # a day boundary is irrelevant: buckets are computed, not assumed


def r(target: str, at: float, ok: bool = True, latency: float = 0.02) -> ProbeResult:
    return ProbeResult(target, at, ok, latency, error=None if ok else "HTTP 500")


def test_raw_results_round_trip(store: Store) -> None:
    store.add_results([r("a@dc1", T0), r("a@dc1", T0 + 10, ok=False), r("b@dc1", T0)])
    recent = store.recent_results("a@dc1")
    assert [x.ok for x in recent] == [False, True]
    assert recent[0].error == "HTTP 500"


def test_aggregates_add_up_across_flushes(store: Store) -> None:
    """Rows merge by addition, so a late result is simply added to its minute, hour, day."""
    agg = Aggregator()
    for i in range(6):
        agg.add(r("a@dc1", T0 + i * 10, ok=i != 3, latency=0.01 * (i + 1)))
    store.add_aggregates(agg.flush(T0 + 3600))
    agg.add(r("a@dc1", T0 + 1, latency=0.5))  # late, same minute
    store.add_aggregates(agg.flush(T0 + 3600))
    minute = store.aggregates(Resolution.MINUTE, T0 - 60)
    total = sum(m.n for m in minute)
    assert total == 7
    day = store.aggregates(Resolution.DAY, T0 - DAY)
    assert len(day) == 1
    assert day[0].n == 7
    assert day[0].up == 6
    assert day[0].latency_max == pytest.approx(0.5)
    assert day[0].availability == pytest.approx(6 / 7)


def test_percentiles_from_the_histogram(store: Store) -> None:
    agg = Aggregator()
    for i in range(100):
        agg.add(r("a@dc1", T0 + i * 0.1, latency=0.030 if i < 95 else 0.600))
    store.add_aggregates(agg.flush(T0, everything=True))
    (hour,) = store.aggregates(Resolution.HOUR, T0 - 3600, targets=["a@dc1"])
    p50, p99 = hour.percentile(0.5), hour.percentile(0.99)
    assert p50 is not None
    assert 0.025 <= p50 <= 0.050
    assert p99 is not None
    assert 0.500 <= p99 <= 0.600


def test_maintenance_results_are_kept_apart(store: Store) -> None:
    agg = Aggregator()
    agg.add(r("a@dc1", T0, ok=False), in_maintenance=True)
    agg.add(r("a@dc1", T0 + 1))
    store.add_aggregates(agg.flush(T0, everything=True))
    (day,) = store.aggregates(Resolution.DAY, T0 - DAY)
    assert (day.n, day.up, day.maint) == (1, 1, 1)
    assert day.availability == 1.0


def test_retention_keeps_history_small(store: Store) -> None:
    old, new = T0 - 10 * DAY, T0
    store.add_results([r("a@dc1", old), r("a@dc1", new)])
    agg = Aggregator()
    agg.add(r("a@dc1", old))
    agg.add(r("a@dc1", new))
    store.add_aggregates(agg.flush(new, everything=True))
    deleted = store.prune(T0, Retention(raw=3 * DAY, minute=5 * DAY, hour=400 * DAY, day=None))
    assert deleted["raw"] == 1
    assert deleted["minute"] == 1
    assert deleted["hour"] == 0
    assert len(store.recent_results("a@dc1")) == 1
    assert len(store.aggregates(Resolution.MINUTE, 0)) == 1
    assert len(store.aggregates(Resolution.DAY, 0)) == 2


def test_incident_lifecycle(store: Store) -> None:
    incident = store.open_incident(
        "sts", "STS: outage", "major", T0, impacted=["recipe-executor"], groups=["pharmacist"]
    )
    store.add_update(incident.id, T0 + 60, "auto", "outage", "STS: outage")
    store.add_update(
        incident.id, T0 + 120, "operator", "investigating", "SAN failure", author="ops"
    )
    assert [i.id for i in store.incidents(open_only=True)] == [incident.id]
    store.resolve_incident(incident.id, T0 + 600)
    done = store.incident(incident.id)
    assert done.state is IncidentState.RESOLVED
    assert done.resolved_at == T0 + 600
    assert [u.message for u in done.updates] == ["STS: outage", "SAN failure"]
    assert done.impacted == ("recipe-executor",)
    assert done.groups == ("pharmacist",)
    assert store.incidents(open_only=True) == []
    with pytest.raises(NotFound, match="no incident #999"):
        store.add_update(999, T0, "operator", "x", "y")


def test_maintenance_windows(store: Store) -> None:
    once = store.add_maintenance("SAN swap", ["recipe-executor@dc1"], T0, T0 + 3600)
    weekly = store.add_maintenance("weekly", ["*"], T0, T0 + 1800, rrule="FREQ=WEEKLY")
    assert [m.id for m in store.maintenances()] == [once.id, weekly.id]
    store.cancel_maintenance(once.id)
    assert [m.id for m in store.maintenances()] == [weekly.id]
    assert len(store.maintenances(include_cancelled=True)) == 2
    with pytest.raises(NotFound):
        store.cancel_maintenance(12345)


def test_open_store_rejects_unknown_urls() -> None:
    with pytest.raises(UsageError, match="use sqlite:///PATH or postgresql://"):
        open_store("mysql://x")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Callable[[str], None], Callable[[], Store], str]]:
    """A database made by the garde before ``observed`` and ``worst_status``: a way to run
    SQL on it, to open it with today's store, and its ``--db`` URL."""
    from garde.monitor.store.sql import schema
    from garde.storage import POSTGRES, SQLITE

    def old_schema(dialect: Any) -> list[str]:
        statements = []
        for statement in schema(dialect):
            old = statement.replace(f" observed {dialect.real} NOT NULL DEFAULT 0,", "")
            old = old.replace(", worst_status TEXT NOT NULL DEFAULT ''", "")
            statements.append(old)
        assert statements != schema(dialect)
        return statements

    if request.param == "sqlite":
        import sqlite3

        from garde.monitor.store.sqlite import SqliteStore

        path = tmp_path / "old.sqlite"
        connection = sqlite3.connect(path)
        for statement in old_schema(SQLITE):
            connection.execute(statement)

        def run(text: str) -> None:
            connection.execute(text)
            connection.commit()

        yield run, lambda: SqliteStore(path), f"sqlite:///{path}"
        connection.close()
        return
    import psycopg

    from garde.monitor.store.postgres import PostgresStore
    from tests.monitor.conftest import PG_URL

    name = f"garde_old_{uuid.uuid4().hex[:12]}"
    try:
        connection = psycopg.connect(PG_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc})")
    connection.execute(f"CREATE SCHEMA {name}")
    connection.execute(f"SET search_path TO {name}")
    for statement in old_schema(POSTGRES):
        connection.execute(statement)
    try:
        yield (
            lambda text: connection.execute(text) and None,
            lambda: PostgresStore(PG_URL, schema=name),
            f"{PG_URL}?schema={name}",
        )
    finally:
        connection.execute(f"DROP SCHEMA {name} CASCADE")
        connection.close()


def test_an_older_database_is_upgraded_and_its_register_repaired(
    old_database: tuple[Callable[[str], None], Callable[[], Store], str],
) -> None:
    """Opening a database of the previous version adds the new columns; the incidents its
    monitor retitled at each change get back the title of their worst moment, from their
    timeline; history rows keep their counts, and opening twice changes nothing more."""
    from click.testing import CliRunner

    from garde.cli import cli

    run, open_it, url = old_database
    outage = "Recip-e executor v4: outage, no data center answers"
    reduced = "Recip-e executor v4: reduced redundancy, dc2 down; the others serve"
    run(
        "INSERT INTO incidents (id, service, title, severity, state, started_at, resolved_at,"
        f" impacted, groups_, in_maintenance) VALUES (1, 'recipe-executor', '{reduced}',"
        f" 'major', 'resolved', {T0}, {T0 + 1260}, '[]', '[\"pharmacist\"]', 0)"
    )
    for i, (status, message) in enumerate(
        [
            ("outage", f"{outage}; also impacted: recipe-prescriber"),
            ("investigating", "SAN controller"),
            ("reduced_redundancy", reduced),
            ("resolved", "Recip-e executor v4: operational again"),
        ]
    ):
        kind = "operator" if status == "investigating" else "auto"
        run(
            "INSERT INTO incident_updates (incident_id, at, kind, status, message, author)"
            f" VALUES (1, {T0 + i * 300}, '{kind}', '{status}', '{message}', '')"
        )
    histogram = ", ".join(f"h{i}" for i in range(16))
    run(
        "INSERT INTO aggregates (resolution, target, bucket, n, up, slow, maint, latency_sum,"
        f" latency_max, {histogram}) VALUES ('d', 'service:hub', {int(T0 // DAY * DAY)}, 8640,"
        f" 8640, 0, 0, 1.0, 0.1, {', '.join('0' * 16)})"
    )
    for _ in range(2):
        store = open_it()
        try:
            incident = store.incident(1)
            assert (incident.title, incident.worst_status) == (outage, "outage")
            assert [u.status for u in incident.updates][-1] == "resolved"
            (day,) = store.aggregates(Resolution.DAY, 0, targets=["service:hub"])
            assert (day.n, day.up, day.observed) == (8640, 8640, 0.0)
            store.add_aggregates([Aggregate(Resolution.MINUTE, "x", int(T0), 1, 1, observed=5)])
        finally:
            store.close()
    listed = CliRunner().invoke(cli, ["incident", "list", "--db", url])
    assert listed.output.strip().endswith(f"[resolved] {outage}")
