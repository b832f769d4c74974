"""What every handler of the monitor's web side reads from a request, bounded and checked.

A problem is an ``HttpProblem`` (status and a sentence saying what to send instead); the
application turns it into ``{"error": ...}`` with that status.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from starlette.requests import Request

from garde.monitor.web.i18n import pick_language

MAX_ADMIN_BODY = 64 << 10
"""Largest body of an operator write (incident update, maintenance window)."""
BODY_TIMEOUT = 30.0
"""Seconds a client has to send a whole body once its headers are in."""


class HttpProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is declared or found to be over ``limit``
    (chunked bodies too) and with 408 when it takes longer than ``BODY_TIMEOUT``."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise HttpProblem(400, "Content-Length must be a number of bytes")
    if declared is not None and int(declared) > limit:
        raise HttpProblem(413, f"body of {declared} bytes over the limit of {limit}: send less")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HttpProblem(413, f"body over the limit of {limit} bytes: send less")
                chunks.append(chunk)
    except TimeoutError:
        raise HttpProblem(408, f"the body took longer than {BODY_TIMEOUT:g} s to arrive") from None
    return b"".join(chunks)


async def body_json(request: Request, limit: int = MAX_ADMIN_BODY) -> dict[str, Any]:
    """The body as a JSON object, read within ``limit``."""
    raw = await read_body(request, limit)
    try:
        data = json.loads(raw)
    except ValueError:
        raise HttpProblem(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise HttpProblem(400, "the body must be a JSON object")
    return data


def path_int(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise HttpProblem(400, f"{name} must be a number") from None


def language(request: Request) -> str:
    """The page's language: ``?lang=`` first, then the browser's ``Accept-Language``."""
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def bearer_ok(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())


def require_admin(request: Request, admin_token: str | None) -> None:
    """401/403 unless the request carries the operator's token (and writes are enabled)."""
    if admin_token is None:
        raise HttpProblem(403, "writes are disabled: start the monitor with --admin-token")
    if not bearer_ok(request, admin_token):
        raise HttpProblem(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")


def push_locations(request: Request, tokens: dict[str, str]) -> set[str]:
    """The probe locations whose token the request carries; 401/403 before any body is read."""
    if not tokens:
        raise HttpProblem(
            403, "pushes are disabled: start the monitor with --location-token NAME=TOKEN"
        )
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer "):
        raise HttpProblem(
            401, "missing bearer token (Authorization: Bearer <the location's token>)"
        )
    # Compare with every token, so the time taken does not tell which name was close.
    found = {
        name
        for name, token in tokens.items()
        if hmac.compare_digest(given[7:].encode(), token.encode())
    }
    if not found:
        raise HttpProblem(
            401, "wrong bearer token: no probe location has it (see --location-token)"
        )
    return found


def bound_url(request: Request) -> str:
    """``http://ADDRESS:PORT`` of the socket the request reached, not what ``Host`` says."""
    server = request.scope.get("server")
    if not server:
        return "http://127.0.0.1"
    host, port = str(server[0]), server[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}" if port in (None, 80) else f"http://{host}:{port}"
