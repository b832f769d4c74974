"""The gateway's HTTP values: a parsed request, a reply, and what crosses to the upstream.

Headers stay bytes from the parser to the upstream: decoding them all would cost more than
forwarding them, and only the few the gateway reads are looked at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus

from garde.gateway.transport import Headers

# Never forwarded upstream: hop-by-hop headers (RFC 9110 §7.6.1), the ones the transport
# writes itself, and garde's own, which concern the gateway only.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    )
)
# Never passed back to the caller from the upstream answer (the server writes them).
RESPONSE_SKIP = frozenset(
    (b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date", b"server")
)


class Request:
    """One request as the gateway's server parsed it."""

    __slots__ = ("body", "fields", "forward", "headers", "keep_alive", "method", "path", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes = b"",
        keep_alive: bool = True,
        fields: dict[bytes, bytes] | None = None,
        forward: list[bytes] | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.path = target.split(b"?", 1)[0].decode("latin-1")
        self.headers = headers
        # Lower-cased names; the first occurrence wins (duplicates of the ones that matter
        # are refused by the server before we get here). The server builds it while parsing.
        if fields is None:
            fields = {}
            for name, value in headers:
                fields.setdefault(name.lower(), value)
        self.fields = fields
        self.body = body
        self.keep_alive = keep_alive
        self.forward = forward
        """The headers a pass-through sends upstream, rendered (``name: value\\r\\n`` parts);
        built by the server while parsing, None when the request came from elsewhere."""

    def forwarded(self) -> list[bytes]:
        """``forward``, or the same computed from the headers."""
        if self.forward is None:
            parts: list[bytes] = []
            for name, value in self.headers:
                lowered = name.lower()
                if lowered not in HOP_BY_HOP and not lowered.startswith(b"garde-"):
                    parts += (name, b": ", value, b"\r\n")
            self.forward = parts
        return self.forward

    def header(self, name: bytes) -> bytes | None:
        return self.fields.get(name)


class Reply:
    """What the gateway answers; ``stream`` replaces ``body`` for server-sent events."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: Headers | None = None,
        body: bytes = b"",
        stream: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.stream = stream

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))
        _STATUS_LINES[status] = line
    return line


def serialize(reply: Reply, keep_alive: bool) -> bytes:
    parts = [status_line(reply.status)]
    for name, value in reply.headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"Content-Length: %d\r\n" % len(reply.body))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts += (b"\r\n", reply.body)
    return b"".join(parts)


def stream_head(reply: Reply) -> bytes:
    parts = [status_line(reply.status)]
    for name, value in reply.headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"Connection: close\r\n\r\n")
    return b"".join(parts)
