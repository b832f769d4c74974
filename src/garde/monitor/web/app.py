"""The monitor's HTTP side (Starlette): status page, JSON API, push from probe locations,
feeds, metrics, SLA reports. Store calls run in worker threads; the page reads aggregates."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garde.errors import GardeError, UsageError
from garde.monitor.feeds import atom_feed, mode_feed
from garde.monitor.formats import incident_json, maintenance_json, parse_time, when
from garde.monitor.history import SERVICE_PREFIX, combine
from garde.monitor.maintenance import check_rrule, check_scope
from garde.monitor.metrics import render_metrics
from garde.monitor.observed import MIN_COVERAGE, MIN_OBSERVED, Observed, row_seconds
from garde.monitor.openapi import OPENAPI
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.sla import SlaReport, sla_csv, sla_json, sla_report
from garde.monitor.store.base import Resolution
from garde.monitor.web.i18n import labels, pick_language, span
from garde.monitor.web.views import History, status_json, status_page

TEMPLATES = Path(__file__).parent / "templates"
MAX_PUSH_RESULTS = 10_000
MAX_BODY = 4 << 20
"""Largest push from a probe location (10,000 results fit in about 2 MiB)."""
MAX_ADMIN_BODY = 64 << 10
"""Largest body of an operator write (incident update, maintenance window)."""
BODY_TIMEOUT = 30.0
"""Seconds a client has to send a whole body once its headers are in."""


def create_app(
    monitor: Monitor, *, admin_token: str | None = None, public_url: str | None = None
) -> Starlette:
    """The monitor's web side. ``public_url`` is the base URL the monitor is reached at, for
    the Atom feed's ids and links; without it, the address the request reached (the
    listening socket's), never the request's ``Host`` header, which the client chooses."""
    env = templates()
    history = History()

    def problem(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def require_admin(request: Request) -> None:
        if admin_token is None:
            raise _Http(403, "writes are disabled: start the monitor with --admin-token")
        if not _bearer_ok(request, admin_token):
            raise _Http(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")

    async def body_json(request: Request, limit: int = MAX_ADMIN_BODY) -> dict[str, Any]:
        raw = await read_body(request, limit)
        try:
            data = json.loads(raw)
        except ValueError:
            raise _Http(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _Http(400, "the body must be a JSON object")
        return data

    def language(request: Request) -> str:
        return pick_language(
            request.query_params.get("lang"), request.headers.get("accept-language")
        )

    async def page(request: Request) -> Response:
        lang = language(request)
        now = monitor.clock.now()
        model = await asyncio.to_thread(
            status_page,
            monitor.catalog,
            monitor.snapshot,
            monitor.store,
            monitor.calendar,
            lang,
            now,
            history,
        )
        html = env.get_template("status.html").render(**model)
        return HTMLResponse(html, headers={"Content-Language": lang, "Cache-Control": "no-cache"})

    async def api_status(request: Request) -> Response:
        return JSONResponse(status_json(monitor.catalog, monitor.snapshot, language(request)))

    async def api_modes(request: Request) -> Response:
        return JSONResponse(mode_feed(monitor.catalog, monitor.snapshot))

    async def api_incidents(request: Request) -> Response:
        open_only = request.query_params.get("open") in ("1", "true")
        found = await asyncio.to_thread(monitor.store.incidents, open_only=open_only)
        return JSONResponse({"incidents": [incident_json(i) for i in found]})

    async def api_incident(request: Request) -> Response:
        incident = await asyncio.to_thread(monitor.store.incident, _int(request, "id"))
        return JSONResponse(incident_json(incident))

    async def api_incident_update(request: Request) -> Response:
        require_admin(request)
        data = await body_json(request)
        message = str(data.get("message") or "").strip()
        if not message:
            raise _Http(400, 'an update needs a "message" (and optionally "status", "author")')
        event = await asyncio.to_thread(
            monitor.incidents.operator_update,
            _int(request, "id"),
            message[:2000],
            str(data.get("author") or "operator")[:100],
            monitor.clock.now(),
            str(data.get("status") or "update")[:40],
        )
        monitor.notify([event])
        return JSONResponse(incident_json(event.incident), status_code=201)

    async def api_maintenance(request: Request) -> Response:
        if request.method == "POST":
            require_admin(request)
            data = await body_json(request)
            window = await asyncio.to_thread(add_maintenance, monitor, data)
            monitor.calendar.replace(await asyncio.to_thread(monitor.store.maintenances))
            return JSONResponse(_window_json(window), status_code=201)
        windows = await asyncio.to_thread(monitor.store.maintenances)
        return JSONResponse({"maintenance": [_window_json(w) for w in windows]})

    async def api_maintenance_cancel(request: Request) -> Response:
        require_admin(request)
        await asyncio.to_thread(monitor.store.cancel_maintenance, _int(request, "id"))
        monitor.calendar.replace(await asyncio.to_thread(monitor.store.maintenances))
        return Response(status_code=204)

    async def api_push(request: Request) -> Response:
        # The token first, then the declared length, and only then the body, read bounded:
        # an unauthenticated client must not make the monitor read (and hold) megabytes.
        locations = _push_locations(request, monitor.push_tokens)
        data = await body_json(request, MAX_BODY)
        location = str(data.get("location") or "")
        if location not in locations:
            raise _Http(
                403,
                f"this token is the one of location {', '.join(sorted(locations))}, not of"
                f" {location!r}: each location pushes with its own --location-token",
            )
        items = data.get("results")
        if not isinstance(items, list) or len(items) > MAX_PUSH_RESULTS:
            raise _Http(400, f'"results" must be a list of at most {MAX_PUSH_RESULTS} results')
        try:
            results = [ProbeResult.from_json(item, location) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise _Http(400, f"invalid result ({exc}); nothing was accepted") from None
        accepted = monitor.ingest_many(r for r in results if r.target in monitor.tracker.targets)
        return JSONResponse({"accepted": accepted, "ignored": len(results) - accepted})

    async def api_history(request: Request) -> Response:
        target = request.path_params["target"]
        try:
            resolution = Resolution(request.query_params.get("resolution", "h"))
            days = float(request.query_params.get("days", "2"))
        except ValueError:
            raise _Http(400, "resolution must be m, h or d, and days a number") from None
        if not 0 < days <= 3660:
            raise _Http(400, "days must be between 0 and 3660")
        now = monitor.clock.now()
        since = now - days * 86400
        rows = await asyncio.to_thread(monitor.store.aggregates, resolution, since, None, [target])
        interval = _interval(monitor, target)
        # The rows are those of the buckets that begin in the window: the period starts there.
        first = -(-int(since) // resolution.seconds) * resolution.seconds
        observed = Observed.of(rows, resolution.seconds, interval, now - first)
        return JSONResponse(
            {
                "target": target,
                "resolution": resolution.value,
                "period_start": first,
                "period_end": now,
                "availability": observed.figure(
                    combine(rows, resolution, target, first).availability
                ),
                **observed.as_json(),
                "buckets": [
                    {
                        "start": row.bucket,
                        "probes": row.n,
                        "up": row.up,
                        "maintenance": row.maint,
                        "availability": row.availability,
                        "latency_p50": row.percentile(0.5),
                        "latency_p95": row.percentile(0.95),
                        "latency_p99": row.percentile(0.99),
                        "latency_max": row.latency_max if row.up else None,
                        "observed_seconds": round(
                            row_seconds(row, resolution.seconds, interval), 1
                        ),
                    }
                    for row in rows
                ],
            }
        )

    async def api_targets(request: Request) -> Response:
        return JSONResponse({"targets": [_target_json(t) for t in monitor.targets]})

    async def feed(request: Request) -> Response:
        found = await asyncio.to_thread(monitor.store.incidents, limit=50)
        body = atom_feed(found, public_url or _bound_url(request), monitor.clock.now())
        return Response(body, media_type="application/atom+xml")

    async def metrics(request: Request) -> Response:
        return Response(render_metrics(monitor), media_type="text/plain; version=0.0.4")

    async def sla(request: Request) -> Response:
        month, _, fmt = request.path_params["month"].partition(".")
        if fmt not in ("", "html", "csv", "json"):
            raise _Http(404, "SLA reports exist as .html, .csv and .json")
        report = await asyncio.to_thread(
            sla_report, monitor.catalog, monitor.store, month, monitor.clock.now()
        )
        if fmt == "csv":
            return PlainTextResponse(sla_csv(report), media_type="text/csv")
        if fmt == "json":
            return JSONResponse(sla_json(report))
        lang = language(request)
        return HTMLResponse(render_sla(env, report, lang), headers={"Content-Language": lang})

    async def api_sla(request: Request) -> Response:
        report = await asyncio.to_thread(
            sla_report,
            monitor.catalog,
            monitor.store,
            request.path_params["month"],
            monitor.clock.now(),
        )
        return JSONResponse(sla_json(report))

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "at": when(monitor.clock.now())})

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, _Http):
            response = problem(exc.status, exc.message)
        elif isinstance(exc, GardeError):
            response = problem(exc.status, str(exc))
        else:
            raise exc
        if "content-length" in request.headers or "transfer-encoding" in request.headers:
            # The body may not have been read (refused before, or cut at the limit): close,
            # or the server would read the rest of it to find the next request.
            response.headers["Connection"] = "close"
        return response

    routes = [
        Route("/", page),
        Route("/healthz", health),
        Route("/feed.atom", feed),
        Route("/metrics", metrics),
        Route("/sla/{month}", sla),
        Route("/openapi.json", openapi),
        Route("/api/v1/status", api_status),
        Route("/api/v1/modes", api_modes),
        Route("/api/v1/targets", api_targets),
        Route("/api/v1/history/{target}", api_history),
        Route("/api/v1/sla/{month}", api_sla),
        Route("/api/v1/incidents", api_incidents),
        Route("/api/v1/incidents/{id}", api_incident),
        Route("/api/v1/incidents/{id}/updates", api_incident_update, methods=["POST"]),
        Route("/api/v1/maintenance", api_maintenance, methods=["GET", "POST"]),
        Route("/api/v1/maintenance/{id}", api_maintenance_cancel, methods=["DELETE"]),
        Route("/api/v1/results", api_push, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(GZipMiddleware, minimum_size=2048),
        ],
        exception_handlers={_Http: on_error, GardeError: on_error},
    )


def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_sla(env: Environment, report: SlaReport, lang: str) -> str:
    """The SLA report page (also ``garde sla --format html``)."""
    return env.get_template("sla.html").render(
        lang=lang,
        t=labels(lang),
        report=report,
        dcs=sorted({dc for row in report.rows for dc in row.data_centers}),
        start=when(report.start),
        until=when(report.until),
        span=lambda seconds: span(seconds, lang),
        min_coverage=MIN_COVERAGE,
        min_observed=MIN_OBSERVED,
    )


def _interval(monitor: Monitor, target: str) -> float:
    """How often ``target``'s series is sampled (for rows from before observed time)."""
    if target.startswith(SERVICE_PREFIX):
        return monitor.sample_interval
    known = monitor.tracker.targets.get(target)
    return known.interval if known is not None else 0.0


