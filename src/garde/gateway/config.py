"""The gateway's own settings (the chain itself is in the catalog).

Read from an optional YAML file (``garde gateway --config``, checked by
``garde.gateway.settings``); command-line options override it. Secrets (the admin token,
credentials) may be given as ``env:NAME`` so the file can be shared without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from garde.errors import UsageError
from garde.gateway.tokens import IdentityConfig
from garde.gateway.upstreams import OutlierSettings

LOOPBACK = ("127.0.0.1", "::1", "localhost")
FAST_PATHS = ("auto", "native", "python", "off")


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8480
    target_group: str | None = None
    """The care providers behind this gateway (a request may say otherwise)."""
    admin_token: str | None = None
    """Bearer token for /_garde/* and /metrics; required when not bound to loopback."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host header values accepted (DNS-rebinding guard); None: loopback names when bound
    to loopback, anything otherwise."""
    max_body: int = 4 * 1024 * 1024
    max_headers: int = 100
    max_header_bytes: int = 16 * 1024
    client_header_timeout: float = 10.0
    """A request's head must arrive within this of its first byte (slowloris guard)."""
    client_idle_timeout: float = 60.0
    """A caller's connection with nothing to do (no request being read or answered), or a
    body that stops arriving for this long, is closed."""
    max_clients: int = 1000
    """Caller connections held at once (per worker); at the cap, a new one closes the one
    that has waited longest without a request in progress (or is closed itself)."""
    connect_timeout: float = 1.0
    min_try_timeout: float = 0.25
    try_timeout_factor: float = 10.0
    """A retry-safe attempt with another data center to go to gives up after
    ``max(min_try_timeout, factor x that data center's usual answer time)``."""
    hedge: bool = True
    """Hedge retry-safe calls: unanswered past the operation's usual answer time on its data
    center (``hedge_quantile``, between ``hedge_min_delay`` and ``hedge_max_delay``), the
    call is sent to the next data center too, and the first answer wins (``hedging.py``)."""
    hedge_quantile: float = 0.95
    hedge_min_delay: float = 0.02
    hedge_max_delay: float = 1.0
    hedge_ratio: float = 0.05
    """Hedges add at most this share of load (plus ``hedge_min_per_second``)."""
    hedge_min_per_second: float = 2.0
    health_checks: bool = True
    health_interval: float | None = None
    """None: each service's probe interval from the catalog."""
    health_timeout: float = 2.0
    monitor_feed: str | None = None
    """Base URL of a garde monitor whose mode feed this gateway follows (docs/monitor.md)."""
    retry_ratio: float = 0.2
    retry_min_per_second: float = 5.0
    retry_after: int = 30
    """Seconds suggested to callers refused while a service is offline."""
    soap_fault_status: int = 503
    """The HTTP status of a SOAP refusal (its Fault carries the procedure): ``503`` (with
    ``Retry-After``, as for REST callers), or ``500``, which the WS-I Basic Profile (R1126)
    gives every SOAP Fault and which JAX-WS (Metro, CXF) and .NET WCF need to read the Fault
    at all: with ``503`` they report a transport error and never show the procedure."""
    cache_entries: int = 10_000
    fast_path: bool | str = "auto"
    """How plain retry-safe pass-through is served: ``native`` by the native data plane
    (``_plane.c``, docs/gateway-data-plane.md), ``python`` without coroutines
    (``fastpath.py``), ``off`` through the general path like everything else (same
    behaviour, slower); ``auto`` (the default) is ``native`` where it was built and can serve
    (HTTP transport, ``xml_validation: when_needed``), else ``python``. ``true`` means
    ``auto`` and ``false`` means ``off``, as before there were several."""
    xml_validation: str = "when_needed"
    """``when_needed`` (the default): a SOAP body is parsed when the gateway needs it
    (operation by body element, keys, tokens, journal, cache) and otherwise checked for
    shape and XXE alone, which lets XML malformed inside a well-shaped envelope through to
    the service's own parser; ``full``: every body is parsed with the hardened parser, so
    malformed XML never reaches a data center (measured: about half again the CPU per
    pass-through request, docs/benchmarks.md)."""
    outlier: OutlierSettings = field(default_factory=OutlierSettings)
    identities: dict[str, IdentityConfig] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> GatewayConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def hosts_allowed(self) -> frozenset[str] | None:
        if self.allowed_hosts is not None:
            return frozenset(h.lower() for h in self.allowed_hosts)
        if self.host in LOOPBACK:
            return frozenset(("127.0.0.1", "localhost", "[::1]", "::1"))
        return None

    def fast_path_mode(self) -> str:
        """``fast_path`` as one of auto, native, python, off."""
        if self.fast_path is True:
            return "auto"
        if self.fast_path is False:
            return "off"
        return str(self.fast_path)

    def check(self) -> None:
        for name, least in (
            ("max_body", 0),
            ("max_headers", 1),
            ("max_header_bytes", 1),
            ("max_clients", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UsageError(
                    f"{name}: expected a whole number of at least {least}, got {value!r}"
                )
        for name in (
            "connect_timeout",
            "health_timeout",
            "min_try_timeout",
            "hedge_min_delay",
            "hedge_max_delay",
            "client_header_timeout",
            "client_idle_timeout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise UsageError(f"{name}: expected a positive duration (250ms, 1s), got {value!r}")
        if self.fast_path_mode() not in FAST_PATHS:
            raise UsageError(
                f"fast_path: expected one of {', '.join(FAST_PATHS)} (or true/false),"
                f" got {self.fast_path!r}"
            )
        if self.fast_path_mode() == "native" and self.xml_validation == "full":
            raise UsageError(
                "fast_path: native cannot serve with xml_validation: full (the native plane"
                " checks an envelope's shape, it does not parse it): choose fast_path: auto"
                " or python, or xml_validation: when_needed"
            )
        if self.xml_validation not in ("when_needed", "full"):
            raise UsageError(
                f"xml_validation: expected when_needed or full, got {self.xml_validation!r}"
            )
        if self.soap_fault_status not in (500, 503):
            raise UsageError(
                f"soap_fault_status: expected 500 or 503, got {self.soap_fault_status!r}"
            )
        if self.host not in LOOPBACK and not self.admin_token:
            raise UsageError(
                f"binding to {self.host} exposes the gateway beyond this machine: set"
                " admin_token in the gateway configuration so /_garde/* and /metrics need it"
            )


def load_config(path: str | Path | None) -> GatewayConfig:
    """Read the gateway's settings file (``garde.gateway.settings``): every problem, with
    its file and line, in one ``SettingsInvalid``; without a file, the defaults."""
    from garde.gateway.settings import load_gateway_settings

    return load_gateway_settings(path)
