"""The named hooks every part uses in place of bare lists of callables."""

from __future__ import annotations

import logging

import pytest

from garde.signals import Signal


def test_subscribers_run_in_order_once_each_and_leave_cleanly() -> None:
    seen: list[tuple[str, int]] = []
    changed: Signal[[int]] = Signal("changed")

    def first(n: int) -> None:
        seen.append(("first", n))

    def second(n: int) -> None:
        seen.append(("second", n))

    changed.connect(first)
    changed.connect(second)
    changed.connect(first)  # connecting twice does not call twice
    changed.emit(1)
    changed.disconnect(first)
    changed.disconnect(first)  # leaving twice is harmless
    changed.emit(2)
    assert seen == [("first", 1), ("second", 1), ("second", 2)]
    assert len(changed) == 1 and changed


def test_a_failing_subscriber_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[str] = []
    mode: Signal[[str]] = Signal("mode changed")

    def broken(_: str) -> None:
        raise RuntimeError("boom")

    mode.connect(broken)
    mode.connect(heard.append)
    with caplog.at_level(logging.ERROR, logger="garde"):
        mode.emit("offline")
    assert heard == ["offline"]
    assert "a subscriber of mode changed failed" in caplog.text


def test_a_subscriber_may_disconnect_itself_while_the_event_is_delivered() -> None:
    calls: list[str] = []
    once: Signal[[]] = Signal("once")

    def only_once() -> None:
        calls.append("once")
        once.disconnect(only_once)

    once.connect(only_once)
    once.connect(lambda: calls.append("always"))
    once.emit()
    once.emit()
    assert calls == ["once", "always", "always"]
    assert not Signal("empty")
