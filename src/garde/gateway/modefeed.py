"""Follow the monitor's mode feed (``GET /api/v1/modes``, see docs/monitor.md).

The monitor probes every data center from several places; when it says a data center is
down (``avoid_data_centers``) or a service is ``offline``, this gateway takes those links out
of rotation at once instead of paying a timeout per request to find out. A link held out
this way is released when the feed says so, or when the entry's ``valid_until`` passes: it
then goes half-open and one trial request proves it, as after any ejection. The feed only
ever takes links out early; it never forces traffic onto a link the gateway saw failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from garde.gateway.upstreams import Link, ServiceUpstreams

log = logging.getLogger("garde.gateway.modefeed")

Fetch = Callable[[], Awaitable[dict[str, Any]]]


def _instant(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ModeFeedFollower:
    def __init__(
        self,
        upstreams: dict[str, ServiceUpstreams],
        url: str,
        *,
        interval: float = 10.0,
        timeout: float = 2.0,
        wall: Callable[[], float] = time.time,
        fetch: Fetch | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.url = url.rstrip("/") + "/api/v1/modes"
        self.interval = interval
        self.timeout = timeout
        self.wall = wall
        self._fetch = fetch
        self._held: set[tuple[str, str]] = set()
        """(service, dc) links this follower holds out (the only ones it may release)."""
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.failures = 0

    def apply(self, feed: dict[str, Any]) -> dict[str, list[str]]:
        """Apply one feed document; ``{service: [dcs held out]}`` for what it holds now."""
        now = self.wall()
        entries = feed.get("services")
        if not isinstance(entries, dict):
            raise ValueError("mode feed without a 'services' mapping")
        held: dict[str, list[str]] = {}
        for sid, upstreams in self.upstreams.items():
            entry = entries.get(sid)
            valid_until = _instant(entry.get("valid_until")) if isinstance(entry, dict) else None
            down: set[str] = set()
            why = "down"
            if isinstance(entry, dict) and valid_until is not None and valid_until > now:
                why = str(entry.get("status", "down"))
                if entry.get("mode") == "offline":
                    down = {link.dc for link in upstreams.links}
                else:
                    down = {str(dc) for dc in entry.get("avoid_data_centers") or ()}
            hold_for = (valid_until - now) if valid_until is not None else 0.0
            for link in upstreams.links:
                key = (sid, link.dc)
                if link.dc in down:
                    self._hold(upstreams, link, hold_for, why)
                    self._held.add(key)
                    held.setdefault(sid, []).append(link.dc)
                elif key in self._held:
                    self._release(upstreams, link)
                    self._held.discard(key)
            upstreams.refresh()
        return held

    def _hold(self, upstreams: ServiceUpstreams, link: Link, seconds: float, why: str) -> None:
        until = upstreams.clock() + seconds
        if link.ejected_until >= until:
            return
        link.ejected_until = until
        link.probation = True
        link.trial_in_flight = False
        link.last_error = f"monitor feed: {why}"

    def _release(self, upstreams: ServiceUpstreams, link: Link) -> None:
        # Half-open now: one trial request proves the link before traffic returns to it.
        now = upstreams.clock()
        if link.ejected_until > now:
            link.ejected_until = now

    async def _get(self) -> dict[str, Any]:
        if self._fetch is not None:
            return await self._fetch()
        import aiohttp  # here, not at the top: a gateway without a feed starts faster

        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url) as response,
        ):
            if response.status != 200:
                raise OSError(f"mode feed answered HTTP {response.status}")
            data = await response.json(content_type=None)
            if not isinstance(data, dict):
                raise ValueError("mode feed is not a JSON object")
            return data

    async def poll(self) -> None:
        import aiohttp

        self.polls += 1
        try:
            self.apply(await self._get())
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # The monitor may be what failed: keep what holds (it expires by itself).
            self.failures += 1
            log.warning("mode feed %s unavailable: %s", self.url, exc)

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
