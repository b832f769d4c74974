"""The journal as an operator watches it: Prometheus gauges and the RPO alert.

A journal that cannot deliver must be seen before a pharmacist calls: how many entries wait
and in which state (``needs_token`` and ``conflict`` need someone), how old the oldest is,
how many attempts they cost, the last error per service, and whether a write has waited
longer than its operation's RPO. The gateway reads the journal (shared by every worker and
every gateway on it) when it is scraped, and checks the RPO on its own every
``RPO_CHECK_INTERVAL`` seconds, logging once when a service starts and stops exceeding it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from garde.catalog import Catalog
from garde.errors import JournalError
from garde.journal import UNSETTLED, Backlog, JournalStore
from garde.masking import mask_text

log = logging.getLogger("garde.gateway")

Gauge = tuple[str, str, dict[str, str], float]
RPO_CHECK_INTERVAL = 10.0
"""Seconds between the gateway's own RPO checks (a scrape checks too)."""
_DIGITS = re.compile(r"\d+")
MAX_LABEL = 200
"""Longest last-error text put in a label (an upstream can answer with pages of HTML)."""


def rpo_of(catalog: Catalog, service: str, operation: str) -> float | None:
    """How long a journaled write of ``service.operation`` may wait before the alert: the
    operation's ``rpo``, else its service's when the catalog sets one; None: no alert."""
    found = catalog.services.get(service)
    if found is None:
        return None
    op = found.operations.get(operation)
    if op is not None and op.rpo is not None:
        return op.rpo
    return found.rpo if "rpo" in found.model_fields_set else None


@dataclass(frozen=True, slots=True)
class Overdue:
    service: str
    operation: str
    waited: float
    rpo: float


def overdue(backlog: Backlog, catalog: Catalog, now: float) -> list[Overdue]:
    """Operations whose oldest undelivered write has waited longer than their RPO."""
    oldest: dict[tuple[str, str], float] = {}
    for group in backlog.groups:
        if group.state in UNSETTLED:
            key = (group.service, group.operation)
            oldest[key] = min(oldest.get(key, group.oldest), group.oldest)
    found = []
    for (service, operation), created in sorted(oldest.items()):
        rpo = rpo_of(catalog, service, operation)
        if rpo is not None and now - created > rpo:
            found.append(Overdue(service, operation, now - created, rpo))
    return found


def gauges(backlog: Backlog | None, catalog: Catalog, now: float) -> list[Gauge]:
    """The journal's gauges; with ``backlog`` None (the journal could not be read), only
    ``garde_journal_up 0``."""
    up = 0.0 if backlog is None else 1.0
    out: list[Gauge] = [("garde_journal_up", "1 when the gateway could read its journal.", {}, up)]
    if backlog is None:
        return out
    depth: dict[str, int] = dict.fromkeys(catalog.services, 0)
    oldest: dict[str, float] = {}
    attempts: dict[str, int] = dict.fromkeys(catalog.services, 0)
    for g in backlog.groups:
        out.append(
            (
                "garde_journal_entries",
                "Entries that still hold their ordering key, by state (delivered, expired and"
                " discarded ones are in `garde journal ls`).",
                {"service": g.service, "operation": g.operation, "state": g.state.value},
                float(g.count),
            )
        )
        if g.state in UNSETTLED:
            depth[g.service] = depth.get(g.service, 0) + g.count
            oldest[g.service] = min(oldest.get(g.service, g.oldest), g.oldest)
            attempts[g.service] = attempts.get(g.service, 0) + g.attempts
    for service, count in sorted(depth.items()):
        out.append(
            (
                "garde_journal_depth",
                "Entries still to be delivered (journaled, delivering, needs_token).",
                {"service": service},
                float(count),
            )
        )
        out.append(
            (
                "garde_journal_oldest_entry_age_seconds",
                "Age of the oldest entry still to be delivered (0 when there is none).",
                {"service": service},
                round(now - oldest[service], 3) if service in oldest else 0.0,
            )
        )
        out.append(
            (
                "garde_journal_attempts",
                "Delivery attempts spent so far on the entries still to be delivered.",
                {"service": service},
                float(attempts.get(service, 0)),
            )
        )
    for service, (at, error) in sorted(backlog.last_errors.items()):
        # Numbers and times vary per entry: without them the label takes a few values per
        # service (one per kind of failure), not one per entry, and Prometheus's series stay few.
        text = _DIGITS.sub("#", mask_text(error))[:MAX_LABEL]
        out.append(
            (
                "garde_journal_last_error_timestamp_seconds",
                "When an entry still to be delivered last failed, per service.",
                {"service": service},
                round(at, 3),
            )
        )
        out.append(
            (
                "garde_journal_last_error_info",
                "The last failure of an entry still to be delivered (identifiers masked).",
                {"service": service, "error": escape(text)},
                1.0,
            )
        )
    late = {(o.service, o.operation): o for o in overdue(backlog, catalog, now)}
    for service in sorted(catalog.services):
        for operation in sorted(catalog.services[service].operations):
            rpo = rpo_of(catalog, service, operation)
            if rpo is None or not catalog.services[service].operations[operation].continuity:
                continue
            labels = {"service": service, "operation": operation}
            out.append(
                (
                    "garde_journal_rpo_seconds",
                    "How long a journaled write of the operation may wait (its RPO).",
                    labels,
                    rpo,
                )
            )
            out.append(
                (
                    "garde_journal_rpo_exceeded",
                    "1 while a write of the operation has waited longer than its RPO.",
                    labels,
                    1.0 if (service, operation) in late else 0.0,
                )
            )
    return out


def escape(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RpoWatch:
    """Logs once when an operation starts waiting longer than its RPO, and once when it no
    longer does (the gauge ``garde_journal_rpo_exceeded`` says the same for alerting)."""

    def __init__(
        self, journal: JournalStore, catalog: Catalog, clock: Callable[[], float] = time.time
    ) -> None:
        self.journal = journal
        self.catalog = catalog
        self.clock = clock
        self.exceeded: set[tuple[str, str]] = set()

    async def check(self) -> list[Overdue]:
        try:
            backlog = await self.journal.backlog()
        except JournalError as exc:
            log.warning("journal unavailable while checking the RPO: %s", exc)
            return []
        late = overdue(backlog, self.catalog, self.clock())
        now_late = {(o.service, o.operation) for o in late}
        for o in late:
            if (o.service, o.operation) not in self.exceeded:
                log.error(
                    "RPO exceeded: a journaled %s.%s write has waited %.0f s (RPO %.0f s);"
                    " see `garde journal ls --service %s`",
                    o.service,
                    o.operation,
                    o.waited,
                    o.rpo,
                    o.service,
                )
        for service, operation in sorted(self.exceeded - now_late):
            log.warning(
                "RPO met again: no %s.%s write waits longer than its RPO", service, operation
            )
        self.exceeded = now_late
        return late
