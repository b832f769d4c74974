"""Render the pages people read before the monitor takes its first request.

A cold page costs its first reader the history's first read and rendering: at 5,000 targets
with a year of history, seconds (docs/benchmarks.md). So before the monitor listens, each
language's status page and every profession's page is asked for once, through the
application itself (the same path as a reader's request): later renderings reuse the
history's cached closed days, and a reader who asks while one is made gets the previous
rendering (``rendered.FRESH_WAIT``).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message

from garde.locales import LANGUAGES

log = logging.getLogger("garde.monitor")


def warm_paths(groups: list[str]) -> list[str]:
    pages = ["/", *(f"/for/{group}" for group in groups)]
    return [f"{page}?lang={lang}" for page in pages for lang in LANGUAGES]


async def get(app: ASGIApp, path_and_query: str) -> int:
    """GET ``path_and_query`` from ``app`` in-process; its status code."""
    path, _, query = path_and_query.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def warm(app: ASGIApp, groups: list[str]) -> int:
    """Ask for every page once; how many answered 200. A page that fails (the database not
    reachable yet) is only not warm: its first reader renders it, and sees the error."""
    ok = 0
    for path in warm_paths(groups):
        try:
            ok += await get(app, path) == 200
        except Exception:  # warming is an optimisation: serving goes on
            log.warning("could not render %s before start; its first reader will", path)
    return ok
