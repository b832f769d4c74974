"""STS tokens: reused while fresh, renewed once per identity, fallback credential, expiry."""

from __future__ import annotations

import asyncio

import pytest

from garde.catalog import Catalog
from garde.errors import RequestRejected, TokenUnavailable, UpstreamUnavailable
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.tokens import (
    Credential,
    IdentityConfig,
    Token,
    TokenManager,
    parse_token_response,
)
from garde.gateway.transport import Response
from garde.soap import legacy_token_request
from tests.gateway.doubles import EXECUTOR, RECIPE, Call, FakeTransport, MemoryJournal, soap_request

EID = Credential("eid", "1234")
KEYSTORE = Credential("keystore", "pw")


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


class FakeSts:
    def __init__(self, clock: Clock, validity: float = 3600.0) -> None:
        self.clock = clock
        self.validity = validity
        self.calls: list[tuple[str, str]] = []
        self.refuse: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, identity: str, credential: Credential) -> Token:
        self.calls.append((identity, credential.kind))
        if self.gate is not None:
            await self.gate.wait()
        if credential.kind in self.refuse:
            raise UpstreamUnavailable(f"{credential.kind} login refused")
        now = self.clock()
        return Token(f"T{len(self.calls)}", now, now + self.validity)


def manager(clock: Clock, sts: FakeSts, fallback: bool = True) -> TokenManager:
    identities = {"ph1": IdentityConfig(EID, KEYSTORE if fallback else None)}
    return TokenManager(identities, sts, clock=clock)


def test_token_is_reused_while_more_than_half_its_validity_is_left() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    tokens = manager(clock, sts)

    async def main() -> None:
        assert await tokens.token("ph1") == "T1"
        clock.now += 1700
        assert await tokens.token("ph1") == "T1"
        assert len(sts.calls) == 1
        clock.now += 200  # past half: still valid, renewed in the background
        assert await tokens.token("ph1") == "T1"
        await asyncio.sleep(0)
        assert await tokens.token("ph1") == "T2"
        assert len(sts.calls) == 2

    asyncio.run(main())


def test_one_renewal_in_flight_per_identity() -> None:
    """A hundred requests at once for a new identity cost the STS one login, not a herd."""
    clock = Clock()
    sts = FakeSts(clock)
    sts.gate = asyncio.Event()
    tokens = manager(clock, sts)

    async def main() -> None:
        waiting = [asyncio.create_task(tokens.token("ph1")) for _ in range(100)]
        await asyncio.sleep(0)
        assert sts.gate is not None
        sts.gate.set()
        assert set(await asyncio.gather(*waiting)) == {"T1"}

    asyncio.run(main())
    assert len(sts.calls) == 1


def test_expired_token_is_never_used() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    tokens = manager(clock, sts)

    async def main() -> None:
        assert await tokens.token("ph1") == "T1"
        clock.now += 3600
        sts.refuse = {"eid", "keystore"}
        with pytest.raises(TokenUnavailable):
            await tokens.token("ph1")

    asyncio.run(main())


def test_a_refused_login_stands_for_a_moment_then_the_sts_is_asked_again() -> None:
    """While the STS is down, a burst of requests costs it one login attempt (and the
    gateway one signature), not one per request; a second later it is asked again."""
    clock = Clock()
    sts = FakeSts(clock)
    sts.refuse = {"eid", "keystore"}
    tokens = manager(clock, sts)

    async def main() -> None:
        for _ in range(50):
            with pytest.raises(TokenUnavailable, match="eid login refused"):
                await tokens.token("ph1")
        assert sts.calls == [("ph1", "eid"), ("ph1", "keystore")]
        sts.refuse = set()
        clock.now += tokens.hold_off / 2
        with pytest.raises(TokenUnavailable):
            await tokens.token("ph1")
        assert len(sts.calls) == 2
        clock.now += tokens.hold_off
        assert await tokens.token("ph1") == "T3"

    asyncio.run(main())


