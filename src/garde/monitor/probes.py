"""One check of one target: HTTP, SOAP (a Fault in a 200 is a failure), TLS expiry, and the
synthetic STS-token-then-call step, with XPath/JSONPath assertions and a latency threshold.

The ``Prober`` owns one HTTP client session (keep-alive, bounded connections) shared by all
targets; every failure becomes a ``ProbeResult`` with a short reason, never an exception.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from lxml import etree

from garde import soap
from garde.errors import MalformedMessage
from garde.locales import from_rfc3339
from garde.monitor.clock import Clock, SystemClock
from garde.monitor.targets import (
    Assertion,
    Kind,
    Target,
    TokenStep,
    soap_envelope,
)

MAX_BODY = 1 << 20
"""Probes read at most 1 MiB of an answer: a monitor must not be flooded by what it watches."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: str
    at: float
    ok: bool
    latency: float
    """Seconds from sending the request to the end of the answer."""
    slow: bool = False
    """Succeeded, but slower than the target's threshold (or a certificate near expiry)."""
    error: str | None = None
    status: int | None = None
    location: str = "local"

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "at": self.at,
            "ok": self.ok,
            "latency": self.latency,
            "slow": self.slow,
            "error": self.error,
            "status": self.status,
            "location": self.location,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], location: str) -> ProbeResult:
        return cls(
            target=str(data["target"]),
            at=_moment(data["at"]),
            ok=bool(data["ok"]),
            latency=float(data["latency"]),
            slow=bool(data.get("slow", False)),
            error=None if data.get("error") is None else str(data["error"])[:500],
            status=None if data.get("status") is None else int(data["status"]),
            location=location,
        )


def _moment(value: object) -> float:
    """A pushed result's time: RFC 3339, or Unix seconds (what ``garde probe`` still sends
    this release, so that a monitor not yet upgraded takes its pushes)."""
    if isinstance(value, str):
        return from_rfc3339(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"at: expected an RFC 3339 time, got {value!r}")


class ProbeFailed(Exception):
    """Internal: the check failed for the reason given (turned into a result, never raised)."""


@dataclass
class _Token:
    value: str
    renew_at: float


class Prober:
    """Runs checks. ``async with Prober() as prober: await prober.probe(target)``."""

    def __init__(
        self,
        *,
        location: str = "local",
        clock: Clock | None = None,
        max_connections: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.location = location
        self.clock = clock or SystemClock()
        self._max_connections = max_connections
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str], _Token] = {}

    async def __aenter__(self) -> Prober:
        # No pool limit by default: the scheduler bounds probes in flight. A pool limit as
        # large as that bound made probes wait behind idle keep-alive connections to other
        # hosts (31 of them on the lab): 5,000 targets then fell behind at 500 probes/s.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, ssl=self._ssl or True
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self, target: Target) -> ProbeResult:
        at = self.clock.now()
        start = time.perf_counter()
        try:
            if target.kind is Kind.TLS:
                async with asyncio.timeout(target.timeout):
                    days = await self._tls_days_left(target)
                latency = time.perf_counter() - start
                if days < target.tls_min_days:
                    raise ProbeFailed(f"certificate expires in {days:.1f} days")
                return ProbeResult(
                    target.id,
                    at,
                    True,
                    latency,
                    slow=days < target.tls_warn_days,
                    error=f"certificate expires in {days:.0f} days"
                    if days < target.tls_warn_days
                    else None,
                    location=self.location,
                )
            async with asyncio.timeout(target.timeout):
                return await self._http(target, at)
        except ProbeFailed as exc:
            return self._failed(target, at, start, str(exc))
        except TimeoutError:
            return self._failed(target, at, start, f"timeout after {target.timeout:g}s")
        except aiohttp.ClientError as exc:
            return self._failed(target, at, start, f"connection failed: {type(exc).__name__}")
        except ssl.SSLError as exc:
            return self._failed(target, at, start, f"TLS failed: {exc.reason}")
        except OSError as exc:
            return self._failed(target, at, start, f"connection failed: {exc.strerror or exc}")

    def _failed(self, target: Target, at: float, start: float, reason: str) -> ProbeResult:
        return ProbeResult(
            target.id,
            at,
            False,
            time.perf_counter() - start,
            error=reason,
            location=self.location,
        )

    async def _http(self, target: Target, at: float) -> ProbeResult:
        body = target.body
        if target.sts_identity is not None:
            # The STS itself: a request signed now (a signed request expires in minutes).
            body = await asyncio.to_thread(_signed_token_request, target.sts_identity, "keystore")
        elif target.token is not None:
            token = await self._token(target.token)
            body = _with_token(body or b"", token)
        elif target.kind is Kind.SOAP and body is not None and not body.startswith(b"<?xml"):
            body = soap_envelope(body.decode())
        start = time.perf_counter()
        status, content, content_type = await self._request(target, body)
        latency = time.perf_counter() - start
        if target.kind is Kind.SOAP or b"Envelope" in content[:400]:
            fault = _soap_fault(content)
            if fault is not None:
                raise ProbeFailed(f"SOAP Fault {fault} (HTTP {status})")
        if status not in target.expect_status:
            raise ProbeFailed(f"HTTP {status}, expected {_statuses(target.expect_status)}")
        for assertion in target.assertions:
            check_assertion(assertion, content, content_type)
        slow = target.latency_threshold is not None and latency > target.latency_threshold
        return ProbeResult(
            target.id,
            at,
            True,
            latency,
            slow=slow,
            error=f"slow: {latency * 1000:.0f} ms" if slow else None,
            status=status,
            location=self.location,
        )

    async def _request(self, target: Target, body: bytes | None) -> tuple[int, bytes, str]:
        assert self._session is not None, "use the Prober as an async context manager"
        async with self._session.request(
            target.method,
            target.url,
            data=body,
            headers=dict(target.headers),
            allow_redirects=False,
        ) as response:
            content = await response.content.read(MAX_BODY)
            return response.status, content, response.headers.get("Content-Type", "")

    async def _token(self, step: TokenStep) -> str:
        # Reuse a token while more than half its validity is left, as care software does:
        # the STS is probed on its own, its dependants should not hammer it.
        key = (step.url, step.identity)
        cached = self._tokens.get(key)
        now = self.clock.now()
        if cached is not None and now < cached.renew_at:
            return cached.value
        # A fresh request each time: its signature covers a timestamp that expires.
        envelope = await asyncio.to_thread(
            _signed_token_request, step.identity, step.credential_type
        )
        sts = Target(
            id="sts-step",
            service="sts",
            dc="",
            url=step.url,
            kind=Kind.SOAP,
            method="POST",
            headers=(
                ("Content-Type", "text/xml; charset=utf-8"),
                ("SOAPAction", f'"{soap.REQUEST_SECURE_TOKEN}"'),
            ),
        )
        status, content, _ = await self._request(sts, envelope)
        fault = _soap_fault(content)
        if fault is not None or status != 200:
            raise ProbeFailed(f"STS step failed: {fault or f'HTTP {status}'}")
        try:
            issued = soap.read_token_response(content, max_bytes=None)
            _, not_after = issued.window()
        except MalformedMessage as exc:
            raise ProbeFailed(f"STS step failed: {exc}") from None
        self._tokens[key] = _Token(issued.token, now + max(0.0, not_after - now) / 2)
        return issued.token

    async def _tls_days_left(self, target: Target) -> float:
        parts = urlsplit(target.url)
        host = parts.hostname or ""
        context = self._ssl or ssl.create_default_context(cafile=target.ca_file)
        _, writer = await asyncio.open_connection(
            host, parts.port or 443, ssl=context, server_hostname=host
        )
        try:
            peer = writer.get_extra_info("ssl_object")
            cert = peer.getpeercert() if peer is not None else None
            if not cert or "notAfter" not in cert:
                raise ProbeFailed("no peer certificate")
            expires = ssl.cert_time_to_seconds(str(cert["notAfter"]))
        finally:
            writer.close()
        return (expires - self.clock.now()) / 86400.0


