"""Lab STS tokens: SAML 1.1 assertions signed by the lab's STS key, time-limited, checked by
every other simulated service.

The STS answers the real request (``garde.soap.saml``) with an assertion valid for the lab's
configured validity (minutes in drills), so that expiry, the failure that bit the real
chain, actually happens. The lab's former opaque tokens (deprecated) are still issued and
checked: ``base64url(json claims) "." base64url(HMAC-SHA256(secret, claims))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from garde.errors import MalformedMessage
from garde.soap import (
    AssertionFacts,
    Credentials,
    IssuedToken,
    SignatureRejected,
    TokenQuery,
    assertion_response,
    utc_instant,
    verify_assertion,
)


class TokenRejected(Exception):
    """A token is missing, forged or expired; ``code`` is the WS-Security fault code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    identity: str
    kind: str
    not_before: float
    not_on_or_after: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenAuthority:
    """Issues and verifies the lab's tokens with one secret, shared by every data center."""

    def __init__(
        self,
        validity: float,
        clock: Callable[[], float],
        secret: bytes | None = None,
    ) -> None:
        self.validity = validity
        self.clock = clock
        self._secret = secret or secrets.token_bytes(32)
        # Verified signatures, so the hot path does not recompute an HMAC or check an XML
        # signature per request.
        self._verified: dict[str, Claims] = {}
        self._credentials: Credentials | None = None

    @property
    def credentials(self) -> Credentials:
        """The STS's signing key and self-signed certificate, made on first use."""
        if self._credentials is None:
            self._credentials = Credentials.self_signed("garde lab STS")
        return self._credentials

    def issue_assertion(self, query: TokenQuery) -> bytes:
        """The ``samlp:Response`` envelope for an STS request whose signature and
        certificate were checked: one assertion valid from now for ``validity``."""
        now = self.clock()
        start = datetime.fromtimestamp(now, UTC)
        end = datetime.fromtimestamp(now + self.validity, UTC)
        return assertion_response(query, self.credentials, not_before=start, not_on_or_after=end)

    def issue(self, identity: str, kind: str) -> IssuedToken:
        now = self.clock()
        claims = {
            "sub": identity,
            "typ": kind,
            "nbf": now,
            "exp": now + self.validity,
            "jti": secrets.token_hex(8),
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return IssuedToken(f"{body}.{signature}", iso(now), iso(now + self.validity))

    def verify(self, token: str | None) -> Claims:
        """The token's claims; ``TokenRejected`` if it is missing, forged or expired."""
        if not token:
            raise TokenRejected(
                "wsse:InvalidSecurityToken",
                "no security token: put the STS's saml:Assertion in wsse:Security",
            )
        claims = self._verified.get(token)
        if claims is None:
            claims = (
                self._check_assertion(token)
                if token.startswith("<")
                else self._check_signature(token)
            )
            if len(self._verified) > 100_000:
                self._verified.clear()
            self._verified[token] = claims
        now = self.clock()
        if now >= claims.not_on_or_after:
            raise TokenRejected(
                "wsse:MessageExpired",
                f"the security token expired at {iso(claims.not_on_or_after)}: ask the STS again",
            )
        if now < claims.not_before - 60:  # a minute of clock skew, as WS-Security allows
            raise TokenRejected("wsse:InvalidSecurityToken", "the security token is not valid yet")
        return claims

    def _check_assertion(self, token: str) -> Claims:
        try:
            facts: AssertionFacts = verify_assertion(token.encode(), self.credentials.certificate)
        except SignatureRejected as exc:
            # A token that fails its check is an invalid token to the service (the gateway
            # then asks the STS for another), whatever was wrong with its signature.
            raise TokenRejected("wsse:InvalidSecurityToken", exc.reason) from None
        except MalformedMessage as exc:
            raise TokenRejected("wsse:InvalidSecurityToken", str(exc)) from None
        start, end = utc_instant(facts.not_before), utc_instant(facts.not_on_or_after)
        if start is None or end is None:
            raise TokenRejected(
                "wsse:InvalidSecurityToken", "the assertion's Conditions carry no validity"
            )
        return Claims(facts.identity, "saml", start, end)

    def _check_signature(self, token: str) -> Claims:
        forged = TokenRejected(
            "wsse:InvalidSecurityToken", "the security token was not issued by this STS"
        )
        body, _, signature = token.partition(".")
        expected = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        if not signature or not hmac.compare_digest(signature, expected):
            raise forged
        try:
            raw = json.loads(_unb64(body))
            return Claims(str(raw["sub"]), str(raw["typ"]), float(raw["nbf"]), float(raw["exp"]))
        except (ValueError, KeyError, TypeError):
            raise forged from None
