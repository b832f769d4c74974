"""Named hooks: one event, its subscribers, and who may fire it.

A part that tells others about something (a service changed mode, an entry was journaled,
tokens were released) owns a ``Signal`` named after the event; whoever wants to know
``connect``s a callable of the signal's shape and ``disconnect``s it when done. This
replaces the bare lists of callables and the ``on_x = ...`` attributes that were set from
outside after construction: the shape of each hook is in its type, and a subscriber that
stops (the native data plane, a replayer) leaves without reaching into a list.

A subscriber that raises is logged and the others still run: one broken listener must not
stop a mode change reaching the care software's banner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")
log = logging.getLogger("garde")


class Signal(Generic[P]):
    """Subscribers of one event, called in the order they connected."""

    __slots__ = ("_subscribers", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[P, None]] = []

    def connect(self, subscriber: Callable[P, None]) -> None:
        """Call ``subscriber`` on every event from now on (once, however often connected)."""
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def disconnect(self, subscriber: Callable[P, None]) -> None:
        """Stop calling ``subscriber``; nothing happens if it was not connected."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def __bool__(self) -> bool:
        """True when someone listens (callers may skip building an event nobody reads)."""
        return bool(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for subscriber in tuple(self._subscribers):  # a subscriber may disconnect itself
            try:
                subscriber(*args, **kwargs)
            except Exception:
                log.exception("a subscriber of %s failed", self.name)

    def __repr__(self) -> str:
        return f"Signal({self.name!r}, {len(self._subscribers)} subscribers)"
