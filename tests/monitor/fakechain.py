"""A stand-in chain for end-to-end tests until the lab is available: one loopback server per
data center answering every service's path (STS tokens, SOAP answers, WSDL), with chosen
(service, dc) pairs answering 503."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

from garde.catalog import Catalog
from tests.monitor.loopback import STS_NS, serve, soap, xml


@asynccontextmanager
async def fake_chain(catalog: Catalog, down: set[tuple[str, str]]) -> AsyncIterator[Catalog]:
    """Yield ``catalog`` pointed at fake services; ``down`` holds (service, dc) to fail."""
    prefixes = {s.path_prefix: sid for sid, s in catalog.services.items()}
    dcs = sorted({dc for s in catalog.services.values() for dc in s.endpoints})
    async with AsyncExitStack() as stack:
        bases = {}
        for dc in dcs:

            async def handle(request: web.Request, dc: str = dc) -> web.Response:
                sid = next((v for p, v in prefixes.items() if request.path.startswith(p)), None)
                if sid is None:
                    return web.Response(status=404)
                if (sid, dc) in down:
                    return web.Response(status=503, text="down")
                if request.method == "GET":
                    return xml("<definitions/>")
                body = await request.read()
                if b"RequestSecurityTokenRequest" in body:
                    until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
                    return xml(
                        soap(
                            f'<sts:RequestSecurityTokenResponse xmlns:sts="{STS_NS}">'
                            f"<sts:Token>t-{dc}</sts:Token><sts:NotOnOrAfter>{until}"
                            "</sts:NotOnOrAfter></sts:RequestSecurityTokenResponse>"
                        )
                    )
                return xml(soap("<Response/>"))

            bases[dc] = await stack.enter_async_context(serve({"/{tail:.*}": handle}))
        yield catalog.with_endpoints(
            {
                sid: {dc: bases[dc] + s.path_prefix for dc in s.endpoints}
                for sid, s in catalog.services.items()
            }
        )