def test_fallback_credential_when_the_primary_login_fails() -> None:
    clock = Clock()
    sts = FakeSts(clock)
    sts.refuse = {"eid"}
    tokens = manager(clock, sts)
    assert asyncio.run(tokens.token("ph1")) == "T2"
    assert sts.calls == [("ph1", "eid"), ("ph1", "keystore")]
    assert tokens.fallbacks == 1


def test_unknown_identity_is_a_clear_400() -> None:
    clock = Clock()
    with pytest.raises(RequestRejected, match="no credentials"):
        asyncio.run(manager(clock, FakeSts(clock)).token("nobody"))


def test_sts_request_and_response_follow_the_lab_contract() -> None:
    body = legacy_token_request("ph<1>", "s&cret", "eid")
    assert b"<sts:Identity>ph&lt;1&gt;</sts:Identity>" in body
    assert b'type="eid"' in body
    token = parse_token_response(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<sts:RequestSecurityTokenResponse xmlns:sts="urn:be:fgov:ehealth:sts:protocol:v1">'
        b"<sts:Token>abc</sts:Token><sts:NotBefore>2026-01-27T09:00:00Z</sts:NotBefore>"
        b"<sts:NotOnOrAfter>2026-01-27T10:00:00Z</sts:NotOnOrAfter>"
        b"</sts:RequestSecurityTokenResponse></s:Body></s:Envelope>"
    )
    assert token.value == "abc"
    assert token.not_on_or_after - token.not_before == 3600


def _sts_answer(call: Call) -> Response:
    if b"urn:oasis:names:tc:SAML:1.0:protocol" in call.body:
        return Response(
            200,
            [],
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b'<sts:RequestSecurityTokenResponse xmlns:sts="urn:be:fgov:ehealth:sts:protocol:v1">'
            b"<sts:Token>LABTOKEN</sts:Token><sts:NotBefore>2026-01-27T09:00:00Z</sts:NotBefore>"
            b"<sts:NotOnOrAfter>2099-01-27T10:00:00Z</sts:NotOnOrAfter>"
            b"</sts:RequestSecurityTokenResponse></s:Body></s:Envelope>",
        )
    return Response(200, [], b"<ok/>")


def test_gateway_attaches_the_identitys_token_at_send_time(catalog: Catalog) -> None:
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, _sts_answer)
    config = GatewayConfig(health_checks=False, identities={"ph1": IdentityConfig(EID)})
    gateway = Gateway(catalog, transport, config, MemoryJournal())
    request = soap_request(
        EXECUTOR, "getPrescriptionForExecutor", RECIPE, extra=[(b"Garde-Identity", b"ph1")]
    )
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 200
    sts_call, call = transport.calls
    assert sts_call.target.startswith(b"/IAM")
    assert b"BinarySecurityToken" in call.body
    assert b"LABTOKEN" in call.body
    assert call.header(b"garde-identity") is None


def test_sts_down_refuses_online_calls_with_the_sts_procedure(catalog: Catalog) -> None:
    transport = FakeTransport()
    for dc in ("dc1", "dc2", "dc3"):
        transport.set(dc, lambda call: Response(503, [], b""))
    config = GatewayConfig(health_checks=False, identities={"ph1": IdentityConfig(EID)})
    gateway = Gateway(catalog, transport, config, MemoryJournal())
    extra = [(b"Garde-Identity", b"ph1"), (b"Garde-Target-Group", b"pharmacist")]
    request = soap_request(EXECUTOR, "getPrescriptionForExecutor", RECIPE, extra=extra)
    reply = asyncio.run(gateway.handle(request))
    assert reply.status == 503
    assert b"<garde:Service>sts</garde:Service>" in reply.body
    assert b'id="keystore-session"' in reply.body
    assert all(c.target.startswith(b"/IAM") for c in transport.calls), "nothing sent untokened"
