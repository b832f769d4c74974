"""The subscription pages: the form of each profession (``/for/{group}/subscribe``), the
confirmation and unsubscribe links, and each profession's Atom feed.

A link only ever shows a page with a button; the button's POST acts. Mail scanners and link
previews fetch links, and must neither confirm a subscription nor end one. The unsubscribe
POST also accepts RFC 8058's one-click body (``List-Unsubscribe=One-Click``) from a mail
client, without a session or login. These pages are never cached and never refresh.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from garde.monitor.deliveries import Subscriptions
from garde.monitor.feeds import atom_feed
from garde.monitor.subscription_words import words
from garde.monitor.subscriptions import ChannelKind, Refused, mask
from garde.monitor.web.i18n import labels
from garde.monitor.web.requests import HttpProblem, language, read_body
from garde.monitor.web.site import Site

MAX_FORM = 4096
"""A subscription form is one field: a few hundred bytes."""


class SubscribePages:
    def __init__(self, site: Site, subscriptions: Subscriptions) -> None:
        self.site = site
        self.subs = subscriptions
        # The profession page shows the form when subscriptions are on.
        site.env.globals["subscribe_words"] = words

    def routes(self) -> list[Route]:
        return [
            Route("/for/{group}/subscribe", self.form, methods=["GET", "POST"]),
            Route("/for/{group}/feed.atom", self.feed),
            Route("/subscriptions/confirm/{token}", self.confirm, methods=["GET", "POST"]),
            Route("/subscriptions/unsubscribe/{token}", self.unsubscribe, methods=["GET", "POST"]),
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        base = self.site.base_url(request).rstrip("/")
        if self.subs.deliverer.base_url is None:
            # No --public-url: links in messages point where this request arrived (the
            # listening socket's address, never the Host header).
            self.subs.deliverer.base_url = base
        return base

    def _group(self, request: Request) -> Any:
        catalog = self.site.monitor.catalog
        gid = request.path_params["group"]
        if gid not in catalog.target_groups:
            known = ", ".join(sorted(catalog.target_groups))
            raise HttpProblem(404, f"no profession {gid!r} in the catalog; known: {known}")
        return gid, catalog.target_groups[gid]

    def _page(self, template: str, lang: str, status: int = 200, **model: Any) -> Response:
        html = self.site.env.get_template(template).render(
            lang=lang, t=labels(lang), w=words(lang), hours=self._hours(), **model
        )
        return HTMLResponse(
            html,
            status_code=status,
            headers={"Content-Language": lang, "Cache-Control": "no-store"},
        )

    def _hours(self) -> int:
        return round(float(self.subs.rules.confirm_within) / 3600)

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        raw = await read_body(request, MAX_FORM)
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            raise Refused("err_form") from None
        return {k: v[0] for k, v in fields.items()}

    def _group_name(self, gid: str, lang: str) -> str:
        group = self.site.monitor.catalog.target_groups.get(gid)
        return str(group.names.get(lang)) if group is not None else gid

    # -- pages -----------------------------------------------------------------------------

    async def form(self, request: Request) -> Response:
        gid, group = self._group(request)
        lang = language(request)
        model: dict[str, Any] = {"group_id": gid, "group_name": group.names.get(lang)}
        if request.method == "GET":
            return self._page("subscribe.html", lang, **model)
        fields: dict[str, str] = {}
        try:
            fields = await self._form(request)
            if fields.get("lang") in ("fr", "nl", "en"):
                lang = fields["lang"]
                model["group_name"] = group.names.get(lang)
            client = request.client.host if request.client else "unknown"
            channel = fields.get("channel", "")
            await self.subs.desk.ask(gid, channel, lang, client, self._base(request))
        except Refused as refused:
            message = words(lang)[refused.key].format(**refused.params)
            # What was typed stays in the field, to be fixed rather than typed again.
            model["channel"] = fields.get("channel", "")[:512]
            return self._page("subscribe.html", lang, refused.status, error=message, **model)
        # The same answer whether the address was new, pending or already confirmed: the
        # form must not tell a stranger who subscribes.
        return self._page("subscribe.html", lang, sent=mask(channel.strip()), **model)

    async def confirm(self, request: Request) -> Response:
        lang = language(request)
        token = request.path_params["token"]
        if request.method == "GET":
            pending = await self.subs.desk.pending(token)
            if pending is None:
                return self._page("subscription.html", lang, 404, state="confirm_unknown")
            return self._page(
                "subscription.html",
                pending.lang if "lang" not in request.query_params else lang,
                state="confirm",
                address=mask(pending.address),
                group_name=self._group_name(pending.group, pending.lang),
            )
        await read_body(request, MAX_FORM)
        done = await self.subs.desk.confirm(token, self._base(request))
        if done is None:
            return self._page("subscription.html", lang, 404, state="confirm_unknown")
        sub = done.subscription
        return self._page(
            "subscription.html",
            sub.lang,
            state="confirmed",
            address=mask(sub.address),
            group_name=self._group_name(sub.group, sub.lang),
            secret=sub.secret if sub.kind == ChannelKind.WEBHOOK.value else None,
            unsubscribe=done.unsubscribe_url,
        )

    async def unsubscribe(self, request: Request) -> Response:
        lang = language(request)
        token = request.path_params["token"]
        if request.method == "GET":
            found = await self.subs.desk.find(token)
            if found is None:
                return self._page("subscription.html", lang, state="unsub_unknown")
            return self._page(
                "subscription.html",
                found.lang if "lang" not in request.query_params else lang,
                state="unsubscribe",
                address=mask(found.address),
                group_name=self._group_name(found.group, found.lang),
            )
        # The button's form, or a mail client's RFC 8058 one-click POST: either acts.
        await read_body(request, MAX_FORM)
        gone = await self.subs.desk.leave(token)
        return self._page("subscription.html", gone.lang if gone else lang, state="unsub_done")

    async def feed(self, request: Request) -> Response:
        gid, group = self._group(request)
        monitor = self.site.monitor
        found = await asyncio.to_thread(monitor.store.incidents, limit=200)
        mine = [i for i in found if gid in i.groups][:50]
        body = atom_feed(
            mine,
            self.site.base_url(request),
            monitor.clock.now(),
            path=f"/for/{gid}/feed.atom",
            title=f"garde: incidents for {group.names.get('en') or gid}",
        )
        return Response(body, media_type="application/atom+xml")
