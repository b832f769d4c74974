"""The last good answer of cacheable reads, served marked stale when no data center can.

Bounded (least recently stored goes first) and keyed per request key: the catalog's cache
key rule, else the SOAP Body itself (never the header, whose tokens change every hour).
Answers for ``per_caller`` operations are keyed by identity too: a hub record read by one
caregiver is never shown to another.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from garde.gateway.transport import Headers


@dataclass(frozen=True, slots=True)
class Cached:
    stored_at: float
    status: int
    headers: Headers
    body: bytes


class StaleCache:
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[str, ...], Cached] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def store(self, key: tuple[str, ...], status: int, headers: Headers, body: bytes) -> None:
        entries = self._entries
        # A copy: the caller goes on adding this answer's own headers (its data center, its
        # mode) to its list, and a stale answer must not repeat them.
        entries[key] = Cached(self.clock(), status, list(headers), body)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def get(self, key: tuple[str, ...], max_stale: float) -> tuple[Cached, float] | None:
        """The entry and its age in seconds, if one exists no older than ``max_stale``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = max(0.0, self.clock() - entry.stored_at)
        if age > max_stale:
            return None
        return entry, age
