"""The SQL both backends share: schema, upserts with sums, queries. Only the dialect differs
(placeholders, id columns, ``MAX`` vs ``GREATEST``), so one implementation serves both and
one test suite proves both.

Every value goes through placeholders; the only text built into statements is column lists and
placeholder runs made here, never input (hence the S608 exemption for this module).
"""

# ruff: noqa: S608

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from garde.errors import NotFound, StoreUnavailable
from garde.monitor.probes import ProbeResult
from garde.monitor.store.base import (
    BUCKETS,
    Aggregate,
    Incident,
    IncidentState,
    IncidentUpdate,
    Maintenance,
    Resolution,
    Retention,
    Summary,
)
from garde.monitor.store.migrations import upgrade
from garde.monitor.store.subscriptions import SubscriptionRows
from garde.storage import Dialect

_H = [f"h{i}" for i in range(BUCKETS)]
_AGG_COLUMNS = [
    "resolution",
    "target",
    "bucket",
    "n",
    "up",
    "slow",
    "maint",
    "latency_sum",
    "latency_max",
    "observed",
    *_H,
]


def schema(d: Dialect) -> list[str]:
    histogram = ", ".join(f"{h} INTEGER NOT NULL DEFAULT 0" for h in _H)
    return [
        f"""CREATE TABLE IF NOT EXISTS results (
            target TEXT NOT NULL, location TEXT NOT NULL, at {d.real} NOT NULL,
            ok SMALLINT NOT NULL, slow SMALLINT NOT NULL, latency {d.real} NOT NULL,
            status INTEGER, error TEXT)""",
        "CREATE INDEX IF NOT EXISTS results_target_at ON results (target, at)",
        "CREATE INDEX IF NOT EXISTS results_at ON results (at)",
        f"""CREATE TABLE IF NOT EXISTS aggregates (
            resolution CHAR(1) NOT NULL, target TEXT NOT NULL, bucket BIGINT NOT NULL,
            n INTEGER NOT NULL, up INTEGER NOT NULL, slow INTEGER NOT NULL,
            maint INTEGER NOT NULL, latency_sum {d.real} NOT NULL,
            latency_max {d.real} NOT NULL, observed {d.real} NOT NULL DEFAULT 0, {histogram},
            PRIMARY KEY (resolution, bucket, target)){d.without_rowid}""",
        f"""CREATE TABLE IF NOT EXISTS incidents (
            id {d.id_column}, service TEXT NOT NULL, title TEXT NOT NULL,
            severity TEXT NOT NULL, state TEXT NOT NULL, started_at {d.real} NOT NULL,
            resolved_at {d.real}, impacted TEXT NOT NULL, groups_ TEXT NOT NULL,
            in_maintenance SMALLINT NOT NULL, worst_status TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX IF NOT EXISTS incidents_started ON incidents (started_at)",
        f"""CREATE TABLE IF NOT EXISTS incident_updates (
            id {d.id_column}, incident_id BIGINT NOT NULL REFERENCES incidents (id),
            at {d.real} NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
            message TEXT NOT NULL, author TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS updates_incident ON incident_updates (incident_id)",
        f"""CREATE TABLE IF NOT EXISTS maintenance (
            id {d.id_column}, title TEXT NOT NULL, scope TEXT NOT NULL,
            starts_at {d.real} NOT NULL, ends_at {d.real} NOT NULL, rrule TEXT,
            until_ {d.real}, created_at {d.real} NOT NULL, cancelled SMALLINT NOT NULL)""",
    ]


def _aggregate(r: Sequence[Any]) -> Aggregate:
    return Aggregate(
        Resolution(r[0]),
        r[1],
        int(r[2]),
        int(r[3]),
        int(r[4]),
        int(r[5]),
        int(r[6]),
        float(r[7]),
        float(r[8]),
        [int(h) for h in r[10:]],
        float(r[9]),
    )


class SqlStore(SubscriptionRows):
    """A ``Store`` over one DB-API connection, serialised by a lock (writes are batched)."""

    def __init__(
        self,
        connection: Any,
        dialect: Dialect,
        errors: tuple[type[Exception], ...],
        where: str,
        reader: Any = None,
    ) -> None:
        self._conn = connection
        # Reads (the status page, the API) go through their own connection when there is
        # one, so a page never waits behind a minute of rows being written.
        self._reader = reader
        self._read_lock = threading.Lock()
        self._d = dialect
        self._errors = errors
        self._where = where
        self._lock = threading.Lock()
        with self._tx() as cur:
            for statement in schema(dialect):
                cur.execute(statement)
            upgrade(cur, dialect.name == "postgres", self._sql)
        cols = ", ".join(_AGG_COLUMNS)
        sums = ", ".join(
            f"{c} = aggregates.{c} + excluded.{c}"
            for c in ["n", "up", "slow", "maint", "latency_sum", "observed", *_H]
        )
        self._upsert_aggregate = self._sql(
            f"INSERT INTO aggregates ({cols}) VALUES ({', '.join('?' * len(_AGG_COLUMNS))})"
            f" ON CONFLICT (resolution, bucket, target) DO UPDATE SET {sums},"
            f" latency_max = {dialect.greatest}(aggregates.latency_max, excluded.latency_max)"
        )

    def _sql(self, text: str) -> str:
        return self._d.sql(text)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                yield cur
                self._conn.commit()
            except self._errors as exc:
                self._rollback()
                raise StoreUnavailable(
                    f"monitor database {self._where}: {type(exc).__name__}: {exc}"
                ) from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                cur.close()

    def _rollback(self) -> None:
        # If the connection is gone the rollback fails too; the original error says why.
        with contextlib.suppress(*self._errors):
            self._conn.rollback()

    def _query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A SELECT; on the reader connection when there is one."""
        if self._reader is None:
            with self._tx() as cur:
                cur.execute(self._sql(text), tuple(params))
                return list(cur.fetchall())
        with self._read_lock:
            cur = self._reader.cursor()
            try:
                cur.execute(self._sql(text), tuple(params))
                return list(cur.fetchall())
            except self._errors as exc:
                raise StoreUnavailable(
                    f"monitor database {self._where}: {type(exc).__name__}: {exc}"
                ) from exc
            finally:
                cur.close()

    # -- results -------------------------------------------------------------------------

    def add_results(self, results: Sequence[ProbeResult]) -> None:
        if not results:
            return
        rows = [
            (r.target, r.location, r.at, int(r.ok), int(r.slow), r.latency, r.status, r.error)
            for r in results
        ]
        with self._tx() as cur:
            cur.executemany(self._sql("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), rows)

    def recent_results(self, target: str, limit: int = 50) -> list[ProbeResult]:
        rows = self._query(
            "SELECT target, location, at, ok, slow, latency, status, error FROM results"
            " WHERE target = ? ORDER BY at DESC LIMIT ?",
            (target, limit),
        )
        return [
            ProbeResult(t, float(at), bool(ok), float(lat), bool(slow), err, status, loc)
            for t, loc, at, ok, slow, lat, status, err in rows
        ]

    # -- aggregates ----------------------------------------------------------------------

    def add_aggregates(self, rows: Sequence[Aggregate]) -> None:
        if not rows:
            return
        values = [
            (
                a.resolution.value,
                a.target,
                a.bucket,
                a.n,
                a.up,
                a.slow,
                a.maint,
                a.latency_sum,
                a.latency_max,
                a.observed,
                *a.histogram,
            )
            for a in rows
        ]
        with self._tx() as cur:
            cur.executemany(self._upsert_aggregate, values)

    def aggregates(
        self,
        resolution: Resolution,
        since: float,
        until: float | None = None,
        targets: Sequence[str] | None = None,
    ) -> list[Aggregate]:
        text = f"SELECT {', '.join(_AGG_COLUMNS)} FROM aggregates WHERE resolution = ?"
        text += " AND bucket >= ?"
        params: list[Any] = [resolution.value, int(since)]
        if until is not None:
            text += " AND bucket < ?"
            params.append(int(until))
        if targets is not None:
            if not targets:
                return []
            text += f" AND target IN ({', '.join('?' * len(targets))})"
            params.extend(targets)
        text += " ORDER BY bucket, target"
        return [_aggregate(r) for r in self._query(text, params)]

    def aggregates_at(
        self, resolution: Resolution, buckets: Sequence[int], targets: Sequence[str]
    ) -> list[Aggregate]:
        # Named buckets and targets are point lookups in the (resolution, bucket, target)
        # key: a few targets' rows cost their own reads, not a scan of every target's rows
        # over the range (90 days of 5,000 targets: 450,000 rows read for 360).
        if not buckets or not targets:
            return []
        rows: list[Aggregate] = []
        for chunk in range(0, len(buckets), 200):
            part = [int(b) for b in buckets[chunk : chunk + 200]]
            text = (
                f"SELECT {', '.join(_AGG_COLUMNS)} FROM aggregates WHERE resolution = ?"
                f" AND bucket IN ({', '.join('?' * len(part))})"
                f" AND target IN ({', '.join('?' * len(targets))}) ORDER BY bucket, target"
            )
            rows.extend(
                _aggregate(r) for r in self._query(text, [resolution.value, *part, *targets])
            )
        return rows

    def summaries(
        self, resolution: Resolution, since: float, until: float | None = None
    ) -> list[Summary]:
        text = (
            "SELECT target, bucket, n, up, latency_sum, maint, observed FROM aggregates"
            " WHERE resolution = ? AND bucket >= ?"
        )
        params: list[Any] = [resolution.value, int(since)]
        if until is not None:
            text += " AND bucket < ?"
            params.append(int(until))
        # The drivers already return str, int and float here: no per-value conversion on
        # the status page's hot path.
        return list(map(Summary._make, self._query(text, params)))

    def prune(self, now: float, retention: Retention) -> dict[str, int]:
        deleted: dict[str, int] = {}
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM results WHERE at < ?"), (now - retention.raw,))
            deleted["raw"] = cur.rowcount
            for name, resolution, keep in (
                ("minute", Resolution.MINUTE, retention.minute),
                ("hour", Resolution.HOUR, retention.hour),
                ("day", Resolution.DAY, retention.day),
            ):
                if keep is None:
                    deleted[name] = 0
                    continue
                cur.execute(
                    self._sql("DELETE FROM aggregates WHERE resolution = ? AND bucket < ?"),
                    (resolution.value, int(now - keep)),
                )
                deleted[name] = cur.rowcount
        # Requests never confirmed in time: their addresses go (data minimisation).
        deleted["pending_subscriptions"] = self.prune_pending(now)
        return deleted

    # -- incidents -----------------------------------------------------------------------

    def open_incident(
        self,
        service: str,
        title: str,
        severity: str,
        started_at: float,
        impacted: Sequence[str] = (),
        groups: Sequence[str] = (),
        in_maintenance: bool = False,
        worst_status: str = "",
    ) -> Incident:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO incidents (service, title, severity, state, started_at,"
                    " resolved_at, impacted, groups_, in_maintenance, worst_status)"
                    " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?) RETURNING id"
                ),
                (
                    service,
                    title,
                    severity,
                    IncidentState.OPEN.value,
                    started_at,
                    json.dumps(list(impacted)),
                    json.dumps(list(groups)),
                    int(in_maintenance),
                    worst_status,
                ),
            )
            new_id = int(cur.fetchone()[0])
        return self.incident(new_id)

    def update_incident(
        self,
        incident_id: int,
        *,
        title: str | None = None,
        severity: str | None = None,
        impacted: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        worst_status: str | None = None,
    ) -> None:
        sets: list[str] = []
        params: list[Any] = []
        if title is not None:
            sets.append("title = ?")
            params.append(title)
        if severity is not None:
            sets.append("severity = ?")
            params.append(severity)
        if impacted is not None:
            sets.append("impacted = ?")
            params.append(json.dumps(list(impacted)))
        if groups is not None:
            sets.append("groups_ = ?")
            params.append(json.dumps(list(groups)))
        if worst_status is not None:
            sets.append("worst_status = ?")
            params.append(worst_status)
        if sets:
            self._query_no_result(
                f"UPDATE incidents SET {', '.join(sets)} WHERE id = ?", [*params, incident_id]
            )

    def _query_no_result(self, text: str, params: Sequence[Any]) -> int:
        with self._tx() as cur:
            cur.execute(self._sql(text), tuple(params))
            return int(cur.rowcount)

    def add_update(
        self, incident_id: int, at: float, kind: str, status: str, message: str, author: str = ""
    ) -> IncidentUpdate:
        if not self._query("SELECT id FROM incidents WHERE id = ?", (incident_id,)):
            raise NotFound(f"no incident #{incident_id}; list them with `garde incident list`")
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO incident_updates (incident_id, at, kind, status, message, author)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
                ),
                (incident_id, at, kind, status, message, author),
            )
            new_id = int(cur.fetchone()[0])
        return IncidentUpdate(new_id, incident_id, at, kind, status, message, author)

    def resolve_incident(self, incident_id: int, at: float) -> None:
        changed = self._query_no_result(
            "UPDATE incidents SET state = ?, resolved_at = ? WHERE id = ? AND state = ?",
            (IncidentState.RESOLVED.value, at, incident_id, IncidentState.OPEN.value),
        )
        if not changed and not self._query("SELECT id FROM incidents WHERE id = ?", (incident_id,)):
            raise NotFound(f"no incident #{incident_id}; list them with `garde incident list`")

    _INCIDENT_COLUMNS = (
        "id, service, title, severity, state, started_at, resolved_at, impacted, groups_,"
        " in_maintenance, worst_status"
    )

    def incident(self, incident_id: int) -> Incident:
        found = self._incidents(
            f"SELECT {self._INCIDENT_COLUMNS} FROM incidents WHERE id = ?", [incident_id]
        )
        if not found:
            raise NotFound(f"no incident #{incident_id}; list them with `garde incident list`")
        return found[0]

    def incidents(
        self, *, open_only: bool = False, since: float | None = None, limit: int = 100
    ) -> list[Incident]:
        text = f"SELECT {self._INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1"
        params: list[Any] = []
        if open_only:
            text += " AND state = ?"
            params.append(IncidentState.OPEN.value)
        if since is not None:
            text += " AND (resolved_at IS NULL OR resolved_at >= ?)"
            params.append(since)
        text += " ORDER BY started_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return self._incidents(text, params)

    def _incidents(self, text: str, params: Sequence[Any]) -> list[Incident]:
        rows = self._query(text, params)
        if not rows:
            return []
        ids = [int(r[0]) for r in rows]
        updates: dict[int, list[IncidentUpdate]] = {i: [] for i in ids}
        for u in self._query(
            "SELECT id, incident_id, at, kind, status, message, author FROM incident_updates"
            f" WHERE incident_id IN ({', '.join('?' * len(ids))}) ORDER BY at, id",
            ids,
        ):
            updates[int(u[1])].append(
                IncidentUpdate(int(u[0]), int(u[1]), float(u[2]), u[3], u[4], u[5], u[6])
            )
        return [
            Incident(
                int(r[0]),
                r[1],
                r[2],
                r[3],
                IncidentState(r[4]),
                float(r[5]),
                None if r[6] is None else float(r[6]),
                tuple(json.loads(r[7])),
                tuple(json.loads(r[8])),
                bool(r[9]),
                tuple(updates[int(r[0])]),
                r[10],
            )
            for r in rows
        ]

    # -- maintenance ---------------------------------------------------------------------

    def add_maintenance(
        self,
        title: str,
        scope: Sequence[str],
        starts_at: float,
        ends_at: float,
        rrule: str | None = None,
        until: float | None = None,
        created_at: float = 0.0,
    ) -> Maintenance:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO maintenance (title, scope, starts_at, ends_at, rrule, until_,"
                    " created_at, cancelled) VALUES (?, ?, ?, ?, ?, ?, ?, 0) RETURNING id"
                ),
                (title, json.dumps(list(scope)), starts_at, ends_at, rrule, until, created_at),
            )
            new_id = int(cur.fetchone()[0])
        return Maintenance(
            new_id, title, tuple(scope), starts_at, ends_at, rrule, until, created_at
        )

    def cancel_maintenance(self, maintenance_id: int) -> None:
        if not self._query_no_result(
            "UPDATE maintenance SET cancelled = 1 WHERE id = ?", (maintenance_id,)
        ):
            raise NotFound(
                f"no maintenance window #{maintenance_id}; list them with `garde maintenance list`"
            )

    def maintenances(self, *, include_cancelled: bool = False) -> list[Maintenance]:
        text = (
            "SELECT id, title, scope, starts_at, ends_at, rrule, until_, created_at, cancelled"
            " FROM maintenance"
        )
        if not include_cancelled:
            text += " WHERE cancelled = 0"
        text += " ORDER BY starts_at, id"
        return [
            Maintenance(
                int(r[0]),
                r[1],
                tuple(json.loads(r[2])),
                float(r[3]),
                float(r[4]),
                r[5],
                None if r[6] is None else float(r[6]),
                float(r[7]),
                bool(r[8]),
            )
            for r in self._query(text)
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        if self._reader is not None:
            with self._read_lock:
                self._reader.close()
