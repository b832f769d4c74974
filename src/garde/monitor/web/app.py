"""The monitor's HTTP side (Starlette), assembled: the pages people read (``pages.py``), the
JSON API and the pushes from probe locations (``api.py``), the security headers
(``security.py``). Store calls run in worker threads; the page reads aggregates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from garde.errors import GardeError
from garde.monitor.service import Monitor
from garde.monitor.web.api import MAX_BODY, MAX_PUSH_RESULTS, Api
from garde.monitor.web.charts import ServicePages
from garde.monitor.web.pages import Pages, render_sla
from garde.monitor.web.requests import HttpProblem
from garde.monitor.web.security import SecurityHeaders
from garde.monitor.web.site import Site, templates

if TYPE_CHECKING:
    from garde.monitor.deliveries import Subscriptions

__all__ = ["MAX_BODY", "MAX_PUSH_RESULTS", "create_app", "render_sla", "templates"]


def create_app(
    monitor: Monitor,
    *,
    admin_token: str | None = None,
    public_url: str | None = None,
    subscriptions: Subscriptions | None = None,
) -> Starlette:
    """The monitor's web side. ``public_url`` is the base URL the monitor is reached at, for
    the Atom feed's ids and links; without it, the address the request reached (the
    listening socket's), never the request's ``Host`` header, which the client chooses.
    ``subscriptions`` (``deliveries.open_subscriptions``) adds the subscription pages."""
    site = Site(monitor, admin_token=admin_token, public_url=public_url)
    pages, api = Pages(site), Api(site)
    routes = [
        Route("/", pages.status),
        Route("/healthz", api.health),
        Route("/for/{group}", pages.profession),
        Route("/services/{id}", ServicePages(site).history),
        Route("/incidents/{id}", pages.incident),
        Route("/feed.atom", pages.feed),
        Route("/metrics", api.metrics),
        Route("/sla/{month}", pages.sla),
        Route("/openapi.json", api.openapi),
        Route("/api/v1/status", api.status),
        Route("/api/v1/modes", api.modes),
        Route("/api/v1/targets", api.targets),
        Route("/api/v1/history/{target}", api.history),
        Route("/api/v1/sla/{month}", api.sla),
        Route("/api/v1/incidents", api.incidents),
        Route("/api/v1/incidents/{id}", api.incident),
        Route("/api/v1/incidents/{id}/updates", api.incident_update, methods=["POST"]),
        Route("/api/v1/maintenance", api.maintenance, methods=["GET", "POST"]),
        Route("/api/v1/maintenance/{id}", api.maintenance_cancel, methods=["DELETE"]),
        Route("/api/v1/results", api.push, methods=["POST"]),
    ]
    if subscriptions is not None:
        from garde.monitor.web.subscribe import SubscribePages

        routes += SubscribePages(site, subscriptions).routes()
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(GZipMiddleware, minimum_size=2048),
        ],
        exception_handlers={HttpProblem: _on_error, GardeError: _on_error},
    )
    app.state.site = site  # what the pages share (their renderings, for the curious)
    return app


async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HttpProblem):
        response = JSONResponse({"error": exc.message}, status_code=exc.status)
    elif isinstance(exc, GardeError):
        response = JSONResponse({"error": str(exc)}, status_code=exc.status)
    else:
        raise exc
    if "content-length" in request.headers or "transfer-encoding" in request.headers:
        # The body may not have been read (refused before, or cut at the limit): close, or
        # the server would read the rest of it to find the next request.
        response.headers["Connection"] = "close"
    return response
