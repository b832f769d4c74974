"""Types of the native data plane (``_plane.c``); see docs/gateway-data-plane.md."""

from collections.abc import Sequence

Handover = tuple[int, bytes, bool]
"""(file descriptor, bytes read from it, whether its first request goes to the general path)."""
Event = tuple[int, int, str, str]
"""(link id, successes on that link before this failure, attempts label, breaker reason)."""
LinkCounts = tuple[int, int, float]
"""(link id, successes since the last drain, moving average of answer time in seconds)."""
RouteCounts = tuple[int, int, tuple[int, ...], float, tuple[int, ...]]
"""(route id, requests forwarded, latency histogram counts (the caller's wait), seconds
summed, the histogram's counts that a hedge answered)."""

class Plane:
    notify_fd: int
    clients: int
    def __init__(
        self,
        listen_fd: int,
        max_body: int,
        max_headers: int,
        max_header_bytes: int,
        connect_timeout: float,
        idle_timeout: float,
        max_idle: int,
        allowed_hosts: Sequence[bytes] | None,
        status_lines: Sequence[bytes],
        buckets: Sequence[float],
        header_timeout: float = ...,
        client_idle_timeout: float = ...,
        max_clients: int = ...,
    ) -> None: ...
    python_clients: int
    """Client connections Python holds (it sets this): they count for ``max_clients``."""
    hedge_credits: int
    """Hedges the plane may send until Python sets it again (the hedge budget's share)."""
    def publish(
        self,
        links: list[tuple[int, int, str, int, bytes, bytes, bytes, str | None]],
        routes: list[
            tuple[int, bytes, bytes | None, int, float, float, float, float, bool, bytes]
            | tuple[
                int, bytes, bytes | None, int, float, float, float, float, bool, bytes, int, float
            ]
        ],
    ) -> None: ...
    def start(self) -> None: ...
    def drain(
        self,
    ) -> tuple[list[Handover], list[Event], list[LinkCounts], list[RouteCounts]]: ...
    def counters(self) -> dict[str, int]: ...
    def stop(self) -> None: ...

MAX_ALLOWED_HOSTS: int
"""The most ``allowed_hosts`` the plane checks; a gateway with more is served by Python."""
TLS: int
"""1 if built with OpenSSL: https data centers can be served natively."""

def read_request(
    data: bytes,
    max_body: int = ...,
    max_headers: int = ...,
    max_header_bytes: int = ...,
    allowed_hosts: Sequence[bytes] | None = ...,
) -> dict[str, object] | bool | None: ...
def read_response(data: bytes) -> dict[str, object] | bool | None: ...
def envelope_refused(data: bytes) -> bool: ...
def first_body_child(data: bytes) -> bytes | None: ...
