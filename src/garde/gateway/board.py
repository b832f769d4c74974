"""What the workers of one ``garde gateway --workers N`` share: a board of snapshots.

The workers share nothing in memory (SO_REUSEPORT hands each connection to one of them), so
each keeps its own health view, breakers, counters and caches. For ``/metrics`` and
``/_garde/status`` to describe the whole gateway whichever worker a request reaches, every
worker publishes a small snapshot (counters and service modes; no identifier, no payload) to
a folder its parent made, once a second and whenever it answers one of those endpoints. The
worker answering merges its own fresh snapshot with the others'. A snapshot older than
``max_age`` belongs to a worker that is gone, and is left out.

Counters stay monotonic across scrapes that land on different workers: each worker's share
is always its own latest published snapshot, never a live value another worker cannot see.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

Snapshot = dict[str, Any]

MODES = ("normal", "degraded", "offline")
"""Service modes from best to worst: merged, a service is in the worst mode any worker sees."""


class WorkerBoard:
    """One worker's place on the board: it writes its snapshot, reads everyone's."""

    def __init__(self, directory: str | Path, index: int, *, max_age: float = 5.0) -> None:
        self.directory = Path(directory)
        self.index = index
        self.max_age = max_age
        self.path = self.directory / f"worker-{index}.json"

    def publish(self, snapshot: Snapshot) -> None:
        """Write this worker's snapshot; readers see the old one or the new one, never half."""
        snapshot = {**snapshot, "worker": self.index, "pid": os.getpid(), "written": time.time()}
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(snapshot, separators=(",", ":")))
        os.replace(partial, self.path)

    def gather(self, own: Snapshot) -> list[Snapshot]:
        """Publish ``own``, then every live worker's snapshot, this worker's first."""
        self.publish(own)
        now = time.time()
        found: list[Snapshot] = []
        for path in sorted(self.directory.glob("worker-*.json")):
            try:
                snapshot = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker stopping while we read: its counters are gone with it
            if now - float(snapshot.get("written", 0)) > self.max_age:
                continue
            found.append(snapshot)
        found.sort(key=lambda s: (s["worker"] != self.index, s["worker"]))
        return found


def worst_mode(modes: list[str]) -> str:
    return max(modes, key=MODES.index) if modes else "normal"
