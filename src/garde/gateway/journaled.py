"""What the caller of a write gets once the gateway has journaled it (every data center down).

Three answers, chosen per operation by the catalog (``continuity.answer``), because the
software in front of the gateway is of two kinds:

- garde-aware software reads ``Garde-Receipt`` and follows the receipt: ``receipt`` (202
  with a ``garde:Journaled`` body), also given to any request with ``Prefer: respond-async``
  (RFC 7240), whatever the catalog says;
- software with a client generated from the WSDL (zeep, JAX-WS/CXF, .NET WCF) understands only
  what the WSDL says: ``response`` (200, the operation's own response element, empty, and
  the receipt in a ``garde:Journaled`` SOAP header the client ignores unless asked) or
  ``accepted`` (202 with no body, which zeep and CXF take as "no answer").

Every answer carries ``Garde-Receipt``, ``Location`` and ``Garde-Mode: degraded``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from garde.catalog import JournaledAnswer, WireProtocol
from garde.gateway.refusals import GARDE_NS
from garde.gateway.routing import OperationRoute
from garde.gateway.upstreams import Mode
from garde.gateway.wire import Reply, Request
from garde.journal import Receipt
from garde.soap import SOAP12_ENV_NS, SOAP_ENV_NS

SOAP_TYPE = (b"Content-Type", b"text/xml; charset=utf-8")
SOAP12_TYPE = (b"Content-Type", b"application/soap+xml; charset=utf-8")
_PLAIN = re.compile(r'[^&<>"\t\n\r]*')
_GARDE_NS = quoteattr(GARDE_NS)


def _attr(value: str) -> str:
    """``quoteattr(value)``, without its four replacements for what needs none (receipt
    ids, locations, states: every answer has three)."""
    return f'"{value}"' if _PLAIN.fullmatch(value) else quoteattr(value)


def wants_receipt(request: Request) -> bool:
    """``Prefer: respond-async`` (RFC 7240): the caller reads receipts itself."""
    prefer = request.header(b"prefer")
    if prefer is None:
        return False
    # Preferences are comma separated, each a token with optional "=value" and ";" parameters.
    names = (
        item.split(b";", 1)[0].split(b"=", 1)[0].strip().lower() for item in prefer.split(b",")
    )
    return b"respond-async" in names


def journaled_reply(
    route: OperationRoute, request: Request, receipt: Receipt, soap_namespace: str | None
) -> Reply:
    """The answer to ``request``, whose write ``receipt`` now holds."""
    location = f"/_garde/receipts/{receipt.id}"
    headers = [
        (b"Garde-Receipt", receipt.id.encode()),
        (b"Location", location.encode()),
        (b"Garde-Mode", Mode.DEGRADED.value.encode()),
    ]
    if route.service.protocol is not WireProtocol.SOAP:
        state = receipt.state.value
        json = f'{{"receipt":"{receipt.id}","location":"{location}","state":"{state}"}}'
        return Reply(202, [*headers, (b"Content-Type", b"application/json")], json.encode())
    answer = JournaledAnswer.RECEIPT if wants_receipt(request) else route.journaled_answer
    soap12 = soap_namespace == SOAP12_ENV_NS
    envelope_ns = SOAP12_ENV_NS if soap12 else SOAP_ENV_NS
    content_type = SOAP12_TYPE if soap12 else SOAP_TYPE
    journaled = (
        f"<garde:Journaled xmlns:garde={_GARDE_NS} receipt={_attr(receipt.id)}"
        f" location={_attr(location)} state={_attr(receipt.state.value)}/>"
    )
    if answer is JournaledAnswer.ACCEPTED:
        return Reply(202, headers, b"")
    head = f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{envelope_ns}">'
    if answer is JournaledAnswer.RESPONSE and route.response_element is not None:
        namespace, local = route.response_element
        body = (
            f"{head}<soap:Header>{journaled}</soap:Header><soap:Body>"
            f"<op:{local} xmlns:op={quoteattr(namespace)}/></soap:Body></soap:Envelope>"
        )
        return Reply(200, [*headers, content_type], body.encode())
    body = f"{head}<soap:Body>{journaled}</soap:Body></soap:Envelope>"
    return Reply(202, [*headers, content_type], body.encode())
