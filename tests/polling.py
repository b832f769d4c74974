"""Waiting for something to happen in a test: poll a condition, never a blind sleep.

One helper for every test: ``wait_for`` in plain code, ``until`` inside an event loop (its
condition may be a coroutine function, for a journal or an HTTP read). Both fail with what
was awaited and for how long.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``condition`` until true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")


async def until(
    condition: Callable[[], object] | Callable[[], Awaitable[object]],
    timeout: float = 20.0,
    what: str = "",
) -> None:
    """``wait_for`` without blocking the event loop; ``condition`` may be async."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")
