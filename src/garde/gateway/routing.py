"""From a request to (service, operation): the path prefix, then SOAPAction or body element.

The care software keeps the paths it already calls; only the host changes. Tables are built
once from the catalog so the hot path is a few dictionary look-ups: the SOAPAction header
identifies most SOAP operations without reading the XML, the first body element is the
fallback, and REST operations match method and path template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from garde.catalog import (
    Async,
    Cacheable,
    Catalog,
    Continuity,
    Deferrable,
    JournaledAnswer,
    KeyRule,
    Operation,
    Service,
    WireProtocol,
)
from garde.errors import MalformedMessage, RequestRejected
from garde.soap import Envelope, XPathKey


@dataclass(frozen=True, slots=True)
class Key:
    """A compiled key rule: from a header, or an XPath into the SOAP body."""

    header: bytes | None = None
    xpath: XPathKey | None = None

    @classmethod
    def compile(cls, rule: KeyRule | None, namespaces: dict[str, str]) -> Key | None:
        if rule is None:
            return None
        if rule.header is not None:
            return cls(header=rule.header.lower().encode())
        if rule.xpath is not None:
            return cls(xpath=XPathKey(rule.xpath, namespaces))
        # JSON pointers belong to REST services; garde's catalog has none yet.
        return None

    def extract(self, headers: dict[bytes, bytes], envelope: Envelope | None) -> str | None:
        if self.header is not None:
            value = headers.get(self.header)
            return value.decode("latin-1").strip() or None if value is not None else None
        if self.xpath is not None and envelope is not None:
            return self.xpath.extract(envelope)
        return None


@dataclass(slots=True)
class OperationRoute:
    """Everything the hot path needs about one operation, computed once."""

    service: Service
    operation: Operation
    continuity: Continuity
    timeout: float
    retry_safe: bool
    max_stale: float = 0.0
    per_caller: bool = False
    deadline: str | float | None = None
    idempotency: Key | None = None
    ordering: Key | None = None
    cache: Key | None = None
    label: str = ""
    needs_envelope: bool = False
    """The gateway must read the body on every call (cache or idempotency key in it)."""
    journaled_answer: JournaledAnswer = JournaledAnswer.RECEIPT
    """What a journaled write of this operation answers (``journaled.py``)."""
    response_element: tuple[str, str] | None = None
    """(namespace, local name) of the operation's response element (SOAP)."""
    element: bytes | None = None
    """The local name of the operation's body element, when no other operation of the
    service has it: a body whose first element bears it is this operation's (the fast paths
    check so without parsing); None: only parsing tells."""

    @property
    def service_id(self) -> str:
        return self.service.id

    @property
    def operation_id(self) -> str:
        return self.operation.id


@dataclass(slots=True)
class ServiceRoute:
    service: Service
    prefix: str
    by_action: dict[str, OperationRoute] = field(default_factory=dict)
    by_element: dict[str, OperationRoute] = field(default_factory=dict)
    rest: list[tuple[str, re.Pattern[str], OperationRoute]] = field(default_factory=list)

    @property
    def soap(self) -> bool:
        return self.service.protocol is WireProtocol.SOAP


def _operation_route(service: Service, operation: Operation) -> OperationRoute:
    policy = operation.continuity
    continuity = Continuity.ONLINE if policy is None else policy.class_
    route = OperationRoute(
        service=service,
        operation=operation,
        continuity=continuity,
        timeout=service.timeout_of(operation),
        retry_safe=operation.retry_safe,
        idempotency=Key.compile(operation.idempotency_key, service.namespaces),
        ordering=Key.compile(operation.ordering_key, service.namespaces),
        cache=Key.compile(operation.cache_key, service.namespaces),
        label=f"{service.id}.{operation.id}",
    )
    route.needs_envelope = continuity is Continuity.CACHEABLE or (
        route.idempotency is not None and route.idempotency.xpath is not None
    )
    if isinstance(policy, Cacheable):
        route.max_stale = policy.max_stale
        route.per_caller = policy.per_caller
    elif isinstance(policy, Deferrable | Async):
        route.deadline = policy.deadline
        route.journaled_answer = policy.answer
    response = service.response_element_of(operation)
    if response is not None and response.startswith("{") and "}" in response:
        namespace, local = response[1:].split("}", 1)
        route.response_element = (namespace, local)
    return route


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[A-Za-z_][A-Za-z0-9_]*\\\}", "[^/]+", re.escape(template))
    return re.compile(pattern + r"/?\Z")


