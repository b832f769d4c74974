"""Maintenance windows: one-off or recurring (RFC 5545 RRULE), shown in advance, excluded
from availability, alerts muted while they run (resolutions are still sent)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from dateutil.rrule import rrulestr

from garde.catalog import Catalog
from garde.errors import UsageError
from garde.monitor.formats import parse_time
from garde.monitor.store.base import Maintenance, Store

MAX_OCCURRENCES = 1000


def check_rrule(rule: str, starts_at: float) -> None:
    """Raise ``UsageError`` saying how to write it when ``rule`` is not a valid RRULE."""
    try:
        rrulestr(rule, dtstart=_dt(starts_at))
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"invalid recurrence {rule!r}: {exc}; write an RFC 5545 RRULE such as"
            " FREQ=WEEKLY;BYDAY=SU or FREQ=MONTHLY;BYMONTHDAY=1"
        ) from None


def check_scope(scope: Iterable[str], services: Mapping[str, Iterable[str]]) -> None:
    """Each entry is ``*``, ``service`` or ``service@dc`` naming something in the catalog."""
    for entry in scope:
        if entry == "*":
            continue
        service, _, dc = entry.partition("@")
        if service not in services:
            raise UsageError(
                f"unknown service {service!r} in maintenance scope; known: "
                + ", ".join(sorted(services))
            )
        if dc and dc not in set(services[service]):
            raise UsageError(f"service {service!r} does not run in data center {dc!r}")


@dataclass(frozen=True, slots=True)
class WindowNames:
    """How the one planning a window named its fields (the API's keys, the CLI's options),
    so that an error names what they wrote."""

    starts: str = "starts_at"
    ends: str = "ends_at"
    until: str = "until"


def plan_window(
    store: Store,
    catalog: Catalog,
    *,
    title: str,
    scope: Iterable[str],
    starts: object,
    ends: object,
    rrule: str | None,
    until: object,
    now: float,
    names: WindowNames = WindowNames(),
) -> Maintenance:
    """Check a maintenance window whole, then store it: the API and ``garde maintenance
    add`` plan windows here, so that both refuse the same windows with the same words."""
    title = title.strip()
    if not title:
        raise UsageError("a maintenance window needs a title")
    entries = [str(entry) for entry in scope]
    if not entries:
        raise UsageError(
            "a maintenance window's scope lists services (recipe-executor), service@dc entries or *"
        )
    check_scope(entries, {sid: list(s.endpoints) for sid, s in catalog.services.items()})
    starts_at, ends_at = parse_time(starts, names.starts), parse_time(ends, names.ends)
    if ends_at <= starts_at:
        raise UsageError(f"{names.ends} must be after {names.starts}")
    if rrule is not None:
        check_rrule(rrule, starts_at)
    last = None if until is None else parse_time(until, names.until)
    return store.add_maintenance(title[:200], entries, starts_at, ends_at, rrule, last, now)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def occurrences(window: Maintenance, start: float, end: float) -> list[tuple[float, float]]:
    """The (start, end) of each occurrence of ``window`` overlapping [start, end)."""
    if window.cancelled:
        return []
    length = window.ends_at - window.starts_at
    if window.rrule is None:
        if window.starts_at < end and window.ends_at > start:
            return [(window.starts_at, window.ends_at)]
        return []
    rule = rrulestr(window.rrule, dtstart=_dt(window.starts_at))
    found: list[tuple[float, float]] = []
    for begin in rule.xafter(_dt(start - length), count=MAX_OCCURRENCES, inc=True):
        b = begin.timestamp()
        if b >= end or (window.until is not None and b >= window.until):
            break
        if b + length > start:
            found.append((b, b + length))
    return found


def covers(window: Maintenance, service: str, dc: str | None = None) -> bool:
    for entry in window.scope:
        if entry in ("*", service):
            return True
        if dc is not None and entry == f"{service}@{dc}":
            return True
    return False


class Calendar:
    """The windows in force, asked many times a second by the monitor's hot path."""

    def __init__(self, windows: Iterable[Maintenance] = ()) -> None:
        self.windows = list(windows)
        self._active_cache: tuple[float, list[Maintenance]] = (-1.0, [])

    def replace(self, windows: Iterable[Maintenance]) -> None:
        self.windows = list(windows)
        self._active_cache = (-1.0, [])

    def active(self, now: float) -> list[Maintenance]:
        # Recomputed once per second at most: RRULE expansion is not free.
        second = float(int(now))
        if self._active_cache[0] != second:
            live = [w for w in self.windows if occurrences(w, now, now + 1e-6)]
            self._active_cache = (second, live)
        return self._active_cache[1]

    def in_maintenance(self, now: float, service: str, dc: str | None = None) -> bool:
        return any(covers(w, service, dc) for w in self.active(now))

    def upcoming(self, now: float, horizon: float) -> list[tuple[Maintenance, float, float]]:
        found = [(w, b, e) for w in self.windows for b, e in occurrences(w, now, now + horizon)]
        return sorted(found, key=lambda item: item[1])
