"""The subscribers of each profession: their rows, for both SQL backends.

A row is what delivering needs and nothing more: the profession, the kind of channel, the
address or URL, the language, the per-subscription secret (it signs webhook bodies and makes
the unsubscribe link), and while unconfirmed the hash of the confirmation token and when it
expires. No client address, no name, no history of sends. An unconfirmed row is deleted when
its token expires; unsubscribing deletes the row.
"""

# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class Pending(StrEnum):
    """What asking to subscribe did to the register."""

    NEW = "new"
    RENEWED = "renewed"
    """Already asked and not yet confirmed: a new token replaces the old one."""
    ALREADY = "already"
    """Already confirmed: nothing changes, nothing is sent."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    group: str
    kind: str
    """``email``, ``apprise`` or ``webhook``."""
    address: str
    lang: str
    secret: str
    created_at: float
    confirmed_at: float | None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


def subscription_tables(id_column: str, real: str) -> list[str]:
    """The statements that make the tables (idempotent: run at every start, and by the
    upgrade of a database made before subscriptions existed)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS subscriptions (
            id {id_column}, group_ TEXT NOT NULL, kind TEXT NOT NULL, address TEXT NOT NULL,
            lang TEXT NOT NULL, secret TEXT NOT NULL, token_hash TEXT, expires_at {real},
            created_at {real} NOT NULL, confirmed_at {real})""",
        "CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_address"
        " ON subscriptions (group_, address)",
        "CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_token ON subscriptions (token_hash)",
    ]


_COLUMNS = "id, group_, kind, address, lang, secret, created_at, confirmed_at"


def _row(row: tuple[Any, ...]) -> Subscription:
    sid, group, kind, address, lang, secret, created, confirmed = row
    return Subscription(
        int(sid),
        group,
        kind,
        address,
        lang,
        secret,
        float(created),
        None if confirmed is None else float(confirmed),
    )


class SubscriptionRows:
    """Mixed into ``SqlStore``: it brings ``_tx``, ``_query`` and ``_sql``."""

    _tx: Any
    _query: Any
    _sql: Any

    def add_pending(
        self,
        group: str,
        kind: str,
        address: str,
        lang: str,
        secret: str,
        token_hash: str,
        expires_at: float,
        now: float,
    ) -> Pending:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "SELECT id, confirmed_at FROM subscriptions WHERE group_ = ? AND address = ?"
                ),
                (group, address),
            )
            found = cur.fetchone()
            if found is not None and found[1] is not None:
                return Pending.ALREADY
            if found is not None:
                cur.execute(
                    self._sql(
                        "UPDATE subscriptions SET kind = ?, lang = ?, secret = ?, token_hash = ?,"
                        " expires_at = ?, created_at = ? WHERE id = ?"
                    ),
                    (kind, lang, secret, token_hash, expires_at, now, found[0]),
                )
                return Pending.RENEWED
            cur.execute(
                self._sql(
                    "INSERT INTO subscriptions (group_, kind, address, lang, secret, token_hash,"
                    " expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (group, kind, address, lang, secret, token_hash, expires_at, now),
            )
            return Pending.NEW

    def pending_count(self, now: float) -> int:
        rows = self._query(
            "SELECT COUNT(*) FROM subscriptions WHERE confirmed_at IS NULL AND expires_at > ?",
            (now,),
        )
        return int(rows[0][0])

    def pending_by_token(self, token_hash: str, now: float) -> Subscription | None:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE token_hash = ? AND expires_at > ?"
            " AND confirmed_at IS NULL",
            (token_hash, now),
        )
        return _row(rows[0]) if rows else None

    def confirm_subscription(self, token_hash: str, now: float) -> Subscription | None:
        """Confirm the pending row of this token (once: the token is forgotten)."""
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {_COLUMNS} FROM subscriptions WHERE token_hash = ?"
                    " AND expires_at > ? AND confirmed_at IS NULL"
                ),
                (token_hash, now),
            )
            found = cur.fetchone()
            if found is None:
                return None
            cur.execute(
                self._sql(
                    "UPDATE subscriptions SET confirmed_at = ?, token_hash = NULL,"
                    " expires_at = NULL WHERE id = ?"
                ),
                (now, found[0]),
            )
        return replace(_row(found), confirmed_at=now)

    def subscription(self, subscription_id: int) -> Subscription | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM subscriptions WHERE id = ?", (subscription_id,))
        return _row(rows[0]) if rows else None

    def delete_subscription(self, subscription_id: int) -> bool:
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM subscriptions WHERE id = ?"), (subscription_id,))
            return bool(cur.rowcount)

    def subscribers(self, groups: list[str]) -> list[Subscription]:
        """The confirmed subscribers of these professions, oldest first."""
        if not groups:
            return []
        marks = ", ".join("?" * len(groups))
        rows = self._query(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE confirmed_at IS NOT NULL"
            f" AND group_ IN ({marks}) ORDER BY id",
            tuple(groups),
        )
        return [_row(r) for r in rows]

    def prune_pending(self, now: float) -> int:
        """Forget the requests never confirmed in time (their address with them)."""
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "DELETE FROM subscriptions WHERE confirmed_at IS NULL AND expires_at <= ?"
                ),
                (now,),
            )
            return int(cur.rowcount or 0)
