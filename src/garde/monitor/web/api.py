"""The JSON API (``/api/v1``, described by ``/openapi.json``): what machines read, the
operator's writes, and the probe locations' pushes."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from garde.locales import moment, rfc3339
from garde.monitor.feeds import mode_feed
from garde.monitor.formats import incident_json, maintenance_json
from garde.monitor.history import SERVICE_PREFIX, combine
from garde.monitor.maintenance import plan_window
from garde.monitor.metrics import render_metrics
from garde.monitor.observed import Observed, row_seconds
from garde.monitor.openapi import OPENAPI
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.sla import sla_json, sla_report
from garde.monitor.store.base import Maintenance, Resolution
from garde.monitor.targets import Target
from garde.monitor.web.requests import (
    HttpProblem,
    body_json,
    language,
    path_int,
    push_locations,
    require_admin,
)
from garde.monitor.web.site import Site
from garde.monitor.web.views import status_json

MAX_PUSH_RESULTS = 10_000
MAX_BODY = 4 << 20
"""Largest push from a probe location (10,000 results fit in about 2 MiB)."""


class Api:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.monitor = site.monitor

    # -- reads ---------------------------------------------------------------------------------
    async def status(self, request: Request) -> Response:
        monitor = self.monitor
        return JSONResponse(status_json(monitor.catalog, monitor.snapshot, language(request)))

    async def modes(self, request: Request) -> Response:
        return JSONResponse(mode_feed(self.monitor.catalog, self.monitor.snapshot))

    async def targets(self, request: Request) -> Response:
        return JSONResponse({"targets": [_target_json(t) for t in self.monitor.targets]})

    async def incidents(self, request: Request) -> Response:
        open_only = request.query_params.get("open") in ("1", "true")
        found = await asyncio.to_thread(self.monitor.store.incidents, open_only=open_only)
        return JSONResponse({"incidents": [incident_json(i) for i in found]})

    async def incident(self, request: Request) -> Response:
        found = await asyncio.to_thread(self.monitor.store.incident, path_int(request, "id"))
        return JSONResponse(incident_json(found))

    async def history(self, request: Request) -> Response:
        monitor = self.monitor
        target = request.path_params["target"]
        try:
            resolution = Resolution(request.query_params.get("resolution", "h"))
            days = float(request.query_params.get("days", "2"))
        except ValueError:
            raise HttpProblem(400, "resolution must be m, h or d, and days a number") from None
        if not 0 < days <= 3660:
            raise HttpProblem(400, "days must be between 0 and 3660")
        now = monitor.clock.now()
        since = now - days * 86400
        rows = await asyncio.to_thread(monitor.store.aggregates, resolution, since, None, [target])
        interval = _interval(monitor, target)
        # The rows are those of the buckets that begin in the window: the period starts there.
        first = -(-int(since) // resolution.seconds) * resolution.seconds
        observed = Observed.of(rows, resolution.seconds, interval, now - first)
        availability = combine(rows, resolution, target, first).availability
        return JSONResponse(
            {
                "target": target,
                "resolution": resolution.value,
                **moment("period_start", first),
                **moment("period_end", now),
                "availability": observed.figure(availability),
                **observed.as_json(),
                "buckets": [
                    {
                        **moment("start", row.bucket),
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

    async def sla(self, request: Request) -> Response:
        monitor = self.monitor
        month = request.path_params["month"]
        report = await asyncio.to_thread(
            sla_report, monitor.catalog, monitor.store, month, monitor.clock.now()
        )
        return JSONResponse(sla_json(report))

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "at": rfc3339(self.monitor.clock.now())})

    async def metrics(self, request: Request) -> Response:
        return Response(render_metrics(self.monitor), media_type="text/plain; version=0.0.4")

    # -- the operator's writes -----------------------------------------------------------------
    async def incident_update(self, request: Request) -> Response:
        monitor = self.monitor
        require_admin(request, self.site.admin_token)
        data = await body_json(request)
        message = str(data.get("message") or "").strip()
        if not message:
            raise HttpProblem(
                400, 'an update needs a "message" (and optionally "status", "author")'
            )
        event = await asyncio.to_thread(
            monitor.incidents.operator_update,
            path_int(request, "id"),
            message[:2000],
            str(data.get("author") or "operator")[:100],
            monitor.clock.now(),
            str(data.get("status") or "update")[:40],
        )
        monitor.notify([event])
        self.site.changed()
        return JSONResponse(incident_json(event.incident), status_code=201)

    async def maintenance(self, request: Request) -> Response:
        monitor = self.monitor
        if request.method == "POST":
            require_admin(request, self.site.admin_token)
            data = await body_json(request)
            window = await asyncio.to_thread(_plan, monitor, data)
            monitor.calendar.replace(await asyncio.to_thread(monitor.store.maintenances))
            self.site.changed()
            return JSONResponse(_window_json(window), status_code=201)
        windows = await asyncio.to_thread(monitor.store.maintenances)
        return JSONResponse({"maintenance": [_window_json(w) for w in windows]})

    async def maintenance_cancel(self, request: Request) -> Response:
        monitor = self.monitor
        require_admin(request, self.site.admin_token)
        await asyncio.to_thread(monitor.store.cancel_maintenance, path_int(request, "id"))
        monitor.calendar.replace(await asyncio.to_thread(monitor.store.maintenances))
        self.site.changed()
        return Response(status_code=204)

    # -- the probe locations' pushes -----------------------------------------------------------
    async def push(self, request: Request) -> Response:
        monitor = self.monitor
        # The token first, then the declared length, and only then the body, read bounded:
        # an unauthenticated client must not make the monitor read (and hold) megabytes.
        locations = push_locations(request, monitor.push_tokens)
        data = await body_json(request, MAX_BODY)
        location = str(data.get("location") or "")
        if location not in locations:
            raise HttpProblem(
                403,
                f"this token is the one of location {', '.join(sorted(locations))}, not of"
                f" {location!r}: each location pushes with its own --location-token",
            )
        items = data.get("results")
        if not isinstance(items, list) or len(items) > MAX_PUSH_RESULTS:
            raise HttpProblem(
                400, f'"results" must be a list of at most {MAX_PUSH_RESULTS} results'
            )
        try:
            results = [ProbeResult.from_json(item, location) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise HttpProblem(400, f"invalid result ({exc}); nothing was accepted") from None
        accepted = monitor.ingest_many(r for r in results if r.target in monitor.tracker.targets)
        return JSONResponse({"accepted": accepted, "ignored": len(results) - accepted})


def _plan(monitor: Monitor, data: dict[str, Any]) -> Maintenance:
    scope = data.get("scope") or []
    if not isinstance(scope, list):
        raise HttpProblem(400, '"scope" must list services (recipe-executor) or service@dc entries')
    rrule = data.get("rrule")
    return plan_window(
        monitor.store,
        monitor.catalog,
        title=str(data.get("title") or ""),
        scope=scope,
        starts=data.get("starts_at"),
        ends=data.get("ends_at"),
        rrule=None if rrule is None else str(rrule),
        until=data.get("until"),
        now=monitor.clock.now(),
    )


def _interval(monitor: Monitor, target: str) -> float:
    """How often ``target``'s series is sampled (for rows from before observed time)."""
    if target.startswith(SERVICE_PREFIX):
        return monitor.sample_interval
    known = monitor.tracker.targets.get(target)
    return known.interval if known is not None else 0.0


def _window_json(window: Maintenance) -> dict[str, Any]:
    return {**maintenance_json(window), "cancelled": window.cancelled}


def _target_json(target: Target) -> dict[str, Any]:
    return {
        "id": target.id,
        "service": target.service,
        "dc": target.dc,
        "url": target.url,
        "kind": target.kind.value,
        "interval": target.interval,
        "timeout": target.timeout,
    }