def _style_hash() -> str:
    # The page's only inline content is base.html's <style>: allow exactly that, by hash,
    # so that the policy needs no 'unsafe-inline'.
    text = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    found = re.search(r"<style>(.*?)</style>", text, re.DOTALL)
    style = found.group(1) if found else ""
    return "sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{_style_hash()}'; img-src 'self'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)
"""No script, no framing, no form, nothing loaded from elsewhere: the page is static HTML."""
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every answer (pages, API, feeds, errors alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is declared or found to be over ``limit``
    (chunked bodies too) and with 408 when it takes longer than ``BODY_TIMEOUT``."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise _Http(400, "Content-Length must be a number of bytes")
    if declared is not None and int(declared) > limit:
        raise _Http(413, f"body of {declared} bytes over the limit of {limit}: send less")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _Http(413, f"body over the limit of {limit} bytes: send less")
                chunks.append(chunk)
    except TimeoutError:
        raise _Http(408, f"the body took longer than {BODY_TIMEOUT:g} s to arrive") from None
    return b"".join(chunks)


def _push_locations(request: Request, tokens: dict[str, str]) -> set[str]:
    """The probe locations whose token the request carries; 401/403 before any body is read."""
    if not tokens:
        raise _Http(403, "pushes are disabled: start the monitor with --location-token NAME=TOKEN")
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer "):
        raise _Http(401, "missing bearer token (Authorization: Bearer <the location's token>)")
    # Compare with every token, so the time taken does not tell which name was close.
    found = {
        name
        for name, token in tokens.items()
        if hmac.compare_digest(given[7:].encode(), token.encode())
    }
    if not found:
        raise _Http(401, "wrong bearer token: no probe location has it (see --location-token)")
    return found


def _bound_url(request: Request) -> str:
    """``http://ADDRESS:PORT`` of the socket the request reached, not what ``Host`` says."""
    server = request.scope.get("server")
    if not server:
        return "http://127.0.0.1"
    host, port = str(server[0]), server[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}" if port in (None, 80) else f"http://{host}:{port}"


class _Http(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _int(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise _Http(400, f"{name} must be a number") from None


def _bearer_ok(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())


def add_maintenance(monitor: Monitor, data: dict[str, Any]) -> Any:
    """Validate a maintenance window fully before storing anything."""
    title = str(data.get("title") or "").strip()
    if not title:
        raise UsageError('a maintenance window needs a "title"')
    scope = data.get("scope") or []
    if not isinstance(scope, list) or not scope:
        raise UsageError('"scope" must list services (recipe-executor) or service@dc entries')
    services = {sid: list(s.endpoints) for sid, s in monitor.catalog.services.items()}
    check_scope([str(s) for s in scope], services)
    starts = parse_time(data.get("starts_at"), "starts_at")
    ends = parse_time(data.get("ends_at"), "ends_at")
    if ends <= starts:
        raise UsageError("ends_at must be after starts_at")
    rrule = data.get("rrule")
    if rrule is not None:
        check_rrule(str(rrule), starts)
    until = None if data.get("until") is None else parse_time(data["until"], "until")
    return monitor.store.add_maintenance(
        title[:200],
        [str(s) for s in scope],
        starts,
        ends,
        None if rrule is None else str(rrule),
        until,
        monitor.clock.now(),
    )


def _window_json(window: Any) -> dict[str, Any]:
    return {**maintenance_json(window), "cancelled": window.cancelled}


def _target_json(target: Any) -> dict[str, Any]:
    return {
        "id": target.id,
        "service": target.service,
        "dc": target.dc,
        "url": target.url,
        "kind": target.kind.value,
        "interval": target.interval,
        "timeout": target.timeout,
    }
