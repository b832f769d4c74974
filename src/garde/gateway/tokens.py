"""STS tokens per identity: obtained once, reused, renewed by one request at a time.

The STS is the chain's single point of failure (27 Jan 2020: the STS alone stopped
everything), so a token is reused while more than half of its validity is left, renewed in
the background after that while the old one still works, and never requested by a herd: one
renewal in flight per identity, everyone else waits for it. If the primary login fails, the
configured fallback credential (the "keystore session") is tried. Tokens are attached at
send time, so a write journaled hours ago leaves with a fresh one.

When the STS refuses a login, the refusal stands for ``hold_off`` seconds: the requests of
that moment get it at once (their writes are journaled) instead of each starting a login of
its own, an RSA signature apiece, against an STS that is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from garde.errors import MalformedMessage, RequestRejected, TokenUnavailable, UpstreamError
from garde.soap import read_token_response


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str
    """``eid`` or ``keystore``."""
    secret: str


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    primary: Credential
    fallback: Credential | None = None


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    not_before: float
    not_on_or_after: float

    def fresh(self, now: float) -> bool:
        """More than half of its validity is left: reuse without renewing."""
        half = (self.not_on_or_after - self.not_before) / 2
        return self.not_on_or_after - now > half

    def usable(self, now: float, margin: float = 5.0) -> bool:
        return self.not_on_or_after - now > margin


Fetch = Callable[[str, Credential], Awaitable[Token]]
"""Obtain a token for (identity, credential); ``UpstreamError`` when it cannot."""


class TokenManager:
    def __init__(
        self,
        identities: dict[str, IdentityConfig],
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.time,
        hold_off: float = 1.0,
    ) -> None:
        self.identities = identities
        self.fetch = fetch
        self.clock = clock
        self.hold_off = hold_off
        """Seconds a failed login is the answer for its identity before the STS is asked again."""
        self._tokens: dict[str, Token] = {}
        self._refused: dict[str, tuple[float, TokenUnavailable]] = {}
        self._renewing: dict[str, asyncio.Task[Token]] = {}
        self.renewals = 0
        self.fallbacks = 0

    def known(self, identity: str) -> bool:
        return identity in self.identities

    async def token(self, identity: str) -> str:
        """A valid token for ``identity``; ``TokenUnavailable`` if none can be had."""
        if identity not in self.identities:
            raise RequestRejected(
                400,
                f"Garde-Identity names {identity!r}, which has no credentials in the gateway"
                " configuration (identities: ...); add it or drop the header",
            )
        now = self.clock()
        current = self._tokens.get(identity)
        if current is not None and current.fresh(now):
            return current.value
        task = self._renewing.get(identity)
        refused = self._refused.get(identity)
        if task is None and refused is not None and now - refused[0] < self.hold_off:
            if current is not None and current.usable(now):
                return current.value
            raise TokenUnavailable(str(refused[1]))
        if task is None:
            task = asyncio.get_running_loop().create_task(self._renew(identity))
            self._renewing[identity] = task
            task.add_done_callback(partial(self._renewed, identity))
        if current is not None and current.usable(now):
            return current.value  # still valid: renew behind the caller's back
        return (await asyncio.shield(task)).value

    def invalidate(self, identity: str) -> None:
        """Forget a token the service refused (expired early, revoked)."""
        self._tokens.pop(identity, None)

    def _renewed(self, identity: str, task: asyncio.Task[Token]) -> None:
        self._renewing.pop(identity, None)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here; awaiting callers get it too
        if isinstance(error, TokenUnavailable):
            self._refused[identity] = (self.clock(), error)
        else:
            self._refused.pop(identity, None)

    async def _renew(self, identity: str) -> Token:
        config = self.identities[identity]
        self.renewals += 1
        try:
            token = await self.fetch(identity, config.primary)
        except UpstreamError as primary_error:
            if config.fallback is None:
                raise TokenUnavailable(f"no STS token: {primary_error}") from None
            self.fallbacks += 1
            try:
                token = await self.fetch(identity, config.fallback)
            except UpstreamError as fallback_error:
                raise TokenUnavailable(
                    f"no STS token: {primary_error}; fallback {config.fallback.kind}:"
                    f" {fallback_error}"
                ) from None
        self._tokens[identity] = token
        return token


def parse_token_response(body: bytes) -> Token:
    """The token of an STS answer (read by ``garde.soap``); ``UpstreamError`` if it carries
    none the gateway can use."""
    try:
        issued = read_token_response(body, max_bytes=None)
        not_before, not_on_or_after = issued.window()
    except MalformedMessage as exc:
        raise UpstreamError(f"STS answer lacks a usable token: {exc}") from None
    return Token(issued.token, not_before, not_on_or_after)
