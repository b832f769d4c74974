"""The gateway's own endpoints: status, mode events (SSE), receipts, Prometheus metrics.

For the care software (a banner, a receipt to show) and the operator. When an admin token
is configured every one of them needs ``Authorization: Bearer <token>``; without one the
gateway must be bound to loopback (``GatewayConfig.check``).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import time
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from garde.errors import EntryNotFound, JournalError, RequestRejected
from garde.gateway.backlog import gauges as backlog_gauges
from garde.gateway.board import MODES, Snapshot, worst_mode
from garde.gateway.events import mode_event
from garde.gateway.metrics import Metrics
from garde.gateway.wire import Reply, Request
from garde.journal import Backlog
from garde.locales import moment, rfc3339

if TYPE_CHECKING:
    from garde.gateway.handler import Gateway

JSON = (b"Content-Type", b"application/json")


def _json(status: int, data: object) -> Reply:
    return Reply(status, [JSON], json.dumps(data, ensure_ascii=False).encode())


class Admin:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        token = gateway.config.admin_token
        self.expected = f"Bearer {token}".encode() if token else None

    async def handle(self, request: Request) -> Reply:
        gateway = self.gateway
        if self.expected is not None:
            given = request.header(b"authorization") or b""
            if not hmac.compare_digest(given, self.expected):
                reply = gateway.reject(
                    RequestRejected(
                        401, "this endpoint needs Authorization: Bearer <admin_token from config>"
                    ),
                    request,
                )
                reply.headers.append((b"WWW-Authenticate", b'Bearer realm="garde"'))
                return reply
        if request.method != b"GET":
            return gateway.reject(RequestRejected(405, "admin endpoints answer GET only"), request)
        path = request.path
        if path == "/metrics":
            metrics = self.metrics()
            journal = gateway.callers.journal  # a store: it can say what it holds
            if journal is not None:
                try:
                    found: Backlog | None = await journal.backlog()
                except JournalError:
                    found = None
                metrics.gauges.append(partial(backlog_gauges, found, gateway.catalog, time.time()))
            body = metrics.render().encode()
            return Reply(200, [(b"Content-Type", b"text/plain; version=0.0.4")], body)
        if path == "/_garde/status":
            return _json(200, await self.status())
        if path in ("/_garde", "/_garde/"):
            return await self.page(request)
        if path == "/_garde/events":
            snapshot = [mode_event(u) for u in gateway.upstreams.values()]
            headers = [(b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache")]
            return Reply(200, headers, stream=gateway.events.stream(snapshot))
        if path.startswith("/_garde/receipts/"):
            return await self.receipt(path.removeprefix("/_garde/receipts/"), request)
        return gateway.reject(
            RequestRejected(
                404,
                f"no admin endpoint {path}: try /_garde/ (the page), /_garde/status,"
                " /_garde/events,"
                " /_garde/receipts/<id> or /metrics",
            ),
            request,
        )

    async def page(self, request: Request) -> Reply:
        """The local page (``localpage.py``) for the site's IT person."""
        from garde.gateway import localpage

        query = {
            k: v[-1] for k, v in parse_qs(urlsplit(request.target.decode("latin-1")).query).items()
        }
        accept = request.header(b"accept-language")
        language = localpage.language_of(query, accept.decode("latin-1") if accept else None)
        body = await localpage.render(
            self.gateway, await self.status(), language, query.get("receipt")
        )
        headers = [
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"Cache-Control", b"no-store"),
            (
                b"Content-Security-Policy",
                b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
                b" base-uri 'none'; frame-ancestors 'none'",
            ),
            (b"X-Content-Type-Options", b"nosniff"),
            (b"Referrer-Policy", b"no-referrer"),
        ]
        return Reply(200, headers, body)

    def snapshot(self) -> Snapshot:
        """What this worker shares with the others (see ``board.py``)."""
        gateway = self.gateway
        gateway.sync_reports()
        now = time.monotonic()
        services: dict[str, object] = {}
        for sid, upstreams in gateway.upstreams.items():
            upstreams.refresh()
            services[sid] = {
                "mode": upstreams.mode.value,
                "data_center": upstreams.in_use,
                "open": [link.dc for link in upstreams.links if link.ejected_until > now],
            }
        budget = gateway.budget
        return {
            "metrics": gateway.metrics.snapshot(),
            "services": services,
            "stale_cache_entries": len(gateway.cache),
            "retry_budget": {
                "requests_in_window": budget.requests,
                "retries_in_window": budget.retries,
                "refused": budget.refused,
            },
        }

    def views(self) -> list[Snapshot]:
        """This worker's snapshot, then those of the other live workers (if any)."""
        own = self.snapshot()
        board = self.gateway.board
        return board.gather(own) if board is not None else [own]

    def metrics(self) -> Metrics:
        """The whole gateway's counters: every live worker's, summed."""
        views = self.views()
        total = Metrics()
        for view in views:
            total.add(view["metrics"])
        total.gauges.append(partial(self._gauges, views))
        return total

    async def status(self) -> dict[str, object]:
        gateway = self.gateway
        views = self.views()
        services: dict[str, object] = {}
        for sid, upstreams in gateway.upstreams.items():
            entry = upstreams.as_json()
            # With several workers, the service is in the worst mode any of them sees: some
            # requests get that treatment. The data-center detail is this worker's view.
            entry["mode"] = worst_mode([v["services"][sid]["mode"] for v in views])
            if gateway.journal is not None:
                try:
                    entry["journal_depth"] = await gateway.journal.depth(sid)
                except JournalError as exc:
                    entry["journal_depth"] = None
                    entry["journal_error"] = str(exc)
            services[sid] = entry
        return {
            "gateway": {
                "catalog": gateway.catalog.name,
                **moment("started", gateway.started),
                "started_at": rfc3339(gateway.started),
                "uptime": round(time.time() - gateway.started, 1),
                "target_group": gateway.config.target_group,
                "journal": gateway.journal is not None,
                "retry_budget": {
                    key: sum(v["retry_budget"][key] for v in views)
                    for key in ("requests_in_window", "retries_in_window", "refused")
                },
                "stale_cache_entries": sum(v["stale_cache_entries"] for v in views),
                "hedging": {
                    "enabled": gateway.config.hedge,
                    "budget": gateway.hedge_budget.as_json(),
                    "delays": gateway.hedge_delays.as_json(),
                },
                "data_plane": self.data_plane(),
                "workers": [
                    {
                        "worker": v.get("worker", 0),
                        "pid": v.get("pid", os.getpid()),
                        "modes": {sid: e["mode"] for sid, e in v["services"].items()},
                    }
                    for v in views
                ],
            },
            "services": services,
        }

    def data_plane(self) -> dict[str, object]:
        """Which data plane serves the common case here (this worker), and its counters."""
        gateway = self.gateway
        if gateway.data_plane is not None:
            return {"kind": "native", **gateway.data_plane.counters()}
        return {"kind": "off" if gateway.config.fast_path_mode() == "off" else "python"}

    async def receipt(self, entry_id: str, request: Request) -> Reply:
        gateway = self.gateway
        if gateway.journal is None:
            return gateway.reject(
                RequestRejected(404, "this gateway runs without a journal"), request
            )
        if not entry_id or len(entry_id) > 128 or "/" in entry_id:
            return gateway.reject(RequestRejected(400, "a receipt id is one path segment"), request)
        try:
            receipt = await gateway.journal.receipt(entry_id)
        except EntryNotFound:
            return gateway.reject(RequestRejected(404, f"no receipt {entry_id!r}"), request)
        data = dataclasses.asdict(receipt)
        data["state"] = receipt.state.value
        for name in ("created_at", "updated_at", "deadline"):
            data.update(moment(name, getattr(receipt, name)))
        if receipt.answer is not None:
            data["answer"] = {
                "status": receipt.answer.status,
                "content_type": receipt.answer.content_type,
                "body": receipt.answer.body.decode("utf-8", "replace"),
            }
        return _json(200, data)

    def _gauges(self, views: list[Snapshot]) -> list[tuple[str, str, dict[str, str], float]]:
        out: list[tuple[str, str, dict[str, str], float]] = []
        for sid, upstreams in self.gateway.upstreams.items():
            mode = worst_mode([v["services"][sid]["mode"] for v in views])
            for name in MODES:
                out.append(
                    (
                        "garde_gateway_service_mode",
                        "1 for the service's current mode (the worst any worker sees).",
                        {"service": sid, "mode": name},
                        1.0 if mode == name else 0.0,
                    )
                )
            open_somewhere = {dc for v in views for dc in v["services"][sid]["open"]}
            for link in upstreams.links:
                out.append(
                    (
                        "garde_gateway_breaker_open",
                        "1 while the data center's circuit breaker is open (ejected) in a worker.",
                        {"service": sid, "data_center": link.dc},
                        1.0 if link.dc in open_somewhere else 0.0,
                    )
                )
        out.append(
            (
                "garde_gateway_stale_cache_entries",
                "Answers kept for stale reads (all workers).",
                {},
                float(sum(v["stale_cache_entries"] for v in views)),
            )
        )
        out.append(("garde_gateway_workers", "Worker processes answering.", {}, float(len(views))))
        return out
