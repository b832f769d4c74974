"""The catalog schema: the chain described as data.

Every other part reads these values and nothing else about the chain. The models are frozen:
a loaded catalog never changes under the gateway's feet. ``docs/catalog.md`` documents each
field with an example; the loader (``load.py``) turns YAML into these models and reports
problems with file and line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from garde.catalog.durations import parse_duration
from garde.faces import renamed

Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds, written in the catalog as ``10s``, ``5m``, ``1h``..."""

LANGUAGES = ("fr", "nl", "en")
BANNER_MAX_CHARS = 320
"""A procedure must fit in the care software's banner: a sentence or two, not a manual."""

ID_PATTERN = r"^[a-z][a-z0-9_-]*$"
OPERATION_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Role(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    BACKUP = "backup"


class DataCenter(_Model):
    id: str = ""
    role: Role
    description: str = ""
    activation: Seconds = 0.0
    """How long traffic takes to move to this data center once it is needed (0 = hot)."""
    repair_time: Seconds = 4 * 3600.0
    """How long a failure of this data center typically lasts (used by the RTO check)."""


class WireProtocol(StrEnum):
    SOAP = "soap"
    REST = "rest"


class Kind(StrEnum):
    READ = "read"
    WRITE = "write"


class Continuity(StrEnum):
    ONLINE = "online"
    DEFERRABLE = "deferrable"
    ASYNC = "async"
    CACHEABLE = "cacheable"


class JournaledAnswer(StrEnum):
    """What the gateway answers a SOAP write it journaled (every data center down).

    Generated SOAP clients (zeep, JAX-WS/CXF, .NET WCF) only understand what their WSDL
    says; a garde-aware client reads the receipt either way (``Garde-Receipt`` header, and a
    request with ``Prefer: respond-async`` always gets ``receipt``). See
    docs/gateway-contract.md, "What a journaled write answers".
    """

    RECEIPT = "receipt"
    """202 with a ``garde:Journaled`` body: for garde-aware clients (zeep reports a fault)."""
    RESPONSE = "response"
    """200 with the operation's own response element, empty, and the receipt in a
    ``garde:Journaled`` SOAP header: a generated client returns a result with no fields."""
    ACCEPTED = "accepted"
    """202 with no body: zeep and CXF return None, as for a one-way call."""


class Online(_Model):
    """Needs an answer now: nothing can be queued; the fallback is a human procedure."""

    class_: Literal[Continuity.ONLINE] = Field(alias="class")


class Deferrable(_Model):
    """May be journaled and delivered later, but only before ``deadline``."""

    class_: Literal[Continuity.DEFERRABLE] = Field(alias="class")
    deadline: Literal["same_day"] | Seconds
    """``same_day`` (delivered before midnight of the day it was made) or a duration."""
    answer: JournaledAnswer = JournaledAnswer.RECEIPT
    """What the caller gets when the write is journaled (SOAP services; REST gets JSON)."""


class Async(_Model):
    """Asynchronous by nature (mailbox, batch): journal freely, optional ``deadline``."""

    class_: Literal[Continuity.ASYNC] = Field(alias="class")
    deadline: Seconds | None = None
    answer: JournaledAnswer = JournaledAnswer.RECEIPT
    """What the caller gets when the write is journaled (SOAP services; REST gets JSON)."""


class Cacheable(_Model):
    """A read whose last good answer may be served, marked stale, up to ``max_stale``."""

    class_: Literal[Continuity.CACHEABLE] = Field(alias="class")
    max_stale: Seconds
    per_caller: bool = False
    """Serve a cached answer only to the identity that obtained it (hub records)."""


def _shorthand_continuity(value: Any) -> Any:
    # ``continuity: online`` reads better than ``continuity: {class: online}``.
    if isinstance(value, str):
        return {"class": value}
    return value


ContinuityPolicy = Annotated[
    Online | Deferrable | Async | Cacheable,
    Field(discriminator="class_"),
    BeforeValidator(_shorthand_continuity),
]


class KeyRule(_Model):
    """Where a key (idempotency, ordering, cache) is found in a request: exactly one source."""

    header: str | None = None
    xpath: str | None = None
    """XPath into the SOAP body, with the service's ``namespaces`` prefixes."""
    json_pointer: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyRule:
        given = [n for n in ("header", "xpath", "json_pointer") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "a key rule needs exactly one of header, xpath, json_pointer"
                f" (got {', '.join(given) or 'none'})"
            )
        if self.json_pointer is not None and not self.json_pointer.startswith("/"):
            raise ValueError("json_pointer must start with '/' (RFC 6901), e.g. /patient/niss")
        return self


class Match(_Model):
    """How the gateway recognises an operation on the wire.

    SOAP: by ``soap_action`` (the SOAPAction header), else by ``body_element`` (the first
    element of the SOAP body in Clark notation ``{namespace}LocalName``). Both default from
    the service's ``namespace`` and conventions. REST: ``method`` and a ``path`` template
    relative to the service's ``path_prefix`` (``/members/{niss}``).
    """

    soap_action: str | None = None
    body_element: str | None = None
    method: str | None = None
    path: str | None = None


class Operation(_Model):
    id: str = ""
    description: str = ""
    label: Texts | None = None
    """What the operation is for, in plain words for the people who use it ("Reading
    e-prescriptions"), in fr/nl/en; None: the pages show its id."""
    kind: Kind
    retry_safe: bool
    """May be sent again after a failure that might have reached the service."""
    continuity: ContinuityPolicy | None = None
    """None: not yet decided; treated as online and reported by ``catalog coverage``."""
    namespace: str | None = None
    """Overrides the service's namespace (eHealthBox splits publication and consultation)."""
    match: Match = Match()
    idempotency_key: KeyRule | None = None
    ordering_key: KeyRule | None = None
    cache_key: KeyRule | None = None
    response_element: str | None = None
    """The operation's answer's body element, ``{namespace}LocalName``; None: the request
    element's name with ``Request`` replaced by (or, without it, followed by) ``Response``."""
    timeout: Seconds | None = None
    """None means: the service's default timeout."""
    rpo: Seconds | None = None
    """How long a journaled write of this operation may wait before the gateway alerts;
    None: the service's ``rpo`` when it sets one, else no alert."""


class Probe(_Model):
    """How the monitor checks one data center of a service."""

    operation: str | None = None
    """An operation to call (a harmless read), or None for a plain GET of ``path``."""
    path: str = "?wsdl"
    interval: Seconds = 10.0
    timeout: Seconds = 5.0
    failures: int = Field(default=3, ge=1)
    """Consecutive failures before a data center counts as down (hysteresis)."""
    successes: int = Field(default=2, ge=1)


class Service(_Model):
    id: str = ""
    name: str
    owner: str
    names: Texts | None = None
    """The service's name for people, in fr/nl/en (pages, incident titles); None: ``name``."""
    protocol: WireProtocol
    path_prefix: str = Field(pattern=r"^/")
    """The path the care software calls today; the gateway serves the same path."""
    namespace: str | None = None
    namespaces: dict[str, str] = {}
    """XPath prefixes used by key rules."""
    soap_action: str = "{namespace}:{operation}"
    """Template of an operation's SOAPAction when it does not give its own: ``{namespace}``,
    ``{operation}`` (the id) and ``{Operation}`` (capitalised, the MyCareNet convention).
    Empty: the published WSDL declares no SOAPAction (ETK depot, KGSS); operations are then
    recognised by their body element."""
    endpoints: dict[str, str] = Field(min_length=1)
    """Data center id -> URL of the service there, in priority order."""
    depends_on: list[str] = []
    probe: Probe = Probe()
    timeout: Seconds = 10.0
    rto: Seconds
    rpo: Seconds = 0.0
    operations: dict[str, Operation] = Field(min_length=1)

    def soap_action_of(self, operation: Operation) -> str | None:
        if operation.match.soap_action is not None:
            return operation.match.soap_action
        namespace = operation.namespace or self.namespace
        if self.protocol is not WireProtocol.SOAP or namespace is None or not self.soap_action:
            return None
        capitalised = operation.id[:1].upper() + operation.id[1:]
        return self.soap_action.format(
            namespace=namespace, operation=operation.id, Operation=capitalised
        )

    def body_element_of(self, operation: Operation) -> str | None:
        if operation.match.body_element is not None:
            return operation.match.body_element
        namespace = operation.namespace or self.namespace
        if self.protocol is not WireProtocol.SOAP or namespace is None:
            return None
        local = operation.id[:1].upper() + operation.id[1:] + "Request"
        return "{" + namespace + "}" + local

    def response_element_of(self, operation: Operation) -> str | None:
        if operation.response_element is not None:
            return operation.response_element
        request = self.body_element_of(operation)
        if request is None:
            return None
        stem = request[: -len("Request")] if request.endswith("Request") else request
        return stem + "Response"

    def name_in(self, language: str) -> str:
        return self.names.get(language) if self.names is not None else self.name

    def timeout_of(self, operation: Operation) -> float:
        return operation.timeout if operation.timeout is not None else self.timeout


class Texts(_Model):
    """The same short text in the three national languages of the care providers."""

    fr: str = Field(min_length=1, max_length=BANNER_MAX_CHARS)
    nl: str = Field(min_length=1, max_length=BANNER_MAX_CHARS)
    en: str = Field(min_length=1, max_length=BANNER_MAX_CHARS)

    def get(self, language: str) -> str:
        return str(getattr(self, language if language in LANGUAGES else "en"))


class Procedure(_Model):
    id: str = ""
    text: Texts
    link: str | None = None


class Level(StrEnum):
    VITAL = "vital"
    """Care stops without it."""
    HIGH = "high"
    """Care goes on, but work piles up or is re-keyed later."""
    NORMAL = "normal"


class CriticalOperation(_Model):
    operation: str = Field(pattern=r"^[a-z][a-z0-9_-]*\.[A-Za-z][A-Za-z0-9_]*$")
    """``service.operation``, e.g. ``recipe-executor.markAsDelivered``."""
    level: Level
    procedure: str | None = None
    """Id of the fallback procedure; None is a BCP gap that ``coverage`` reports."""

    @property
    def service(self) -> str:
        return self.operation.split(".", 1)[0]

    @property
    def operation_id(self) -> str:
        return self.operation.split(".", 1)[1]


class TargetGroup(_Model):
    id: str = ""
    names: Texts
    critical: list[CriticalOperation] = Field(min_length=1)


class TokenService(_Model):
    """Which operation issues the tokens every other call needs."""

    service: str
    operation: str
    validity: Seconds = 3600.0


class Catalog(_Model):
    version: Literal[1] = 1
    name: str
    description: str = ""
    data_centers: dict[str, DataCenter] = Field(min_length=1)
    services: dict[str, Service] = Field(min_length=1)
    procedures: dict[str, Procedure] = {}
    target_groups: dict[str, TargetGroup] = {}
    token_service: TokenService | None = None

    @model_validator(mode="before")
    @classmethod
    def _ids_from_keys(cls, data: Any) -> Any:
        # Ids are the mapping keys in YAML (duplicates are caught there); copy them into the
        # values so a model passed around alone still knows its id.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section in ("data_centers", "services", "procedures", "target_groups"):
            items = data.get(section)
            if isinstance(items, dict):
                data[section] = {k: _with_id(k, v) for k, v in items.items()}
        services = data.get("services")
        if isinstance(services, dict):
            for sid, service in services.items():
                if isinstance(service, dict) and isinstance(service.get("operations"), dict):
                    ops = {k: _with_id(k, v) for k, v in service["operations"].items()}
                    services[sid] = {**service, "operations": ops}
        return data

    def operation(self, service_id: str, operation_id: str) -> tuple[Service, Operation]:
        """The service and operation named; ``KeyError`` if either is unknown."""
        service = self.services[service_id]
        return service, service.operations[operation_id]

    def procedure_for(
        self, service: str, operation: str, group: str | None = None
    ) -> Procedure | None:
        """The fallback procedure for ``service.operation``: ``group``'s own, else the first
        other target group's that names one (a caller that gave no group, or a group that
        has none, still learns what to do)."""
        wanted = f"{service}.{operation}"
        groups = list(self.target_groups.values())
        if group in self.target_groups:
            groups.sort(key=lambda g: g.id != group)
        for target in groups:
            for critical in target.critical:
                if critical.operation == wanted and critical.procedure in self.procedures:
                    return self.procedures[critical.procedure]
        return None

    def procedure_text(self, procedure_id: str | None, language: str = "en") -> str | None:
        if procedure_id is None or procedure_id not in self.procedures:
            return None
        return self.procedures[procedure_id].text.get(language)

    def dependants(self, service_id: str) -> set[str]:
        """Every service that needs ``service_id``, directly or transitively."""
        found: set[str] = set()
        frontier = [service_id]
        while frontier:
            current = frontier.pop()
            for sid, service in self.services.items():
                if current in service.depends_on and sid not in found:
                    found.add(sid)
                    frontier.append(sid)
        return found

    def dependencies(self, service_id: str) -> set[str]:
        """Every service ``service_id`` needs, directly or transitively."""
        found: set[str] = set()
        frontier = [service_id]
        while frontier:
            for dep in self.services[frontier.pop()].depends_on:
                if dep not in found:
                    found.add(dep)
                    frontier.append(dep)
        return found

    def with_endpoints(self, endpoints: dict[str, dict[str, str]]) -> Catalog:
        """A copy whose services point at other URLs (``{service: {dc: url}}``), e.g. a lab's."""
        services = {
            sid: service.model_copy(update={"endpoints": endpoints[sid]})
            if sid in endpoints
            else service
            for sid, service in self.services.items()
        }
        return self.model_copy(update={"services": services})


def _with_id(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {**value, "id": key}
    return value


# ``Protocol`` shadowed ``typing.Protocol`` wherever both were needed.
__getattr__ = renamed(__name__, {"Protocol": "WireProtocol"}, globals())
