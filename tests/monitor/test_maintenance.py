"""Maintenance windows: one-off and recurring occurrences, scope, the calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from garde.errors import UsageError
from garde.monitor.maintenance import Calendar, check_rrule, check_scope, covers, occurrences
from garde.monitor.store.base import Maintenance


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


SUNDAY_2AM = ts("2027-02-07T02:00:00")
WEEKLY = Maintenance(
    1, "patching", ("*",), SUNDAY_2AM, SUNDAY_2AM + 1800, rrule="FREQ=WEEKLY;BYDAY=SU"
)


def test_one_off_window() -> None:
    once = Maintenance(2, "SAN swap", ("recipe-executor@dc1",), 100.0, 200.0)
    assert occurrences(once, 0, 1000) == [(100.0, 200.0)]
    assert occurrences(once, 200, 1000) == []
    assert covers(once, "recipe-executor", "dc1")
    assert not covers(once, "recipe-executor", "dc2")
    assert not covers(once, "recipe-executor")  # the service as a whole is not covered


def test_weekly_window_repeats_and_stops_at_until() -> None:
    month = occurrences(WEEKLY, SUNDAY_2AM, SUNDAY_2AM + 28 * 86400)
    assert [b for b, _ in month] == [SUNDAY_2AM + k * 7 * 86400 for k in range(4)]
    assert all(e - b == 1800 for b, e in month)
    bounded = Maintenance(
        3,
        "x",
        ("*",),
        SUNDAY_2AM,
        SUNDAY_2AM + 1800,
        rrule="FREQ=WEEKLY",
        until=SUNDAY_2AM + 8 * 86400,
    )
    assert len(occurrences(bounded, SUNDAY_2AM, SUNDAY_2AM + 60 * 86400)) == 2


def test_a_window_in_progress_counts() -> None:
    during = SUNDAY_2AM + 7 * 86400 + 600
    assert occurrences(WEEKLY, during, during + 1) == [
        (SUNDAY_2AM + 7 * 86400, SUNDAY_2AM + 7 * 86400 + 1800)
    ]
    calendar = Calendar([WEEKLY])
    assert calendar.in_maintenance(during, "sts")
    assert not calendar.in_maintenance(during + 1800, "sts")


def test_cancelled_windows_never_occur() -> None:
    cancelled = Maintenance(4, "x", ("*",), 100.0, 200.0, cancelled=True)
    assert occurrences(cancelled, 0, 1000) == []


def test_upcoming_is_sorted_across_windows() -> None:
    once = Maintenance(5, "upgrade", ("hub",), SUNDAY_2AM + 3600, SUNDAY_2AM + 7200)
    upcoming = Calendar([WEEKLY, once]).upcoming(SUNDAY_2AM - 60, 8 * 86400)
    assert [w.title for w, _, _ in upcoming] == ["patching", "upgrade", "patching"]


def test_bad_rrule_and_scope_are_explained() -> None:
    with pytest.raises(UsageError, match="FREQ=WEEKLY;BYDAY=SU"):
        check_rrule("EVERY SUNDAY", SUNDAY_2AM)
    with pytest.raises(UsageError, match="unknown service 'nope'"):
        check_scope(["nope"], {"hub": ["dc1"]})
    with pytest.raises(UsageError, match="does not run in data center 'dc9'"):
        check_scope(["hub@dc9"], {"hub": ["dc1"]})
    check_scope(["*", "hub", "hub@dc1"], {"hub": ["dc1"]})
