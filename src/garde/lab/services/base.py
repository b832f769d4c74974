"""What every simulated service shares: dispatch, tokens, idempotency, ledger, WSDL.

A service module subclasses ``SimulatedService`` and declares its operations with
``@operation(...)``: the catalog gives each operation's namespace, body element and
SOAPAction, the declaration gives its fields and its business rules. The request path is
always the same: safe parsing, token check, field parsing, idempotency, then the handler in a
transaction that also records the ledger effect and remembers the answer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from garde import soap
from garde.catalog import Kind, Service
from garde.errors import MalformedMessage
from garde.lab.http import Request, Response
from garde.lab.ledger import Ledger
from garde.lab.schema import Field, InvalidField, parse_fields, render_envelope
from garde.lab.store import Database, Idempotency, Records
from garde.lab.tokens import TokenAuthority, TokenRejected
from garde.lab.wsdl import render_wsdl
from garde.soap import qn

log = logging.getLogger(__name__)

DC_HEADER = "Garde-Lab-Data-Center"
"""Tells a test or a vendor which data center answered (the gateway sets its own header)."""


class BusinessFault(Exception):
    """A business rule refused the request: a ``soap:Client`` fault with ``garde:BusinessError``."""

    def __init__(self, code: str, reason: str, detail: tuple[etree._Element, ...] = ()) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.detail = detail
        """The service's own error elements, after ``garde:BusinessError`` in the fault."""


@dataclass(frozen=True, slots=True)
class LabSettings:
    """What a drill may tune: validity of tokens and the delays of asynchronous answers."""

    token_validity: float = 3600.0
    efact_ack_delay: float = 5.0
    """Seconds before an eFact batch is acknowledged."""
    chapter4_decision_delay: float = 10.0
    """Seconds before a Chapter IV request gets its decision."""
    timezone: str = "Europe/Brussels"
    """Where "today" is, for the same-day rule and prescription expiry."""
    max_body: int = soap.MAX_MESSAGE_BYTES


@dataclass(slots=True)
class LabContext:
    db: Database
    ledger: Ledger
    idempotency: Idempotency
    tokens: TokenAuthority
    clock: Callable[[], float]
    settings: LabSettings

    def tz(self) -> ZoneInfo:
        return _zone(self.settings.timezone)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.tz())

    def today(self) -> date:
        return self.now().date()


@functools.lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


