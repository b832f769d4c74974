"""The ground-truth ledger: every business effect the simulated chain applied, exactly as applied.

A drill or a crash test asks it what really happened: which prescriptions were created or
delivered, which eAttests recorded, which messages stored, by which data center, under which
idempotency key. "Nothing lost, nothing doubled" is then counted, not hoped: an acknowledged
write missing here was lost; a business key present twice was applied twice.

Services choose business keys so that a legitimate repetition is a different key (the second
delivery after an undelivery carries its generation) and a duplicate is the same one (the same
prescription content created twice has the same content digest).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pydantic_core import to_json

from garde.lab.store import Database
from garde.locales import moment


@dataclass(frozen=True, slots=True)
class Effect:
    """One business effect, as recorded when the service applied it."""

    seq: int
    at: float
    """Unix time (the lab's clock) when the effect was applied."""
    service: str
    operation: str
    effect: str
    """What happened, e.g. ``prescription.created``, ``prescription.delivered``."""
    business_key: str
    idempotency_key: str | None
    dc: str
    identity: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), **moment("at", self.at)}


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The same business effect applied more than once."""

    service: str
    effect: str
    business_key: str
    effects: tuple[Effect, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "effect": self.effect,
            "business_key": self.business_key,
            "count": len(self.effects),
            "effects": [e.as_json() for e in self.effects],
        }


_RECORD = (
    "INSERT INTO effects (at, service, operation, effect, business_key,"
    " idempotency_key, dc, identity, detail) VALUES (?,?,?,?,?,?,?,?,?)"
)

_COLUMNS = (
    "seq, at, service, operation, effect, business_key, idempotency_key, dc, identity, detail"
)


def _effect(row: tuple[Any, ...]) -> Effect:
    return Effect(
        seq=int(row[0]),
        at=float(row[1]),
        service=str(row[2]),
        operation=str(row[3]),
        effect=str(row[4]),
        business_key=str(row[5]),
        idempotency_key=row[6],
        dc=str(row[7]),
        identity=row[8],
        detail=dict(json.loads(row[9])),
    )


class Ledger:
    """Records effects inside the service's own transaction, and answers questions about them."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock

    def record(
        self,
        conn: sqlite3.Connection,
        *,
        service: str,
        operation: str,
        effect: str,
        business_key: str,
        idempotency_key: str | None,
        dc: str,
        identity: str | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record an effect; ``conn`` is the transaction that applies the effect itself."""
        conn.execute(
            _RECORD,
            (
                self.clock(),
                service,
                operation,
                effect,
                business_key,
                idempotency_key,
                dc,
                identity,
                # Sorted, as exports are; pydantic's encoder: one per effect, on the write path.
                to_json(dict(sorted(detail.items()))).decode() if detail else "{}",
            ),
        )

    def effects(
        self,
        *,
        key: str | None = None,
        service: str | None = None,
        effect: str | None = None,
    ) -> list[Effect]:
        """Effects in the order applied; ``key`` matches an idempotency or a business key."""
        clauses, params = [], []
        if key is not None:
            clauses.append("(idempotency_key = ? OR business_key = ?)")
            params += [key, key]
        if service is not None:
            clauses.append("service = ?")
            params.append(service)
        if effect is not None:
            clauses.append("effect = ?")
            params.append(effect)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.db.cursor() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM effects{where} ORDER BY seq",  # noqa: S608 (fixed clauses)
                params,
            ).fetchall()
        return [_effect(row) for row in rows]

    def count(self) -> int:
        with self.db.cursor() as conn:
            return int(conn.execute("SELECT count(*) FROM effects").fetchone()[0])

    def duplicates(self) -> list[Duplicate]:
        """Every business effect applied more than once, with each application."""
        with self.db.cursor() as conn:
            groups = conn.execute(
                "SELECT service, effect, business_key FROM effects"
                " GROUP BY service, effect, business_key HAVING count(*) > 1"
                " ORDER BY min(seq)"
            ).fetchall()
            found = []
            for service, effect, business_key in groups:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM effects"  # noqa: S608 (fixed column list)
                    " WHERE service=? AND effect=? AND business_key=? ORDER BY seq",
                    (service, effect, business_key),
                ).fetchall()
                found.append(
                    Duplicate(service, effect, business_key, tuple(_effect(r) for r in rows))
                )
        return found

    def export_jsonl(self) -> Iterator[str]:
        """Every effect as one JSON line, in the order applied."""
        for effect in self.effects():
            yield json.dumps(effect.as_json(), sort_keys=True) + "\n"
