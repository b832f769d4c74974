"""Small loopback HTTP servers for probe tests (port 0, stopped when the block ends)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
STS_NS = "urn:be:fgov:ehealth:sts:protocol:v1"


def soap(body: str) -> str:
    return f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{body}</soap:Body></soap:Envelope>'


def fault(code: str = "soap:Server", text: str = "broken") -> str:
    return soap(
        f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring></soap:Fault>"
    )


@asynccontextmanager
async def serve(routes: dict[str, Handler], *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``{path: handler}`` (any method) on a free port; yields the base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def xml(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/xml")
