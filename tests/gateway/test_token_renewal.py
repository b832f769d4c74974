"""Token reuse and renewal with real STS assertions: the window is read from the assertion.

The gateway's TokenManager asks the lab's STS code (the same TokenAuthority the lab runs,
through the real codec: a signed SAML request, a signed assertion back) with a short
validity and a clock the test moves; every token it hands out is accepted by the services'
check at that moment.
"""

from __future__ import annotations

import asyncio

from garde import soap
from garde.gateway.tokens import (
    Credential,
    IdentityConfig,
    Token,
    TokenManager,
    parse_token_response,
)
from garde.lab.tokens import TokenAuthority
from garde.soap.saml import read_token_query

VALIDITY = 120.0
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def setup() -> tuple[Clock, TokenAuthority, TokenManager, list[float]]:
    clock = Clock()
    authority = TokenAuthority(VALIDITY, clock)
    asked: list[float] = []

    async def fetch(identity: str, credential: Credential) -> Token:
        asked.append(clock.now)
        request = soap.token_request(identity, soap.session_credentials(identity, credential.kind))
        answer = authority.issue_assertion(read_token_query(soap.parse_xml(request)))
        return parse_token_response(answer)

    identities = {"85073003328": IdentityConfig(Credential("eid", "1234"))}
    return clock, authority, TokenManager(identities, fetch, clock=clock), asked


def test_a_token_is_reused_then_renewed_before_it_expires() -> None:
    """Reused while more than half its validity is left; renewed after that while the old
    one still serves; never used past its NotOnOrAfter."""
    clock, authority, tokens, asked = setup()

    async def run() -> None:
        first = await tokens.token("85073003328")
        assert first.startswith("<") and asked == [START]
        assert authority.verify(first).not_on_or_after == START + VALIDITY

        clock.now = START + VALIDITY * 0.4
        assert await tokens.token("85073003328") == first
        assert len(asked) == 1, "reused: more than half of its validity is left"

        clock.now = START + VALIDITY * 0.6
        assert await tokens.token("85073003328") == first, "still valid: renewed behind"
        for _ in range(100):  # let the renewal task run (no clock involved)
            if len(asked) == 2 and not tokens._renewing:
                break
            await asyncio.sleep(0)
        assert asked == [START, START + VALIDITY * 0.6]
        second = await tokens.token("85073003328")
        assert second != first
        claims = authority.verify(second)
        assert claims.not_on_or_after == START + VALIDITY * 1.6

        clock.now = START + VALIDITY + 1  # the first has expired: the second serves
        assert await tokens.token("85073003328") == second
        authority.verify(second)

    asyncio.run(run())


def test_a_token_near_its_end_is_not_handed_out() -> None:
    """A token with less than the margin left is replaced before the call, not after."""
    clock, authority, tokens, asked = setup()

    async def run() -> None:
        first = await tokens.token("85073003328")
        clock.now = START + VALIDITY - 2  # inside the 5 s margin
        second = await tokens.token("85073003328")
        assert second != first
        assert len(asked) == 2
        assert authority.verify(second).not_on_or_after == clock.now + VALIDITY

    asyncio.run(run())
