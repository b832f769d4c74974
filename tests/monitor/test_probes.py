"""Each probe type against loopback servers: HTTP, SOAP, assertions, latency, STS step, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import time
from pathlib import Path

import pytest
from aiohttp import web

from garde import soap as gsoap
from garde.lab.tokens import TokenAuthority, TokenRejected
from garde.monitor.probes import Prober, ProbeResult
from garde.monitor.targets import Assertion, Kind, Target, TokenStep
from garde.soap.saml import read_token_query
from tests.certificates import self_signed
from tests.monitor.loopback import STS_NS, fault, serve, soap, xml


def run(target: Target, routes: dict[str, object], **prober: object) -> ProbeResult:
    async def main() -> ProbeResult:
        async with serve(routes) as base:  # type: ignore[arg-type]
            t = Target(**{**_fields(target), "url": base + target.url})
            async with Prober(**prober) as p:  # type: ignore[arg-type]
                return await p.probe(t)

    return asyncio.run(main())


def _fields(target: Target) -> dict[str, object]:
    return {f: getattr(target, f) for f in target.__slots__}  # type: ignore[attr-defined]


def http(path: str = "/x", **kw: object) -> Target:
    return Target(id="svc@dc1", service="svc", dc="dc1", url=path, **kw)  # type: ignore[arg-type]


def soap_target(**kw: object) -> Target:
    return http(kind=Kind.SOAP, method="POST", body=b"<Ping/>", **kw)


async def ok_handler(request: web.Request) -> web.Response:
    return web.Response(text="fine")


def test_http_200_is_up() -> None:
    result = run(http(), {"/x": ok_handler})
    assert result.ok
    assert result.status == 200
    assert not result.slow


def test_http_500_fails_with_the_status() -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    result = run(http(), {"/x": broken})
    assert not result.ok
    assert result.error == "HTTP 503, expected 200"


def test_connection_refused_fails() -> None:
    async def main() -> ProbeResult:
        async with serve({}) as base:
            url = base
        async with Prober() as p:  # the server is gone: nothing listens on that port
            return await p.probe(http(url + "/x"))

    result = asyncio.run(main())
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("connection failed")


def test_timeout_fails_within_the_timeout() -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    result = run(http(timeout=0.2), {"/x": hang})
    assert not result.ok
    assert result.error == "timeout after 0.2s"
    assert result.latency < 2


def test_soap_fault_in_a_200_is_a_failure() -> None:
    async def sneaky(request: web.Request) -> web.Response:
        return xml(fault("soap:Server", "database unavailable"), status=200)

    result = run(soap_target(), {"/x": sneaky})
    assert not result.ok
    assert result.error == "SOAP Fault soap:Server: database unavailable (HTTP 200)"


def test_soap_answer_is_up_and_request_is_an_envelope() -> None:
    seen: list[bytes] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return xml(soap("<PingResponse><Status>OK</Status></PingResponse>"))

    result = run(
        soap_target(assertions=(Assertion(xpath="//Status", equals="OK"),)), {"/x": answer}
    )
    assert result.ok, result.error
    assert b"Envelope" in seen[0]
    assert b"<Ping/>" in seen[0]


def test_xpath_assertion_failure_says_what_was_expected() -> None:
    async def answer(request: web.Request) -> web.Response:
        return xml(soap("<PingResponse><Status>KO</Status></PingResponse>"))

    result = run(
        soap_target(assertions=(Assertion(xpath="//Status", equals="OK"),)), {"/x": answer}
    )
    assert not result.ok
    assert result.error == "assertion '//Status': expected 'OK', got 'KO'"


def test_xml_entities_are_not_expanded() -> None:
    """A hostile answer with an external entity is parsed safely and not trusted."""

    async def xxe(request: web.Request) -> web.Response:
        body = (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            f'<soap:Envelope xmlns:soap="{"http://schemas.xmlsoap.org/soap/envelope/"}">'
            "<soap:Body><R><S>&e;</S></R></soap:Body></soap:Envelope>"
        )
        return xml(body)

    result = run(soap_target(assertions=(Assertion(xpath="//S", equals="root"),)), {"/x": xxe})
    assert not result.ok
    assert result.error is not None
    assert "root:" not in result.error


def test_jsonpath_assertions() -> None:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "up", "checks": [{"db": "down"}]})

    good = run(http(assertions=(Assertion(jsonpath="$.status", equals="up"),)), {"/x": health})
    bad = run(http(assertions=(Assertion(jsonpath="$.checks[0].db", equals="up"),)), {"/x": health})
    missing = run(http(assertions=(Assertion(jsonpath="$.nothing"),)), {"/x": health})
    assert good.ok
    assert not bad.ok
    assert bad.error == "assertion '$.checks[0].db': expected 'up', got 'down'"
    assert not missing.ok
    assert missing.error == "assertion '$.nothing': no match"


def test_latency_threshold_marks_slow_but_up() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.15)
        return web.Response(text="ok")

    result = run(http(latency_threshold=0.05), {"/x": slow})
    assert result.ok
    assert result.slow
    assert result.error is not None
    assert result.error.startswith("slow:")


def test_synthetic_sts_token_then_call() -> None:
    """The operation is called with the assertion the STS issued for the probe's signed
    SAML request (the lab STS's own codec answers); a forged one would fail."""
    authority = TokenAuthority(3600, time.time)
    calls = {"sts": 0}

    async def sts(request: web.Request) -> web.Response:
        calls["sts"] += 1
        assert request.headers["SOAPAction"] == f'"{gsoap.REQUEST_SECURE_TOKEN}"'
        query = read_token_query(gsoap.parse_xml(await request.read()))
        assert query.identity == "monitor"
        return web.Response(body=authority.issue_assertion(query), content_type="text/xml")

    async def service(request: web.Request) -> web.Response:
        envelope = gsoap.parse_envelope(await request.read())
        try:
            authority.verify(envelope.token)
        except TokenRejected as exc:
            return xml(fault(exc.code, exc.reason), status=500)
        return xml(soap("<PingResponse/>"))

    async def main() -> tuple[ProbeResult, ProbeResult]:
        async with serve({"/sts": sts, "/svc": service}) as base:
            target = Target(
                id="svc@dc1",
                service="svc",
                dc="dc1",
                url=base + "/svc",
                kind=Kind.SOAP,
                method="POST",
                body=b"<Ping/>",
                token=TokenStep(base + "/sts", "monitor", "secret"),
            )
            async with Prober() as p:
                return await p.probe(target), await p.probe(target)

    first, second = asyncio.run(main())
    assert first.ok, first.error
    assert second.ok
    assert calls["sts"] == 1, "the token is reused while more than half its validity is left"


def _sts_answer(token: str, start: dt.datetime | None, end: dt.datetime) -> str:
    not_before = f"<sts:NotBefore>{start.isoformat()}</sts:NotBefore>" if start else ""
    return soap(
        f'<sts:RequestSecurityTokenResponse xmlns:sts="{STS_NS}"><sts:Token>{token}</sts:Token>'
        f"{not_before}<sts:NotOnOrAfter>{end.isoformat()}</sts:NotOnOrAfter>"
        "</sts:RequestSecurityTokenResponse>"
    )


def test_an_sts_answer_without_its_validity_fails_the_step_saying_so() -> None:
    """The STS contract's answer has Token, NotBefore and NotOnOrAfter: one without is the
    STS's failure (the gateway could not use it either), not a token to call with."""

    async def sts(request: web.Request) -> web.Response:
        return xml(_sts_answer("tok", None, dt.datetime.now(dt.UTC)))

    async def main() -> ProbeResult:
        async with serve({"/sts": sts, "/svc": ok_handler}) as base:
            target = Target(
                id="svc@dc1",
                service="svc",
                dc="dc1",
                url=base + "/svc",
                kind=Kind.SOAP,
                method="POST",
                body=b"<Ping/>",
                token=TokenStep(base + "/sts", "m", "s"),
            )
            async with Prober() as p:
                return await p.probe(target)

    result = asyncio.run(main())
    assert not result.ok
    assert result.error == (
        "STS step failed: the STS answer lacks Token, NotBefore or NotOnOrAfter"
    )


def test_synthetic_step_failure_names_the_sts() -> None:
    async def sts(request: web.Request) -> web.Response:
        return xml(fault("soap:Server", "STS down"), status=500)

    async def main() -> ProbeResult:
        async with serve({"/sts": sts, "/svc": ok_handler}) as base:
            target = Target(
                id="svc@dc1",
                service="svc",
                dc="dc1",
                url=base + "/svc",
                kind=Kind.SOAP,
                method="POST",
                body=b"<Ping/>",
                token=TokenStep(base + "/sts", "m", "s"),
            )
            async with Prober() as p:
                return await p.probe(target)

    result = asyncio.run(main())
    assert not result.ok
    assert result.error == "STS step failed: soap:Server: STS down"


def _certificate(tmp: Path, days: float) -> tuple[Path, Path]:
    return self_signed(tmp, days=days)


@pytest.mark.parametrize(
    ("days", "ok", "slow"), [(90, True, False), (20, True, True), (5, False, False)]
)
def test_tls_certificate_expiry(tmp_path: Path, days: float, ok: bool, slow: bool) -> None:
    cert, key = _certificate(tmp_path, days)

    async def main() -> ProbeResult:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            target = Target(
                id="tls:x",
                service="svc",
                dc="dc1",
                url=f"https://localhost:{port}/",
                kind=Kind.TLS,
                timeout=5,
                ca_file=str(cert),
            )
            async with Prober() as p:
                return await p.probe(target)
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(main())
    assert (result.ok, result.slow) == (ok, slow), result.error
    if not ok:
        assert result.error is not None
        assert re.fullmatch(r"certificate expires in [45]\.\d days", result.error)
