"""The rendered-page cache: a page whose rendering is slow (a status page of thousands of
targets) never makes a reader wait for its next rendering; a fast one is always new."""

from __future__ import annotations

import asyncio
import time

from garde.monitor.web import rendered
from garde.monitor.web.rendered import RenderedPages


def test_a_slow_page_is_served_one_rendering_behind_while_the_next_is_made() -> None:
    async def scenario() -> None:
        pages = RenderedPages()
        family = ("status", "en")

        def slow(text: str) -> str:
            time.sleep(rendered.SLOW_RENDER + 0.2)
            return text

        first = await pages.get(("status", "en", 1.0), "en", 1.0, lambda: slow("one"), family)
        assert first.body == b"one"  # nothing older: the first reader waits for it
        began = time.monotonic()
        second = await pages.get(("status", "en", 2.0), "en", 2.0, lambda: slow("two"), family)
        assert second.body == b"one", "the previous rendering, not a wait"
        assert time.monotonic() - began < rendered.SLOW_RENDER
        assert pages.stale == 1
        while pages.renders < 2:
            await asyncio.sleep(0.05)
        third = await pages.get(("status", "en", 2.0), "en", 2.0, lambda: "unused", family)
        assert third.body == b"two", "once made, the new rendering is served"

    asyncio.run(scenario())


def test_a_fast_page_is_always_the_latest() -> None:
    async def scenario() -> None:
        pages = RenderedPages()
        family = ("for", "pharmacist", "en")
        await pages.get(("for", 1.0), "en", 1.0, lambda: "one", family)

        def later() -> str:
            time.sleep(rendered.FRESH_WAIT * 2)  # slower than the wait, but the page is fast
            return "two"

        second = await pages.get(("for", 2.0), "en", 2.0, later, family)
        assert second.body == b"two"
        assert pages.stale == 0

    asyncio.run(scenario())
