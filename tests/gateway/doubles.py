"""In-process doubles for the gateway's tests: a scriptable transport and a memory journal."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from garde.catalog import load_catalog
from garde.errors import (
    AttemptFailed,
    ConnectFailed,
    EntryNotFound,
    JournalUnavailable,
    SentFailed,
)
from garde.gateway.transport import Endpoint, Headers, Pending, Response
from garde.gateway.wire import Reply, Request
from garde.journal.base import Receipt, State, Submission
from garde.lab.tokens import TokenAuthority

RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"
GI = "urn:be:fgov:ehealth:genericinsurability:protocol:v1"
EXECUTOR = "/Recip-e/v4/Executor"
INSURABILITY = "/GenericInsurability/v1"
OK_BODY = (
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    b"<r:Ok xmlns:r='urn:x'/></soap:Body></soap:Envelope>"
)


WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
LAB_STS = TokenAuthority(validity=3600.0, clock=time.time)
"""Issues callers' own tokens as the lab's STS does (the gateway never sees its secret)."""


def caller_security(subject: str = "pharmacist-1", token: str | None = None) -> str:
    """A ``wsse:Security`` header as care software that signs in itself sends it."""
    value = token if token is not None else LAB_STS.issue(subject, "eid").token
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:BinarySecurityToken'
        f' ValueType="urn:garde:lab:token">{value}</wsse:BinarySecurityToken></wsse:Security>'
    )


def envelope(element: str, namespace: str, inner: str = "", header: str = "") -> bytes:
    return (
        '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<soap:Header>{header}</soap:Header><soap:Body>"
        f'<x:{element} xmlns:x="{namespace}">{inner}</x:{element}></soap:Body></soap:Envelope>'
    ).encode()


_CATALOG = load_catalog("belgium", env={})


def soap_request(
    path: str,
    operation: str,
    namespace: str = "",
    inner: str = "",
    *,
    action: bool = True,
    extra: list[tuple[bytes, bytes]] | None = None,
    header: str = "",
) -> Request:
    """A request for ``operation`` of the service at ``path``, named as the catalog says."""
    service = next(s for s in _CATALOG.services.values() if s.path_prefix == path)
    op = service.operations[operation]
    element = service.body_element_of(op)
    assert element is not None
    element_ns, local = element[1:].split("}")
    # Garde-aware, as the tests' callers read receipts (202 with garde:Journaled).
    headers = [
        (b"Content-Type", b"text/xml; charset=utf-8"),
        (b"Host", b"127.0.0.1"),
        (b"Prefer", b"respond-async"),
    ]
    soap_action = service.soap_action_of(op)
    if action and soap_action is not None:
        headers.append((b"SOAPAction", f'"{soap_action}"'.encode()))
    headers += extra or []
    return Request(b"POST", path.encode(), headers, envelope(local, element_ns, inner, header))


Behaviour = Callable[["Call"], Awaitable[Response] | Response]


@dataclass
class Call:
    dc: str
    method: bytes
    target: bytes
    headers: Headers
    body: bytes
    timeout: float

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


def ok(call: Call) -> Response:
    return Response(200, [(b"Content-Type", b"text/xml")], OK_BODY)


def refuse(call: Call) -> Response:
    raise ConnectFailed("refused", call.dc)


def reset(call: Call) -> Response:
    raise SentFailed("reset", call.dc)


def error_503(call: Call) -> Response:
    return Response(503, [(b"Retry-After", b"7")], b"busy")


@dataclass
class FakeTransport:
    """Data centers by the last digit of the catalog's lab port: 18051 is dc1."""

    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def set(self, dc: str, behaviour: Behaviour) -> None:
        self.behaviour[dc] = behaviour

    async def request(
        self,
        endpoint: Endpoint,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        *,
        connect_timeout: float,
        timeout: float,
    ) -> Response:
        dc = f"dc{endpoint.port % 10}"
        call = Call(dc, method, target, list(headers), body, timeout)
        self.calls.append(call)
        result = self.behaviour.get(dc, ok)(call)
        if asyncio.iscoroutine(result):
            return await result
        assert isinstance(result, Response)
        return result

    async def close(self) -> None:
        pass


class RawFakeTransport(FakeTransport):
    """``FakeTransport`` that the Python fast path can use too (``RawTransport``): it reads
    the bytes the fast path rendered back into a ``Call`` and settles the waiter from the
    event loop, as a connection's read callback would."""

    raw_calls: int = 0

    def send_now(self, endpoint: Endpoint, data: bytes, timeout: float, waiter: Pending) -> bool:
        head, _, body = data.partition(b"\r\n\r\n")
        line, *fields = head.split(b"\r\n")
        method, target, _ = line.split(b" ", 2)
        headers = [tuple(f.split(b": ", 1)) for f in fields]
        dc = f"dc{endpoint.port % 10}"
        call = Call(dc, method, target, headers, body, timeout)  # type: ignore[arg-type]
        self.calls.append(call)
        self.raw_calls += 1

        async def answer() -> None:
            try:
                result = self.behaviour.get(dc, ok)(call)
                response = await result if asyncio.iscoroutine(result) else result
            except AttemptFailed as exc:
                waiter.settle(None, exc)
                return
            assert isinstance(response, Response)
            waiter.settle(response)

        asyncio.get_running_loop().create_task(answer())
        return True


class MemoryJournal:
    """The Journal protocol in memory, enough to see what the gateway hands over."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Submission, Receipt]] = {}
        self.broken = False

    async def accept(self, submission: Submission) -> Receipt:
        if self.broken:
            raise JournalUnavailable("disk full")
        for existing, receipt in self.entries.values():
            if (existing.service, existing.operation, existing.idempotency_key) == (
                submission.service,
                submission.operation,
                submission.idempotency_key,
            ):
                return receipt
        now = time.time()
        receipt = Receipt(
            uuid.uuid4().hex,
            State.JOURNALED,
            submission.service,
            submission.operation,
            now,
            now,
            submission.deadline,
        )
        self.entries[receipt.id] = (submission, receipt)
        return receipt

    async def receipt(self, entry_id: str) -> Receipt:
        if entry_id not in self.entries:
            raise EntryNotFound(entry_id)
        return self.entries[entry_id][1]

    async def depth(self, service: str | None = None) -> int:
        return sum(1 for s, _ in self.entries.values() if service in (None, s.service))

    async def close(self) -> None:
        pass


def run(coroutine: Awaitable[Reply]) -> Reply:
    return asyncio.run(coroutine)  # type: ignore[arg-type]
