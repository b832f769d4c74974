"""What the caller reads when the gateway cannot help: machine-readable and translated.

Two shapes, one content (documented for vendors in docs/gateway-contract.md): RFC 9457
``application/problem+json`` for REST callers, a SOAP 1.1 Fault with a ``garde:`` detail
element for SOAP callers (their generated clients understand faults, not JSON). A refusal
names the failing service, since when, and the fallback procedure of the caller's target
group in the caller's language.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from xml.sax.saxutils import escape, quoteattr

from garde.catalog import Catalog
from garde.locales import pick_language, rfc3339

GARDE_NS = "urn:garde:gateway:v1"
PROBLEM_BASE = "urn:garde:problem:"


def language_of(accept_language: bytes | None) -> str:
    """The first of fr/nl/en the caller accepts (q-values honoured); English otherwise."""
    return pick_language(None, accept_language)


@dataclass(frozen=True, slots=True)
class ProcedureRef:
    id: str | None
    text: str | None
    link: str | None


def procedure_for(
    catalog: Catalog, service: str, operation: str, group: str | None, language: str
) -> ProcedureRef:
    """The fallback procedure of ``group`` for the operation, in ``language``."""
    procedure = catalog.procedure_for(service, operation, group)
    if procedure is None:
        return ProcedureRef(None, None, None)
    return ProcedureRef(procedure.id, procedure.text.get(language), procedure.link)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no answer can be given now, and what the caller does instead."""

    status: int
    kind: str
    title: str
    detail: str
    service: str
    operation: str
    since: float
    retry_after: int
    target_group: str | None
    language: str
    procedure: ProcedureRef
    outcome: str = "not_sent"
    """``not_sent``: nothing reached the service; ``unknown``: it may have been applied."""

    def as_problem(self) -> dict[str, object]:
        return {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "service": self.service,
            "operation": self.operation,
            "since": rfc3339(self.since),
            "retry_after": self.retry_after,
            "outcome": self.outcome,
            "target_group": self.target_group,
            "language": self.language,
            "procedure": None
            if self.procedure.id is None
            else {
                "id": self.procedure.id,
                "text": self.procedure.text,
                "link": self.procedure.link,
            },
        }

    def json_body(self) -> bytes:
        return json.dumps(self.as_problem(), ensure_ascii=False).encode()

    def soap_body(self) -> bytes:
        proc = self.procedure
        procedure = ""
        if proc.id is not None:
            link = f" link={quoteattr(proc.link)}" if proc.link else ""
            procedure = (
                f"<garde:Procedure id={quoteattr(proc.id)}{link}>{escape(proc.text or '')}"
                "</garde:Procedure>"
            )
        group = (
            f"<garde:TargetGroup>{escape(self.target_group)}</garde:TargetGroup>"
            if self.target_group
            else ""
        )
        summary = proc.text or f"{self.title}: {self.detail}"
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            "<soap:Fault><faultcode>soap:Server</faultcode>"
            f"<faultstring xml:lang={quoteattr(self.language)}>{escape(summary)}</faultstring>"
            f"<detail><garde:Unavailable xmlns:garde={quoteattr(GARDE_NS)}"
            f" type={quoteattr(PROBLEM_BASE + self.kind)}>"
            f"<garde:Title>{escape(self.title)}</garde:Title>"
            f"<garde:Detail>{escape(self.detail)}</garde:Detail>"
            f"<garde:Service>{escape(self.service)}</garde:Service>"
            f"<garde:Operation>{escape(self.operation)}</garde:Operation>"
            f"<garde:Since>{rfc3339(self.since)}</garde:Since>"
            f"<garde:RetryAfter>{self.retry_after}</garde:RetryAfter>"
            f"<garde:Outcome>{self.outcome}</garde:Outcome>"
            f"{group}{procedure}</garde:Unavailable></detail></soap:Fault>"
            "</soap:Body></soap:Envelope>"
        ).encode()


def rejection_problem(status: int, message: str) -> bytes:
    """RFC 9457 body for bad input (4xx): what was wrong and how to fix it."""
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return json.dumps(
        {
            "type": PROBLEM_BASE + "bad-request",
            "title": title,
            "status": status,
            "detail": message,
        },
        ensure_ascii=False,
    ).encode()


def rejection_fault(status: int, message: str) -> bytes:
    """SOAP 1.1 Fault for bad input: faultcode ``soap:Client`` (the request must change)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{escape(message)}"
        f"</faultstring><detail><garde:RequestRejected xmlns:garde={quoteattr(GARDE_NS)}"
        f' status="{status}">{escape(message)}</garde:RequestRejected></detail>'
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()
