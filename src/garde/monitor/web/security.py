"""The headers every answer of the monitor's web side carries (pages, API, feeds, errors)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEMPLATES = Path(__file__).parent / "templates"


def _style_hash() -> str:
    # The page's only inline content is base.html's <style>: allow exactly that, by hash,
    # so that the policy needs no 'unsafe-inline'.
    text = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    found = re.search(r"<style>(.*?)</style>", text, re.DOTALL)
    style = found.group(1) if found else ""
    return "sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{_style_hash()}'; img-src 'self'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
"""No script, no framing, nothing loaded from elsewhere: the page is static HTML. Forms post
only to the monitor itself (the subscription form and its confirm/unsubscribe buttons)."""
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