Handler = Callable[[Any, "Call"], dict[str, Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, slots=True)
class OperationSpec:
    request: tuple[Field, ...]
    response: tuple[Field, ...]
    id: str
    authenticated: bool
    write: bool | None
    """None: as the catalog says (``kind: write``); set for operations the catalog omits."""
    published: str | None = None
    """The operation's name in the published WSDL when it differs from the catalog id."""
    full: bool = True
    """True: the real service's behaviour; False: answers per contract (see ``per_contract``)."""


def operation(
    id: str,
    *,
    request: tuple[Field, ...],
    response: tuple[Field, ...],
    authenticated: bool = True,
    write: bool | None = None,
    published: str | None = None,
) -> Callable[[H], H]:
    """Declare a method as the handler of operation ``id``."""

    def mark(handler: H) -> H:
        handler._lab_operation = OperationSpec(  # type: ignore[attr-defined]
            request, response, id, authenticated, write, published
        )
        return handler

    return mark


@dataclass(frozen=True, slots=True)
class PerContract:
    """A rarer operation that the lab answers per contract, not with the real behaviour.

    Its request is parsed and checked like any other; the answer echoes the request's values
    where the response has a field of the same name, takes ``answer``'s values next, and fills
    the remaining required fields with values derived from the request (same request, same
    answer). A write records one ledger effect named after the operation.
    """

    id: str
    request: tuple[Field, ...]
    response: tuple[Field, ...]
    answer: tuple[tuple[str, Any], ...] = ()
    published: str | None = None
    authenticated: bool = True


def per_contract(
    id: str,
    *,
    request: tuple[Field, ...],
    response: tuple[Field, ...],
    published: str | None = None,
    authenticated: bool = True,
    **answer: Any,
) -> PerContract:
    return PerContract(id, request, response, tuple(answer.items()), published, authenticated)


@dataclass(frozen=True, slots=True)
class OperationContract:
    """An operation as served: the catalog's names plus the declared fields and handler."""

    id: str
    namespace: str
    request_element: str
    response_element: str
    soap_action: str | None
    """None: the published WSDL declares no SOAPAction for it."""
    request: tuple[Field, ...]
    response: tuple[Field, ...]
    write: bool
    authenticated: bool
    handler: Callable[[Call], dict[str, Any]]
    published: str
    """The operation's name in the WSDL."""
    full: bool


@dataclass(slots=True)
class Call:
    """One request being served: its values, caller, data center and (for writes) transaction."""

    service: SimulatedService
    operation: str
    values: dict[str, Any]
    identity: str | None
    dc: str
    idempotency_key: str | None
    conn: sqlite3.Connection | None

    def effect(self, effect: str, business_key: str, detail: dict[str, Any] | None = None) -> None:
        """Record a business effect in the ledger, in this call's transaction."""
        if self.conn is None:
            raise AssertionError(f"{self.operation} is a read: it cannot have a business effect")
        self.service.ctx.ledger.record(
            self.conn,
            service=self.service.id,
            operation=self.operation,
            effect=effect,
            business_key=business_key,
            idempotency_key=self.idempotency_key,
            dc=self.dc,
            identity=self.identity,
            detail=detail,
        )

    def put(self, kind: str, key: str, value: dict[str, Any], owner: str | None = None) -> None:
        self.service.records.put(kind, key, value, owner, conn=self.conn)


def digest(*parts: object) -> str:
    """A short, stable digest of business content: the same content gives the same key."""
    text = "\x1f".join(p.hex() if isinstance(p, bytes) else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SimulatedService:
    """Base of a simulated service; one instance serves every data center of the service."""

    backend: ClassVar[str | None] = None
    """Records namespace; services sharing a database (Recip-e's two faces) share it."""
    wsdl_namespace: ClassVar[str | None] = None
    """The WSDL's target namespace when it is not the body elements' (intra-hub v3)."""
    capitalised_names: ClassVar[bool] = False
    """The published WSDL names operations with a capital (intra-hub v3: ``PutTransaction``)."""
    contract_only: ClassVar[tuple[PerContract, ...]] = ()
    """Operations answered per contract only: see ``PerContract``."""

    def __init__(self, ctx: LabContext, service: Service) -> None:
        self.ctx = ctx
        self.service = service
        self.id = service.id
        self.records = Records(ctx.db, self.backend or service.id)
        self.contracts: dict[str, OperationContract] = {}
        for name in dir(type(self)):
            spec: OperationSpec | None = getattr(getattr(type(self), name), "_lab_operation", None)
            if spec is not None:
                self._add(spec, getattr(self, name))
        for declared in self.contract_only:
            spec = OperationSpec(
                declared.request,
                declared.response,
                declared.id,
                declared.authenticated,
                None,
                declared.published,
                full=False,
            )
            self._add(spec, functools.partial(self._per_contract, declared))
        missing = set(service.operations) - {c.id for c in self.contracts.values()}
        if missing:
            raise AssertionError(f"{self.id}: no simulation of {sorted(missing)}")

    def _add(self, spec: OperationSpec, handler: Callable[[Call], dict[str, Any]]) -> None:
        catalog_op = self.service.operations.get(spec.id)
        namespace = (catalog_op.namespace if catalog_op else None) or self.service.namespace
        assert namespace is not None, f"{self.id} has no namespace"
        local = spec.id[:1].upper() + spec.id[1:]
        if catalog_op is not None:
            element = self.service.body_element_of(catalog_op) or qn(namespace, local + "Request")
            soap_action = self.service.soap_action_of(catalog_op)
            write = catalog_op.kind is Kind.WRITE
        else:
            element = qn(namespace, local + "Request")
            soap_action = (
                self.service.soap_action.format(
                    namespace=namespace, operation=spec.id, Operation=local
                )
                or None
            )
            write = bool(spec.write)
        request_local = soap.local_name(element)
        response_local = request_local.removesuffix("Request") + "Response"
        self.contracts[element] = OperationContract(
            id=spec.id,
            namespace=namespace,
            request_element=request_local,
            response_element=response_local,
            soap_action=soap_action,
            request=spec.request,
            response=spec.response,
            write=write if spec.write is None else spec.write,
            authenticated=spec.authenticated,
            handler=handler,
            published=spec.published or (local if self.capitalised_names else spec.id),
            full=spec.full,
        )

    def _per_contract(self, declared: PerContract, call: Call) -> dict[str, Any]:
        values = plausible(declared.response, call.values, dict(declared.answer), self.now())
        if call.conn is not None:
            call.effect(
                declared.id,
                digest(declared.id, sorted((k, str(v)) for k, v in call.values.items())),
            )
        return values

    # -- serving ---------------------------------------------------------------------------

    def handle(self, request: Request, dc: str) -> Response:
        response = self._handle(request, dc)
        response.headers.append((DC_HEADER, dc))
        return response

    def _handle(self, request: Request, dc: str) -> Response:
        if request.method == "GET":
            if request.query.lower() in ("wsdl", "wsdl=") or request.param("wsdl") is not None:
                return self.wsdl_response(request)
            return _fault(404, "soap:Client", f"GET {request.path}: ask ?wsdl, or POST SOAP")
        if request.method != "POST":
            return _fault(405, "soap:Client", f"method {request.method} not allowed: POST SOAP")
        try:
            envelope = soap.parse_envelope(
                request.body, max_bytes=self.ctx.settings.max_body, soap12=False
            )
        except MalformedMessage as exc:  # 400, 413 (too large) or 415 (not UTF-8)
            return _fault(exc.status, "soap:Client", str(exc))
        payload = envelope.payload
        contract = None if payload is None else self.contracts.get(str(payload.tag))
        if payload is None or contract is None:
            offered = ", ".join(sorted(c.request_element for c in self.contracts.values()))
            got = "an empty Body" if payload is None else str(payload.tag)
            return _fault(
                500, "soap:Client", f"unknown operation {got}; {self.id} offers {offered}"
            )
        identity = None
        if contract.authenticated:
            try:
                identity = self.ctx.tokens.verify(envelope.token).identity
            except TokenRejected as exc:
                return _fault(500, exc.code, exc.reason)
        try:
            values = parse_fields(payload, contract.request, contract.namespace)
        except InvalidField as exc:
            return _business(BusinessFault("INVALID_REQUEST", str(exc)))
        key = request.headers.get("idempotency-key") if contract.write else None
        call = Call(self, contract.id, values, identity, dc, key, None)
        if not contract.write:
            try:
                return self._answer(contract, contract.handler(call))
            except BusinessFault as fault:
                return _business(fault)
        return self._write(contract, call, payload)

    def _write(self, contract: OperationContract, call: Call, payload: etree._Element) -> Response:
        key = call.idempotency_key
        fingerprint = ""
        if key is not None:
            fingerprint = hashlib.sha256(etree.tostring(payload, method="c14n")).hexdigest()
        try:
            with self.ctx.db.transaction() as conn:
                if key is not None:
                    seen = self.ctx.idempotency.lookup(self.id, contract.id, key)
                    if seen is not None:
                        if seen[0] != fingerprint:
                            raise BusinessFault(
                                "IDEMPOTENCY_KEY_REUSED",
                                f"Idempotency-Key {key!r} was used for another {contract.id}"
                                " request: use a new key for a new request",
                            )
                        # Replay: the original answer, and no second effect.
                        return Response(seen[1], seen[2], headers=[("Idempotent-Replay", "true")])
                call.conn = conn
                response = self._answer(contract, contract.handler(call))
                if key is not None:
                    self.ctx.idempotency.remember(
                        conn, self.id, contract.id, key, fingerprint, response.status, response.body
                    )
                return response
        except BusinessFault as fault:
            return _business(fault)
        except sqlite3.OperationalError as exc:
            message = self.ctx.db.full(exc)
            if message is None:
                raise
            log.error("%s: %s", self.id, message)
            return _fault(500, "soap:Server", message)

    def _answer(self, contract: OperationContract, values: dict[str, Any]) -> Response:
        # Rendered as text, not as an lxml tree: answers are small and this is the hot path.
        return Response(
            200,
            render_envelope(
                contract.response_element, contract.namespace, contract.response, values
            ),
        )

    def wsdl_response(self, request: Request) -> Response:
        host = request.headers.get("host", "127.0.0.1")
        location = f"http://{host}{self.service.path_prefix}"
        body = render_wsdl(
            _wsdl_name(self.service.name),
            self.wsdl_namespace or self.service.namespace or "",
            list(self.contracts.values()),
            location,
        )
        return Response(200, body)

    # -- helpers for handlers --------------------------------------------------------------

    def now(self) -> datetime:
        return self.ctx.now()

    def today(self) -> date:
        return self.ctx.today()


def plausible(
    fields: tuple[Field, ...], given: dict[str, Any], answer: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """An answer per contract: echoed request values, then ``answer``, then derived values."""
    out: dict[str, Any] = {}
    for field in fields:
        if field.name in answer:
            out[field.name] = answer[field.name]
        elif field.name in given and not field.is_group:
            out[field.name] = given[field.name]
        elif field.optional:
            continue
        elif field.is_group:
            inner = plausible(field.children, given, answer, now)
            out[field.name] = [inner] if field.many else inner
        elif field.many:
            out[field.name] = []
        else:
            out[field.name] = _derived(field, given, now)
    return out


def _derived(field: Field, given: dict[str, Any], now: datetime) -> Any:
    seed = digest(field.name, sorted((k, str(v)) for k, v in given.items()))
    return {
        "string": seed[:16].upper(),
        "int": int(seed[:4], 16) % 100,
        "decimal": Decimal(int(seed[:4], 16) % 10000) / 100,
        "boolean": True,
        "date": now.date(),
        "dateTime": now,
        "base64Binary": seed.encode(),
    }[field.type]


def _wsdl_name(name: str) -> str:
    return "".join(part for part in "".join(c if c.isalnum() else " " for c in name).split())


def _fault(status: int, code: str, message: str) -> Response:
    return Response(status, soap.build_fault(code, message))


def _business(fault: BusinessFault) -> Response:
    return Response(500, soap.business_fault(fault.code, fault.reason, fault.detail))
