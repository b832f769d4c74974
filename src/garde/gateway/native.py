"""The Python half of the native data plane (``_plane.c``, docs/gateway-data-plane.md).

The native plane owns the listening socket and serves, in its own thread, exactly the
requests the Python fast path would serve (``fastpath.py``). This module is everything it
does not decide:

- it **publishes** the routing table: per retry-safe SOAP operation (path and SOAPAction as
  sent), the data center the Python fast path would use right now, with the headers garde
  adds; again whenever a service's plan may have changed, and when a plan ends by the clock;
- it **drains** what the plane counted into the gateway's own state: attempts, successes and
  failures (in their order, per data center) into outlier detection and the breakers,
  latencies into the metrics, requests into the retry budget;
- it **adopts** the connections the plane hands over, with the bytes already read from them,
  into the gateway's Python server, which serves them from then on with every rule.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from garde.gateway.metrics import BUCKETS
from garde.gateway.routing import OperationRoute
from garde.gateway.transport import HttpTransport
from garde.gateway.upstreams import OUTRUN, Link, ServiceUpstreams
from garde.gateway.wire import status_line

if TYPE_CHECKING:
    from garde.gateway.app import GatewayServer

log = logging.getLogger("garde.gateway")

_plane: ModuleType | None
try:
    from garde.gateway import _plane
except ImportError:  # not built here (no C compiler, not Linux): the Python fast path serves
    _plane = None

DRAIN_INTERVAL = 0.05
"""Seconds between drains when nothing urgent happened: successes reach the metrics and the
breakers this late at most (failures and hand-overs wake Python at once)."""


DELAYS_CHECK = 0.25
"""Seconds between comparisons of the hedge delays with the published ones (a table is
republished when one moved by a fifth)."""


def available() -> bool:
    """Whether the native data plane was built for this interpreter."""
    return _plane is not None


def unavailable_reason(server: GatewayServer) -> str | None:
    """Why the native plane cannot serve this gateway, or None if it can."""
    config = server.gateway.config
    if _plane is None:
        return "the native data plane was not built here (it needs Linux and a C compiler)"
    if not isinstance(server.gateway.transport, HttpTransport):
        return "the gateway uses another transport than HTTP"
    if config.xml_validation == "full":
        return "xml_validation: full parses every body, which only Python does"
    allowed = server.allowed_hosts
    if allowed is not None and len(allowed) > _plane.MAX_ALLOWED_HOSTS:
        return f"more than {_plane.MAX_ALLOWED_HOSTS} allowed_hosts (the plane checks that many)"
    return None


def _variants(action: str) -> tuple[bytes, ...]:
    """The SOAPAction values as callers send them for ``action``: bare and quoted."""
    raw = action.encode("latin-1")
    return (raw, b'"' + raw + b'"')


class NativePlane:
    """One worker's native data plane, serving ``sock`` for ``server``."""

    def __init__(self, server: GatewayServer, sock: socket.socket) -> None:
        assert _plane is not None
        gateway = server.gateway
        config = gateway.config
        self.server = server
        self.gateway = gateway
        self.sock = sock
        allowed = server.allowed_hosts
        transport = gateway.transport
        assert isinstance(transport, HttpTransport)
        self.plane: Any = _plane.Plane(
            sock.fileno(),
            config.max_body,
            config.max_headers,
            config.max_header_bytes,
            config.connect_timeout,
            transport.idle_timeout,
            transport.max_idle,
            None if allowed is None else tuple(sorted(h.encode("latin-1") for h in allowed)),
            [status_line(status) for status in range(600)],
            BUCKETS,
            config.client_header_timeout,
            config.client_idle_timeout,
            config.max_clients,
        )
        self._cap_reached = 0
        self._link_ids: dict[Link, int] = {}
        self._links: list[tuple[ServiceUpstreams, Link]] = []
        self._route_ids: dict[int, int] = {}
        """id(route) -> the plane's number for it (routes compare by value, not identity)."""
        self._routes: list[OperationRoute] = []
        self._addresses: dict[tuple[str, int], tuple[int, str] | None] = {}
        self._publish_scheduled = False
        self._valid_until = float("inf")
        self._tick: asyncio.TimerHandle | None = None
        self._route_dcs: dict[int, str] = {}
        """Published route id -> the data center it is sent to (its answer times' key)."""
        self._published_delays: dict[int, float] = {}
        self._hedged = 0
        self._delays_checked = 0.0
        self._answers_since = False
        """Answers were counted since the hedge delays were last compared with the table's."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.adopted = 0

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        for upstreams in self.gateway.upstreams.values():
            upstreams.plan_changed.connect(self._plan_changed)
        self.gateway.callers.wanted_changed.connect(self._tokens_wanted)
        self.gateway.attach_data_plane(self)
        self.publish()
        loop.add_reader(self.plane.notify_fd, self.drain)
        self.plane.start()
        self._tick = loop.call_later(DRAIN_INTERVAL, self._on_tick)

    def close(self) -> None:
        """Stop the plane: its connections are closed; adopted ones stay with Python."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._loop is not None:
            self._loop.remove_reader(self.plane.notify_fd)
        self.plane.stop()
        self.drain(adopt=False)  # the last counts; hand-overs left are closed by stop()
        for upstreams in self.gateway.upstreams.values():
            upstreams.plan_changed.disconnect(self._plan_changed)
        self.gateway.callers.wanted_changed.disconnect(self._tokens_wanted)
        self.gateway.detach_data_plane(self)

    def counters(self) -> dict[str, object]:
        """Connections accepted, requests served natively, connections handed over to Python
        and adopted by it, since the start; client connections the plane holds now."""
        counters: dict[str, object] = dict(self.plane.counters())
        counters["adopted"] = self.adopted
        counters["clients"] = self.plane.clients
        return counters

    def _on_tick(self) -> None:
        self.drain()
        capped = int(self.plane.counters()["cap_reached"])
        if capped > self._cap_reached:
            self.server.capped(capped - self._cap_reached)  # logged by the server, as its own
            self._cap_reached = capped
        now = time.monotonic()
        if now >= self._valid_until:
            self.publish()  # an ejection ran out: the plan changes by the clock
        elif self._answers_since and now - self._delays_checked >= DELAYS_CHECK:
            self._delays_checked = now
            self._answers_since = False
            if self._delays_moved():
                self.publish()
        assert self._loop is not None
        self._tick = self._loop.call_later(DRAIN_INTERVAL, self._on_tick)

    def _delays_moved(self) -> bool:
        """Whether a route's hedge delay moved by a fifth or more since it was published."""
        now = self._delays()
        for route_id, delay in now.items():
            before = self._published_delays.get(route_id)
            if before is None or abs(delay - before) > 0.2 * before:
                return True
        return False

    # -- the routing table -------------------------------------------------------------------
    def _plan_changed(self, _: ServiceUpstreams | None) -> None:
        if not self._publish_scheduled and self._loop is not None:
            self._publish_scheduled = True
            self._loop.call_soon(self.publish)

    def _tokens_wanted(self) -> None:
        """Journaled writes wait for a caller's token, or no longer do: while they wait,
        Python reads every call (the plane serves none), so that the token is seen."""
        self._plan_changed(None)

    def _link_id(self, upstreams: ServiceUpstreams, link: Link) -> int:
        found = self._link_ids.get(link)
        if found is None:
            found = self._link_ids[link] = len(self._links)
            self._links.append((upstreams, link))
        return found

    def _route_id(self, route: OperationRoute) -> int:
        found = self._route_ids.get(id(route))
        if found is None:
            found = self._route_ids[id(route)] = len(self._routes)
            self._routes.append(route)
        return found

    def _speaks(self, scheme: str) -> bool:
        """Whether the plane can reach a data center by ``scheme`` as Python would."""
        if scheme == "http":
            return True
        transport = self.gateway.transport
        return (
            scheme == "https"
            and bool(getattr(_plane, "TLS", 0))
            and isinstance(transport, HttpTransport)
            and transport.default_tls
        )

    def _address(self, host: str, port: int) -> tuple[int, str] | None:
        """(family, numeric address) of a data center, resolved once; None if it cannot be."""
        key = (host, port)
        if key not in self._addresses:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                log.warning(
                    "native data plane: cannot resolve %s (%s): Python serves it", host, exc
                )
                infos = []
            self._addresses[key] = (int(infos[0][0]), str(infos[0][4][0])) if infos else None
        return self._addresses[key]

    def publish(self) -> None:
        """Give the plane a whole new table: what the Python fast path would do now."""
        self._publish_scheduled = False
        gateway = self.gateway
        config = gateway.config
        links: list[tuple[int, int, str, int, bytes, bytes, bytes, str | None]] = []
        routes: list[
            tuple[
                int, bytes, bytes | None, int, float, float, float, float, bool, bytes, int, float
            ]
        ] = []
        hedging = config.hedge
        delays = gateway.hedge_delays
        self._route_dcs.clear()
        valid_until = float("inf")
        for entry in gateway.router.services:
            if not entry.soap or gateway.callers.wanted:
                continue
            upstreams = gateway.upstreams[entry.service.id]
            plan = upstreams.plan()
            if not plan or plan[0].probation or not self._speaks(plan[0].endpoint.scheme):
                continue  # nothing to try, a half-open trial, or TLS it cannot do: Python
            link = plan[0]
            link_id = self._publish_link(links, upstreams, link)
            if link_id is None:
                continue
            # The next data center of the plan, for hedges: as the general path would pick
            # it, but never a half-open trial (Python claims those, one at a time).
            hedge_id = -1
            if hedging and len(plan) > 1 and not plan[1].probation:
                found = self._publish_link(links, upstreams, plan[1])
                hedge_id = -1 if found is None else found
            until = upstreams.plan_until
            valid_until = min(valid_until, until)
            prefix = entry.prefix.encode("latin-1")
            for action, route in entry.by_action.items():
                if not route.retry_safe or route.needs_envelope or route.element is None:
                    continue
                route_id = self._route_id(route)
                self._route_dcs[route_id] = link.dc
                after = delays.delay(route.label, link.dc) if hedge_id >= 0 else 0.0
                for raw in _variants(action):
                    if gateway.router.by_action(entry, raw) is not route:
                        continue
                    routes.append(
                        (
                            route_id,
                            prefix,
                            raw,
                            link_id,
                            route.timeout,
                            config.min_try_timeout,
                            config.try_timeout_factor,
                            until,
                            len(plan) > 1,
                            route.element,
                            hedge_id,
                            after,
                        )
                    )
        self._valid_until = valid_until
        self._published_delays = self._delays()
        self.plane.publish(links, routes)

    def _publish_link(
        self,
        links: list[tuple[int, int, str, int, bytes, bytes, bytes, str | None]],
        upstreams: ServiceUpstreams,
        link: Link,
    ) -> int | None:
        """Put ``link`` in the table being built (once); its id, or None if the plane cannot
        reach it (TLS it cannot do, a name that does not resolve)."""
        endpoint = link.endpoint
        if not self._speaks(endpoint.scheme):
            return None
        address = self._address(endpoint.host, endpoint.port)
        if address is None:
            return None
        link_id = self._link_id(upstreams, link)
        if any(entry[0] == link_id for entry in links):
            return link_id
        _, tail, _ = self.server.fast.tail(upstreams, link)
        links.append(
            (
                link_id,
                address[0],
                address[1],
                endpoint.port,
                endpoint.base_target,
                b" HTTP/1.1\r\nHost: " + endpoint.host_header + b"\r\n",
                tail,
                endpoint.host if endpoint.scheme == "https" else None,
            )
        )
        return link_id

    def _delays(self) -> dict[int, float]:
        """The hedge delay of each published route now (republished when one moves)."""
        delays = self.gateway.hedge_delays
        return {
            route_id: delays.delay(self._routes[route_id].label, dc)
            for route_id, dc in self._route_dcs.items()
        }

    # -- outcomes ----------------------------------------------------------------------------
    def drain(self, adopt: bool = True) -> None:
        """Bring what the plane counted into the gateway's state; adopt hand-overs."""
        handovers, events, link_counts, route_counts = self.plane.drain()
        gateway = self.gateway
        attempts = gateway.metrics.attempts
        for link_id, ok_before, key, reason in events:
            upstreams, link = self._links[link_id]
            service = upstreams.service.id
            if ok_before:
                attempts[(service, link.dc, "ok")] += ok_before
                upstreams.succeeded(link, ok_before)
            if key:  # none: not an attempt's end, news about one (outrun by its hedge)
                attempts[(service, link.dc, key)] += 1
            upstreams.failed(link, OUTRUN if reason == "slow" else reason)
        for link_id, ok, latency in link_counts:
            upstreams, link = self._links[link_id]
            if latency > 0:
                link.latency = latency
            if ok:
                attempts[(upstreams.service.id, link.dc, "ok")] += ok
                upstreams.succeeded(link, ok)
        metrics = gateway.metrics
        forwarded = 0
        delays = gateway.hedge_delays
        if route_counts and gateway.config.hedge:
            self._answers_since = True
        for route_id, count, buckets, seconds, hedged in route_counts:
            route = self._routes[route_id]
            service = route.service.id
            metrics.requests[(route.label, "forwarded")] += count
            mine = metrics.latency[service]
            dc = self._route_dcs.get(route_id)
            for i, n in enumerate(buckets):
                mine[i] += n
                own = n - hedged[i]  # answered by the data center the call was sent to
                if own and dc is not None and i < len(BUCKETS):
                    # Counted by bucket: each answer at its bucket's bound.
                    delays.observe(route.label, dc, BUCKETS[i], own)
            metrics.latency_sum[service] += seconds
            forwarded += count
        if forwarded:
            gateway.budget.deposit(forwarded)
        hedged = int(self.plane.counters()["hedged"])
        if hedged > self._hedged:
            gateway.hedge_budget.spend(hedged - self._hedged)
            metrics.hedges += hedged - self._hedged
            self._hedged = hedged
        self.plane.hedge_credits = gateway.hedge_budget.available() if gateway.config.hedge else 0
        for fd, data, general in handovers:
            if adopt:
                self._adopt(fd, data, general)
            else:
                socket.socket(fileno=fd).close()

    def _adopt(self, fd: int, data: bytes, general: bool) -> None:
        sock = socket.socket(fileno=fd)
        self.adopted += 1
        self.server.adopt(sock, data, general)