class Router:
    """Maps a request path and its identification to an ``OperationRoute``."""

    def __init__(self, catalog: Catalog) -> None:
        self.services: list[ServiceRoute] = []
        for service in catalog.services.values():
            entry = ServiceRoute(service, service.path_prefix.rstrip("/") or "/")
            for operation in service.operations.values():
                route = _operation_route(service, operation)
                action = service.soap_action_of(operation)
                if action is not None:
                    entry.by_action[action] = route
                element = service.body_element_of(operation)
                if element is not None:
                    entry.by_element[element] = route
                if operation.match.method and operation.match.path is not None:
                    entry.rest.append(
                        (
                            operation.match.method.upper(),
                            _template_regex(operation.match.path),
                            route,
                        )
                    )
            locals_ = [tag.rsplit("}", 1)[-1] for tag in entry.by_element]
            for tag, route in entry.by_element.items():
                local = tag.rsplit("}", 1)[-1]
                if locals_.count(local) == 1:
                    route.element = local.encode("latin-1")
            self.services.append(entry)
        # Longest prefix first, so /MyCareNet/eAttest/v3 wins over a hypothetical /MyCareNet.
        self.services.sort(key=lambda s: len(s.prefix), reverse=True)
        self._exact = {s.prefix: s for s in self.services}

    def service(self, path: str) -> ServiceRoute:
        """The service whose prefix ``path`` starts with; 404 naming the known prefixes."""
        found = self._exact.get(path)
        if found is not None:
            return found
        for entry in self.services:
            prefix = entry.prefix
            if path.startswith(prefix) and path[len(prefix)] == "/":
                return entry
        known = ", ".join(sorted(s.prefix for s in self.services))
        raise RequestRejected(
            404,
            f"no service of the catalog is served at {path!r}: call the gateway with the path"
            f" your software uses for the service (one of: {known})",
        )

    def serves(self, path: str) -> bool:
        """True if ``path`` is under one of the services' prefixes."""
        try:
            self.service(path)
        except RequestRejected:
            return False
        return True

    @staticmethod
    def by_action(entry: ServiceRoute, soap_action: bytes | None) -> OperationRoute | None:
        if not soap_action:
            return None
        action = soap_action.decode("latin-1").strip().strip('"')
        return entry.by_action.get(action) if action else None

    @staticmethod
    def check_action(entry: ServiceRoute, found: OperationRoute, envelope: Envelope) -> None:
        """Refuse (400) a body that is another operation's than the SOAPAction's: a write
        under a read's action would be retried as a read, and applied twice."""
        tag = _operation_tag(envelope)
        named = entry.by_element.get(tag)
        if named is None or named is found:
            return  # the same operation, or an element the catalog does not know
        service = entry.service
        raise RequestRejected(
            400,
            f"the SOAPAction names {found.operation_id}"
            f" ({service.soap_action_of(found.operation)!r}) but the body's first element"
            f" {tag} is {named.operation_id}'s: send the SOAPAction of the"
            f" operation in the body ({service.soap_action_of(named.operation)!r})",
        )

    @staticmethod
    def by_element(entry: ServiceRoute, envelope: Envelope) -> OperationRoute:
        tag = _operation_tag(envelope)
        route = entry.by_element.get(tag)
        if route is None:
            raise RequestRejected(
                404,
                f"{entry.service.id} has no operation whose request element is"
                f" {tag}; known operations:"
                f" {', '.join(sorted(entry.service.operations))}",
            )
        return route

    @staticmethod
    def by_rest(entry: ServiceRoute, method: str, path: str) -> OperationRoute:
        rest = path[len(entry.prefix) :] or "/"
        for verb, pattern, route in entry.rest:
            if verb == method and pattern.match(rest):
                return route
        raise RequestRejected(404, f"{entry.service.id} has no operation for {method} {rest}")


def _operation_tag(envelope: Envelope) -> str:
    """The body's first element in Clark notation; the gateway routes and checks by it."""
    payload = envelope.payload
    if payload is None:
        raise MalformedMessage("the SOAP Body is empty: it must hold the operation element")
    return str(payload.tag)
