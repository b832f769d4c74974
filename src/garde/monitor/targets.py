"""What the monitor probes: one target per service and data center, built from the catalog.

A target says how to call (plain GET, SOAP operation, TLS handshake), what counts as a
success (status, no SOAP Fault, XPath/JSONPath assertions, latency threshold) and the
hysteresis thresholds. Services that need a token are probed synthetically: obtain an STS
token in the same data center, then call the operation with it, as a care software does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import urlsplit

from garde.catalog import Catalog, Service, WireProtocol
from garde.errors import UsageError

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
STS_NS = "urn:be:fgov:ehealth:sts:protocol:v1"


class Kind(StrEnum):
    HTTP = "http"
    SOAP = "soap"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class Assertion:
    """A check on the answer body: an XPath (XML) or JSONPath (JSON) that must match.

    With ``equals`` the first match's text must equal it; without, a match must exist.
    """

    xpath: str | None = None
    jsonpath: str | None = None
    equals: str | None = None
    namespaces: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.xpath is None) == (self.jsonpath is None):
            raise UsageError("an assertion needs exactly one of xpath or jsonpath")


@dataclass(frozen=True, slots=True)
class TokenStep:
    """Synthetic first step: obtain an STS token, then call the target with it."""

    url: str
    identity: str
    credential: str
    credential_type: str = "keystore"


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    service: str
    dc: str
    url: str
    kind: Kind = Kind.HTTP
    method: str = "GET"
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    interval: float = 10.0
    timeout: float = 5.0
    failures: int = 3
    successes: int = 2
    latency_threshold: float | None = None
    """Answers slower than this are ``slow``: the data center counts as degraded."""
    expect_status: tuple[int, ...] = (200,)
    assertions: tuple[Assertion, ...] = ()
    token: TokenStep | None = None
    sts_identity: str | None = None
    """A probe of the STS itself: a request for this identity, signed anew at every probe."""
    tls_min_days: float = 14.0
    """TLS targets fail when the certificate expires in fewer days than this."""
    tls_warn_days: float = 30.0
    """... and are ``slow`` (degraded) under this many days."""
    ca_file: str | None = None


PROBE_FIELDS = {
    "etk.getEtk": (
        "<op:SearchCriteria><op:Type>CBE</op:Type><op:Value>{cbe}</op:Value></op:SearchCriteria>"
    ),
    "recipe-prescriber.listOpenRids": "<op:PatientId>{niss}</op:PatientId>",
    "recipe-executor.listOpenPrescriptions": "<op:PatientId>{niss}</op:PatientId>",
    "insurability.getInsurability": "<op:Ssin>{niss}</op:Ssin>",
    "memberdata.memberDataConsultation": "<op:Ssin>{niss}</op:Ssin>",
}
"""The fields a harmless read needs, per ``service.operation`` (prefix ``op`` is the
operation's namespace). A service that rejects an incomplete request with a SOAP Fault would
otherwise look down; ``{niss}`` and ``{cbe}`` are the probe's test identifiers."""


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """Monitor-wide choices the catalog does not make."""

    identity: str = "monitor"
    credential: str = "monitor-keystore"
    probe_niss: str = "85073003328"
    """The test patient the read probes ask about; agree on one with each service owner."""
    probe_cbe: str = "0809394427"
    """The organisation (CBE number) whose ETK the ETK depot probe fetches."""
    fields: dict[str, str] = field(default_factory=lambda: dict(PROBE_FIELDS))
    """Request fields per ``service.operation`` (see ``PROBE_FIELDS``)."""
    latency_factor: float = 0.5
    """Default latency threshold as a fraction of the probe timeout."""
    tls_min_days: float = 14.0
    tls_warn_days: float = 30.0
    interval_override: float | None = None
    assertions: dict[str, tuple[Assertion, ...]] = field(default_factory=dict)
    """Extra assertions per target id (``service@dc``) or per service id.

    Read from a file with ``garde.monitor.settings.load_probe_settings``, which checks it all
    against the catalog first."""


def soap_envelope(body: str, token: str | None = None) -> bytes:
    header = ""
    if token is not None and token.startswith("<"):  # an STS assertion, as XML
        header = (
            f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}">{token}</wsse:Security></soap:Header>'
        )
    elif token is not None:
        header = (
            f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}">'
            f'<wsse:BinarySecurityToken ValueType="urn:garde:lab:token">{token}'
            "</wsse:BinarySecurityToken></wsse:Security></soap:Header>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}">'
        f"{header}<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def targets_from_catalog(catalog: Catalog, settings: ProbeSettings | None = None) -> list[Target]:
    """One target per (service, data center), plus a TLS target per distinct https host."""
    settings = settings or ProbeSettings()
    targets: list[Target] = []
    tls_seen: set[str] = set()
    for sid, service in catalog.services.items():
        for dc, url in service.endpoints.items():
            targets.append(_service_target(catalog, service, dc, url, settings))
            parts = urlsplit(url)
            if parts.scheme == "https" and parts.netloc not in tls_seen:
                tls_seen.add(parts.netloc)
                targets.append(
                    Target(
                        id=f"tls:{parts.netloc}",
                        service=sid,
                        dc=dc,
                        url=url,
                        kind=Kind.TLS,
                        interval=3600.0,
                        timeout=service.probe.timeout,
                        failures=1,
                        successes=1,
                        tls_min_days=settings.tls_min_days,
                        tls_warn_days=settings.tls_warn_days,
                    )
                )
    return targets


def _service_target(
    catalog: Catalog, service: Service, dc: str, url: str, settings: ProbeSettings
) -> Target:
    probe = service.probe
    tid = f"{service.id}@{dc}"
    base = Target(
        id=tid,
        service=service.id,
        dc=dc,
        url=url + probe.path if probe.path.startswith("?") else url.rstrip("/") + probe.path,
        interval=settings.interval_override or probe.interval,
        timeout=probe.timeout,
        failures=probe.failures,
        successes=probe.successes,
        latency_threshold=probe.timeout * settings.latency_factor,
        assertions=settings.assertions.get(tid, settings.assertions.get(service.id, ())),
    )
    if probe.operation is None or service.protocol is not WireProtocol.SOAP:
        return base
    operation = service.operations[probe.operation]
    sts = catalog.token_service
    is_sts = sts is not None and sts.service == service.id
    if is_sts:
        from garde.soap import token_request  # lxml, imported when a target needs it

        body = token_request(settings.identity)  # the shape; re-signed at every probe
        token = None
    else:
        namespace = operation.namespace or service.namespace
        local = operation.id[:1].upper() + operation.id[1:] + "Request"
        fields = settings.fields.get(f"{service.id}.{operation.id}", "").format(
            niss=_xml_text(settings.probe_niss), cbe=_xml_text(settings.probe_cbe)
        )
        body = f'<op:{local} xmlns:op="{namespace}">{fields}</op:{local}>'.encode()
        token = None
        if sts is not None and sts.service in catalog.dependencies(service.id):
            sts_urls = catalog.services[sts.service].endpoints
            # Same data center first: a probe of dc2 must not fail because dc1's STS is down.
            sts_url = sts_urls.get(dc) or next(iter(sts_urls.values()))
            token = TokenStep(sts_url, settings.identity, settings.credential)
    action = service.soap_action_of(operation) or ""
    return replace(
        base,
        url=url,
        kind=Kind.SOAP,
        method="POST",
        body=body,
        headers=(("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", f'"{action}"')),
        token=token,
        sts_identity=settings.identity if is_sts else None,
    )
