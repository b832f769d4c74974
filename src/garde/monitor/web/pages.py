"""The pages people read: the status page, the SLA report, the Atom feed."""

from __future__ import annotations

import asyncio

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from garde.monitor.feeds import atom_feed
from garde.monitor.formats import when
from garde.monitor.observed import MIN_COVERAGE, MIN_OBSERVED
from garde.monitor.sla import SlaReport, sla_csv, sla_json, sla_report
from garde.monitor.web.i18n import labels, span
from garde.monitor.web.rendered import respond
from garde.monitor.web.requests import HttpProblem, language, path_int
from garde.monitor.web.site import Site
from garde.monitor.web.views import incident_page, profession_page, status_page


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


class Pages:
    def __init__(self, site: Site) -> None:
        self.site = site

    async def status(self, request: Request) -> Response:
        monitor = self.site.monitor
        lang = language(request)
        snap = monitor.snapshot

        def render() -> str:
            model = status_page(
                monitor.catalog,
                snap,
                monitor.store,
                monitor.calendar,
                lang,
                monitor.clock.now(),
                self.site.history,
            )
            return self.site.env.get_template("status.html").render(**model)

        key = ("status", lang, snap.at, self.site.writes)
        page = await self.site.rendered.get(key, lang, snap.at, render, ("status", lang))
        return respond(request, page)

    async def profession(self, request: Request) -> Response:
        monitor = self.site.monitor
        group = request.path_params["group"]
        if group not in monitor.catalog.target_groups:
            known = ", ".join(sorted(monitor.catalog.target_groups))
            raise HttpProblem(404, f"no profession {group!r} in the catalog; known: {known}")
        lang = language(request)
        snap = monitor.snapshot

        def render() -> str:
            model = profession_page(
                monitor.catalog, snap, monitor.store, group, lang, monitor.clock.now()
            )
            return self.site.env.get_template("profession.html").render(**model)

        key = ("for", group, lang, snap.at, self.site.writes)
        family = ("for", group, lang)
        return respond(request, await self.site.rendered.get(key, lang, snap.at, render, family))

    async def incident(self, request: Request) -> Response:
        monitor = self.site.monitor
        lang = language(request)
        found = await asyncio.to_thread(monitor.store.incident, path_int(request, "id"))
        model = incident_page(monitor.catalog, found, lang, monitor.clock.now())
        html = self.site.env.get_template("incident.html").render(**model)
        return HTMLResponse(html, headers={"Content-Language": lang, "Cache-Control": "no-cache"})

    async def sla(self, request: Request) -> Response:
        monitor = self.site.monitor
        month, _, fmt = request.path_params["month"].partition(".")
        if fmt not in ("", "html", "csv", "json"):
            raise HttpProblem(404, "SLA reports exist as .html, .csv and .json")
        report = await asyncio.to_thread(
            sla_report, monitor.catalog, monitor.store, month, monitor.clock.now()
        )
        if fmt == "csv":
            return PlainTextResponse(sla_csv(report), media_type="text/csv")
        if fmt == "json":
            return JSONResponse(sla_json(report))
        lang = language(request)
        html = render_sla(self.site.env, report, lang)
        return HTMLResponse(html, headers={"Content-Language": lang})

    async def feed(self, request: Request) -> Response:
        monitor = self.site.monitor
        found = await asyncio.to_thread(monitor.store.incidents, limit=50)
        body = atom_feed(found, self.site.base_url(request), monitor.clock.now())
        return Response(body, media_type="application/atom+xml")
