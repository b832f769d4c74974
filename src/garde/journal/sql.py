"""The SQL both backends share, written once with ``?`` placeholders.

PostgreSQL takes the same text with ``%s``; only leasing differs (``FOR UPDATE SKIP LOCKED``
there, the single writer's ``BEGIN IMMEDIATE`` in SQLite), so it lives in each backend.
"""

from __future__ import annotations

from garde.journal.base import HOLDING, UNSETTLED, WAITING
from garde.journal.records import INSERT_COLUMNS, SELECT


def _states(states: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"


HOLDING_SQL = _states(tuple(s.value for s in HOLDING))
WAITING_SQL = _states(tuple(s.value for s in WAITING))
UNSETTLED_SQL = _states(tuple(s.value for s in UNSETTLED))

INSERT = (
    f"INSERT INTO entries ({', '.join(INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
    " ON CONFLICT (service, operation, idem_key) DO NOTHING"
)
BY_ID = f"SELECT {SELECT} FROM entries WHERE id = ?"
BY_IDEM = f"SELECT {SELECT} FROM entries WHERE service = ? AND operation = ? AND idem_key = ?"

# The head of an ordering key is its oldest entry that still holds the key; only heads are
# deliverable, so a conflicting or quarantined head holds every later entry of its key.
NO_HOLDING_PREDECESSOR = (
    "(e.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM entries p"
    " WHERE p.service = e.service AND p.order_key = e.order_key AND p.seq < e.seq"
    f" AND p.state IN {HOLDING_SQL}))"
)


def deliverable(service_count: int) -> str:
    """WHERE clause of a lease: params are the services, then now, now."""
    marks = ", ".join("?" for _ in range(service_count))
    return (
        f"e.service IN ({marks}) AND e.state IN {WAITING_SQL}"
        " AND (e.state = 'journaled' OR e.lease_until < ?) AND e.not_before <= ?"
        f" AND {NO_HOLDING_PREDECESSOR}"
    )


# Both read the partial index ``entries_due`` (deadline of the unsettled entries): an
# expiry sweep costs what is due, never the journal's size.
DUE_TO_EXPIRE = (
    f"SELECT {SELECT} FROM entries WHERE state IN {UNSETTLED_SQL} AND deadline IS NOT NULL"
    " AND deadline < ? AND (state <> 'delivering' OR lease_until < ?) ORDER BY deadline"
    " LIMIT 1000"
)
ANY_DUE = (
    f"SELECT 1 FROM entries WHERE state IN {UNSETTLED_SQL} AND deadline IS NOT NULL"
    " AND deadline < ? LIMIT 1"
)

SETTLE_DELIVERED = (
    "UPDATE entries SET state = 'delivered', updated_at = ?, lease_owner = NULL,"
    " lease_token = NULL, lease_until = NULL, last_error = NULL, answer_status = ?,"
    " answer_type = ?, answer_body = ? WHERE id = ? AND lease_token = ? AND state = 'delivering'"
)
SETTLE_CONFLICT = (
    "UPDATE entries SET state = 'conflict', updated_at = ?, lease_owner = NULL,"
    " lease_token = NULL, lease_until = NULL, reason = ?, answer_status = ?, answer_type = ?,"
    " answer_body = ? WHERE id = ? AND lease_token = ? AND state = 'delivering'"
)
SETTLE_RETRY = (
    "UPDATE entries SET state = 'journaled', updated_at = ?, lease_owner = NULL,"
    " lease_token = NULL, lease_until = NULL, last_error = ?, not_before = ?"
    " WHERE id = ? AND lease_token = ? AND state = 'delivering'"
)
SETTLE_NEEDS_TOKEN = SETTLE_RETRY.replace("'journaled'", "'needs_token'", 1)


def mark_leased(count: int) -> str:
    """Mark ``count`` entries leased; params: now, owner, token prefix, until, the seqs.
    Each entry's lease token is the prefix and its seq."""
    marks = ", ".join("?" for _ in range(count))
    return (
        "UPDATE entries SET state = 'delivering', updated_at = ?, lease_owner = ?,"
        " lease_token = ? || CAST(seq AS TEXT), lease_until = ?, attempts = attempts + 1"
        f" WHERE seq IN ({marks})"
    )


def _settle_many(assignments: str, columns: int) -> str:
    """The multi-row form of a ``SETTLE_*`` statement (SQLite's ``UPDATE ... FROM``): the
    same assignments, fed by a ``VALUES`` list whose last two columns are id and lease token;
    ``{rows}`` is replaced by the row placeholders. It returns the ids it settled: an entry
    missing there had lost its lease."""
    return (
        f"UPDATE entries SET {assignments} FROM (VALUES {{rows}}) AS v"
        f" WHERE entries.id = v.column{columns - 1} AND entries.lease_token = v.column{columns}"
        " AND entries.state = 'delivering' RETURNING entries.id"
    )


_CLEAR_LEASE = "lease_owner = NULL, lease_token = NULL, lease_until = NULL"
SETTLE_DELIVERED_MANY = _settle_many(
    f"state = 'delivered', updated_at = v.column1, {_CLEAR_LEASE}, last_error = NULL,"
    " answer_status = v.column2, answer_type = v.column3, answer_body = v.column4",
    6,
)
SETTLE_CONFLICT_MANY = _settle_many(
    f"state = 'conflict', updated_at = v.column1, {_CLEAR_LEASE}, reason = v.column2,"
    " answer_status = v.column3, answer_type = v.column4, answer_body = v.column5",
    7,
)
SETTLE_RETRY_MANY = _settle_many(
    f"state = 'journaled', updated_at = v.column1, {_CLEAR_LEASE}, last_error = v.column2,"
    " not_before = v.column3",
    5,
)

QUARANTINE = (
    "UPDATE entries SET state = 'quarantined', updated_at = ?, reason = ?, lease_owner = NULL,"
    " lease_token = NULL, lease_until = NULL WHERE seq = ?"
)
SET_STATE = (
    "UPDATE entries SET state = ?, updated_at = ?, reason = ?, last_error = ?, not_before = ?,"
    " lease_owner = NULL, lease_token = NULL, lease_until = NULL WHERE id = ?"
)
EXPIRE = (
    "UPDATE entries SET state = 'expired', updated_at = ?, reason = ?, lease_owner = NULL,"
    " lease_token = NULL, lease_until = NULL WHERE seq = ? AND state IN " + UNSETTLED_SQL
)
REKEY = "UPDATE entries SET key_id = ?, sealed = ?, checksum = ? WHERE seq = ? AND checksum = ?"
REKEY_ANSWER = "UPDATE entries SET answer_body = ? WHERE seq = ? AND answer_body = ?"
AUDIT = "INSERT INTO audit (at, who, action, entry_id, detail) VALUES (?, ?, ?, ?, ?)"
AUDIT_LOG = "SELECT at, who, action, entry_id, detail FROM audit ORDER BY at DESC LIMIT ?"
# Two counts, each served by its partial index, rather than one over three states (no index).
DEPTH = (
    f"SELECT (SELECT count(*) FROM entries WHERE state IN {WAITING_SQL})"
    " + (SELECT count(*) FROM entries WHERE state = 'needs_token')"
)
DEPTH_OF = (
    f"SELECT (SELECT count(*) FROM entries WHERE state IN {WAITING_SQL} AND service = ?)"
    " + (SELECT count(*) FROM entries WHERE state = 'needs_token' AND service = ?)"
)
# The backlog is read from indexes alone, not the table: the RPO watch asks every 10 s, and
# reading a million entries' rows took seconds of CPU each time. Counted per group in
# ``entries_backlog_v2`` (predicates repeated as written: SQLite uses a partial index only
# then), the oldest of each group found by one seek in it; attempts summed in
# ``entries_tried``, and LAST_FAILED read in ``entries_failed``, which hold only entries that
# were tried (an accept adds to neither).
BACKLOG = (
    "SELECT service, operation, state, count(*) FROM entries"
    f" WHERE state IN {HOLDING_SQL} GROUP BY service, operation, state"
)
OLDEST_OF = (
    f"SELECT min(created_at) FROM entries WHERE state IN {HOLDING_SQL}"
    " AND service = ? AND operation = ? AND state = ?"
)
TRIED = (
    "SELECT service, operation, state, sum(attempts) FROM entries"
    f" WHERE state IN {HOLDING_SQL} AND attempts > 0 GROUP BY service, operation, state"
)
LAST_FAILED = (
    f"SELECT service, max(updated_at) FROM entries WHERE state IN {UNSETTLED_SQL}"
    " AND last_error IS NOT NULL GROUP BY service"
)
LAST_ERROR_OF = (
    f"SELECT last_error FROM entries WHERE service = ? AND state IN {UNSETTLED_SQL}"
    " AND last_error IS NOT NULL AND updated_at = ? LIMIT 1"
)
WAITING_SUBJECTS = (
    "SELECT DISTINCT subject_key FROM entries WHERE state = 'needs_token'"
    " AND subject_key IS NOT NULL"
)
NEEDS_TOKEN_OF = (
    f"SELECT {SELECT} FROM entries WHERE state = 'needs_token' AND subject_key = ? ORDER BY seq"
    " LIMIT ?"
)
RELEASE = (
    "UPDATE entries SET state = 'journaled', updated_at = ?, key_id = ?, sealed = ?,"
    " checksum = ?, not_before = 0, last_error = ? WHERE seq = ? AND state = 'needs_token'"
    " AND checksum = ?"
)
COUNTS = "SELECT service, state, count(*) FROM entries GROUP BY service, state"
# The services with work, by a loose index scan of ``entries_waiting`` (service, seq): one
# index seek per service, however many entries wait (``SELECT DISTINCT`` reads them all,
# and the replayer asks after every accept).
PENDING_SERVICES = (
    "WITH RECURSIVE pending(service) AS ("
    f" SELECT (SELECT min(service) FROM entries WHERE state IN {WAITING_SQL})"
    " UNION ALL"
    f" SELECT (SELECT min(service) FROM entries WHERE state IN {WAITING_SQL}"
    " AND service > pending.service)"
    " FROM pending WHERE pending.service IS NOT NULL"
    ") SELECT service FROM pending WHERE service IS NOT NULL"
)


def listing(state: bool, service: bool) -> str:
    where = ["seq > ?"]
    if state:
        where.append("state = ?")
    if service:
        where.append("service = ?")
    return f"SELECT {SELECT} FROM entries WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"


PAGE_OF = f"SELECT {SELECT} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?"