def _statuses(codes: tuple[int, ...]) -> str:
    return " or ".join(str(c) for c in codes)


def _parse_xml(content: bytes) -> soap.Element | None:
    try:
        return soap.parse_xml(content, max_bytes=None)  # read at most MAX_BODY bytes
    except MalformedMessage:
        return None


def _soap_fault(content: bytes) -> str | None:
    """``faultcode: faultstring`` when the answer is a SOAP Fault, else None."""
    fault = soap.read_fault(content, max_bytes=None)
    if fault is None:
        return None
    code = fault.raw_code
    return f"{code}: {fault.string[:200]}" if fault.string else code or "(no faultcode)"


def _signed_token_request(identity: str, kind: str) -> bytes:
    """The STS request for ``identity``, signed now (RSA: off the event loop, where the
    first call also makes the session key)."""
    return soap.token_request(identity, soap.session_credentials(identity, kind))


def _with_token(body: bytes, token: str) -> bytes:
    """The probe's request with ``token`` in its header: the target's body is the operation
    element alone (wrapped here), or a whole envelope (its token replaced)."""
    if b"Envelope" not in body:
        return soap_envelope(body.decode(), token)
    try:
        return soap.with_token(body, token, max_bytes=None)
    except MalformedMessage as exc:
        raise ProbeFailed(f"the probe's own request is not a SOAP envelope: {exc}") from None


def check_assertion(assertion: Assertion, content: bytes, content_type: str) -> None:
    """Raise ``ProbeFailed`` saying what was expected when ``assertion`` does not hold."""
    if assertion.xpath is not None:
        root = _parse_xml(content)
        if root is None:
            raise ProbeFailed(f"assertion {assertion.xpath!r}: the answer is not XML")
        try:
            found: Any = root.xpath(assertion.xpath, namespaces=dict(assertion.namespaces))
        except etree.XPathError as exc:
            raise ProbeFailed(f"assertion {assertion.xpath!r}: invalid XPath ({exc})") from None
        values = [_xpath_text(v) for v in (found if isinstance(found, list) else [found])]
        _compare(assertion.xpath, values, assertion.equals)
        return
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext.parser import parse as jsonpath_parse

    expression = str(assertion.jsonpath)
    try:
        document = json.loads(content)
    except ValueError:
        raise ProbeFailed(f"assertion {expression!r}: the answer is not JSON") from None
    try:
        matches = jsonpath_parse(expression).find(document)
    except (JsonPathParserError, JsonPathLexerError) as exc:
        raise ProbeFailed(f"assertion {expression!r}: invalid JSONPath ({exc})") from None
    _compare(expression, [_json_text(m.value) for m in matches], assertion.equals)


def _xpath_text(value: Any) -> str:
    if isinstance(value, etree._Element):
        return "".join(str(t) for t in value.itertext())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _compare(expression: str, values: list[str], equals: str | None) -> None:
    values = [v for v in values if v not in ("", "false")] if equals is None else values
    if not values:
        raise ProbeFailed(f"assertion {expression!r}: no match")
    if equals is not None and values[0].strip() != equals:
        raise ProbeFailed(f"assertion {expression!r}: expected {equals!r}, got {values[0][:80]!r}")
