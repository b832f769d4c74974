"""The pages people read, rendered once per state of the chain and language, however many
people ask.

During a national outage every care provider opens the status page at once. A page is the
same for all of them until the monitor's next snapshot (every second): so each (page,
language) is rendered once per snapshot, concurrent requests for it wait for that one
rendering instead of starting their own, and the answer carries an ``ETag`` and
``Last-Modified`` (a browser that has it gets ``304``) and ``Cache-Control`` letting nginx
or a CDN in front keep it a few seconds.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from email.utils import formatdate

from starlette.requests import Request
from starlette.responses import Response

MAX_PAGES = 256
"""Pages kept (pages × languages × incidents open: a few dozen in practice)."""
SHARED_MAX_AGE = 5
"""Seconds a shared cache in front may serve a page without asking again."""
FRESH_WAIT = 0.1
"""Seconds a request waits for a new rendering of a *slow* page (``SLOW_RENDER``) it has an
older rendering of; then it gets the older one (at most one rendering behind), so no reader
waits for a big page's rendering (5,000 targets: about half a second)."""
SLOW_RENDER = 0.25
"""A page whose last rendering took longer than this is slow. Others (every page of a
catalog of a few hundred targets) are always waited for: a reader sees the latest state."""


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    gzipped: bytes
    """``body`` compressed once, for the browsers that accept gzip (nearly all)."""
    etag: str
    last_modified: str
    language: str


class RenderedPages:
    def __init__(self, capacity: int = MAX_PAGES) -> None:
        self.capacity = capacity
        self._pages: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._rendering: dict[Hashable, asyncio.Future[Rendered]] = {}
        self._latest: dict[Hashable, Rendered] = {}
        """Per page (``family``), its newest rendering, served while the next one is made."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._cost: dict[Hashable, float] = {}
        """Per page (``family``), seconds its last rendering took."""
        self.stale = 0
        """Answers given from an older rendering because the new one took over FRESH_WAIT."""
        self.renders = 0
        """Pages rendered since the start (the rest were served from here)."""

    async def get(
        self,
        key: Hashable,
        language: str,
        at: float,
        render: Callable[[], str],
        family: Hashable = None,
    ) -> Rendered:
        """The page for ``key`` (which names the state it shows: the snapshot's time), made
        by ``render`` in a worker thread if nobody has made it yet. ``family`` names the page
        whatever its state (page and language): while a new rendering takes longer than
        ``FRESH_WAIT``, the family's previous one is served."""
        found = self._pages.get(key)
        if found is not None:
            return found
        pending = self._rendering.get(key)
        if pending is None:
            # Registered before the rendering starts: concurrent readers wait for this one.
            pending = self._rendering[key] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._render(pending, key, language, at, render, family))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        previous = self._latest.get(family) if family is not None else None
        if previous is None or self._cost.get(family, 0.0) < SLOW_RENDER:
            return await asyncio.shield(pending)
        try:
            return await asyncio.wait_for(asyncio.shield(pending), FRESH_WAIT)
        except TimeoutError:
            self.stale += 1
            return previous

    async def warm(
        self, key: Hashable, language: str, at: float, render: Callable[[], str], family: Hashable
    ) -> None:
        """Render a page before anyone asks (at start: a cold page would make its first
        reader wait for the history's first read)."""
        await self.get(key, language, at, render, family)

    async def _render(
        self,
        future: asyncio.Future[Rendered],
        key: Hashable,
        language: str,
        at: float,
        render: Callable[[], str],
        family: Hashable,
    ) -> None:
        try:
            began = time.monotonic()
            html = await asyncio.to_thread(render)
            body = html.encode()
            page = Rendered(
                body,
                gzip.compress(body, compresslevel=6, mtime=0),
                '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
                formatdate(at, usegmt=True),
                language,
            )
            self.renders += 1
            self._pages[key] = page
            if family is not None:
                self._latest[family] = page
                self._cost[family] = time.monotonic() - began
            while len(self._pages) > self.capacity:
                self._pages.popitem(last=False)
            future.set_result(page)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, the loop does not log it
            if not isinstance(exc, Exception):
                raise
        finally:
            del self._rendering[key]


def respond(request: Request, page: Rendered) -> Response:
    """``page``, or ``304`` when the browser already holds it."""
    headers = {
        "ETag": page.etag,
        "Last-Modified": page.last_modified,
        "Cache-Control": f"public, max-age=0, s-maxage={SHARED_MAX_AGE}, must-revalidate",
        "Content-Language": page.language,
        "Vary": "Accept-Language, Accept-Encoding",
    }
    wanted = request.headers.get("if-none-match")
    if wanted is not None and page.etag in (tag.strip() for tag in wanted.split(",")):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        # Compressed once when rendered, not once per reader (the gzip middleware passes an
        # answer that already says its encoding).
        headers["Content-Encoding"] = "gzip"
        return Response(page.gzipped, media_type="text/html; charset=utf-8", headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)
