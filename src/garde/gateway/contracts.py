"""The services' WSDLs and schemas, through the gateway: a drop-in for SOAP stacks.

Care software generated from a WSDL (zeep, JAX-WS/CXF, .NET) often loads it at start-up, from
the same host name it calls. Pointed at the gateway, ``GET <service path>?wsdl`` (and the
schemas the WSDL imports, ``?xsd=...`` or ``*.xsd``) is passed to a healthy data center like
a retry-safe read, and the answer's addresses are moved onto the gateway (``soap:address``,
imports: ``garde.soap.rebase_contract``), so that a client that loads its WSDL through the
gateway also calls through it. The last good copy of each document is kept in memory and
served, marked with ``Garde-Stale``, when no data center answers: software restarted
during an outage still starts, once the gateway has seen the document.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from garde.catalog import Continuity, Kind, Operation
from garde.errors import MalformedMessage
from garde.gateway.forwarding import Forwarder
from garde.gateway.routing import OperationRoute, Router, ServiceRoute
from garde.gateway.upstreams import ServiceUpstreams
from garde.gateway.wire import Reply, Request
from garde.soap import rebase_contract

log = logging.getLogger("garde.gateway")

MAX_DOCUMENTS = 512
"""Documents kept (a WSDL and its schemas per service: the chain has a few dozen)."""
PASSED_HEADERS = (b"accept", b"accept-language", b"user-agent")


def is_contract_request(request: Request) -> bool:
    """A GET for a WSDL or a schema: ``?wsdl``, ``?singleWsdl``, ``?xsd=N``, ``*.wsdl``,
    ``*.xsd``."""
    if request.method != b"GET":
        return False
    target = request.target.lower()
    _, _, query = target.partition(b"?")
    if query:
        name = query.split(b"&", 1)[0].split(b"=", 1)[0]
        if name in (b"wsdl", b"singlewsdl", b"xsd"):
            return True
    path = target.split(b"?", 1)[0]
    return path.endswith((b".wsdl", b".xsd"))


@dataclass(frozen=True, slots=True)
class Document:
    body: bytes
    """As the data center gave it (rebased per request: callers reach the gateway by
    different names)."""
    content_type: bytes
    fetched_at: float
    data_center: str


class ContractCache:
    def __init__(
        self,
        router: Router,
        forwarder: Forwarder,
        upstreams: dict[str, ServiceUpstreams],
        *,
        capacity: int = MAX_DOCUMENTS,
    ) -> None:
        self.router = router
        self.forwarder = forwarder
        self.upstreams = upstreams
        self.capacity = capacity
        self._documents: OrderedDict[bytes, Document] = OrderedDict()
        self._routes: dict[str, OperationRoute] = {}
        self.served = 0
        self.stale_served = 0

    def _route(self, entry: ServiceRoute) -> OperationRoute:
        """A retry-safe read of the service, for the forwarder (not a catalog operation)."""
        service = entry.service
        route = self._routes.get(service.id)
        if route is None:
            operation = Operation(id="wsdl", kind=Kind.READ, retry_safe=True)
            route = OperationRoute(
                service=service,
                operation=operation,
                continuity=Continuity.ONLINE,
                timeout=service.timeout,
                retry_safe=True,
                label=f"{service.id}.wsdl",
            )
            self._routes[service.id] = route
        return route

    def _routable(self, path: str) -> bool:
        return self.router.serves(path)

    async def serve(self, entry: ServiceRoute, request: Request) -> tuple[Reply, str]:
        """The document ``request`` asks for, and how it was served (for the metrics)."""
        route = self._route(entry)
        headers = [(n, v) for n, v in request.headers if n.lower() in PASSED_HEADERS]
        suffix = request.target[len(entry.prefix) :]
        deadline = time.monotonic() + route.timeout
        outcome = await self.forwarder.forward(route, b"GET", suffix, headers, b"", deadline)
        response = outcome.response
        key = request.target
        base = _base_url(request)
        if response is not None and response.status == 200 and outcome.link is not None:
            content_type = response.header(b"content-type") or b"text/xml; charset=utf-8"
            document = Document(response.body, content_type, time.time(), outcome.link.dc)
            try:
                body = rebase_contract(response.body, base, self._routable)
            except MalformedMessage as exc:
                # Not XML (an error page with 200): passed on as it is, never kept.
                log.warning("%s gave a contract document that is not XML: %s", route.label, exc)
                return self._reply(200, document, response.body, route.service_id), "forwarded"
            self._keep(key, document)
            self.served += 1
            return self._reply(200, document, body, route.service_id), "forwarded"
        if response is not None:  # the service's own answer (404 for an unknown schema...)
            kept = [(n, v) for n, v in response.headers if n.lower() == b"content-type"]
            return Reply(response.status, kept, response.body), "forwarded"
        kept_copy = self._documents.get(key)
        if kept_copy is None:
            problem = {
                "type": "urn:garde:problem:service-unavailable",
                "title": f"the contract of {entry.service.id} cannot be read now",
                "status": 503,
                "detail": f"{outcome.failure or 'no data center answers'}; the gateway has no"
                " copy of this document yet (it keeps one once a data center has given it)",
                "service": entry.service.id,
            }
            return (
                Reply(
                    503,
                    [(b"Content-Type", b"application/problem+json"), (b"Retry-After", b"30")],
                    json.dumps(problem).encode(),
                ),
                "refused",
            )
        self._documents.move_to_end(key)
        self.stale_served += 1
        age = max(0, int(time.time() - kept_copy.fetched_at))
        stale = [(b"Age", str(age).encode()), (b"Garde-Stale", str(age).encode())]
        body = rebase_contract(kept_copy.body, base, self._routable)
        reply = self._reply(200, kept_copy, body, route.service_id)
        reply.headers.extend(stale)
        return reply, "stale"

    def _keep(self, key: bytes, document: Document) -> None:
        self._documents[key] = document
        self._documents.move_to_end(key)
        while len(self._documents) > self.capacity:
            self._documents.popitem(last=False)

    def _reply(self, status: int, document: Document, body: bytes, service: str) -> Reply:
        headers = [
            (b"Content-Type", document.content_type),
            (b"Garde-Data-Center", document.data_center.encode()),
            (b"Garde-Mode", self.upstreams[service].mode.value.encode()),
            (b"Cache-Control", b"no-cache"),
        ]
        return Reply(status, headers, body)


def _base_url(request: Request) -> str:
    """How the caller reached the gateway (its ``Host``, checked against ``hosts_allowed``
    before any handler runs)."""
    host = request.header(b"host") or b"127.0.0.1"
    return "http://" + host.decode("latin-1").strip()
