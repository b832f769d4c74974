"""Lab STS tokens: HMAC-signed, time-limited, checked by every other simulated service.

A token is ``base64url(json claims) "." base64url(HMAC-SHA256(secret, claims))``. The claims
hold the identity, the credential type and the validity window. The validity is configurable
(minutes in drills) so that expiry, the failure that bit the real chain, actually happens.
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

from garde.soap import IssuedToken


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
        # Verified signatures, so the hot path does not recompute an HMAC per request.
        self._verified: dict[str, Claims] = {}

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
                "no security token: put the STS token in wsse:Security/wsse:BinarySecurityToken",
            )
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
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
