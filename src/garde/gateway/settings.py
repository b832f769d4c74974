"""The gateway's settings file (``garde gateway --config FILE``), checked entirely at start.

The file is read with the catalog loader's YAML reader and checked with pydantic, so that a
typo, a wrong type or an unset ``env:NAME`` is reported with its file and line, every problem
in one run, before the gateway serves anything. The defaults live in one place,
``GatewayConfig`` (and ``OutlierSettings``): a setting the file leaves out keeps its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from garde.catalog import NodeReader, Path_, lenient_duration, lenient_number, read_settings
from garde.errors import Problem, SettingsInvalid
from garde.gateway.config import GatewayConfig
from garde.gateway.tokens import Credential, IdentityConfig
from garde.gateway.upstreams import OutlierSettings
from garde.settings import environment, resolve_secrets, setting

DOCS = "docs/gateway-contract.md"


Duration = Annotated[float, BeforeValidator(lenient_duration), Field(gt=0)]
Ratio = Annotated[float, BeforeValidator(lenient_number), Field(ge=0, le=1)]
NonNegative = Annotated[float, BeforeValidator(lenient_number), Field(ge=0)]
Positive = Annotated[float, BeforeValidator(lenient_number), Field(gt=0)]


class _File(BaseModel):
    # Strict: YAML reads `port: "8480"` as text and `fast_path: yes` as a boolean; a setting
    # silently converted would not be the one its writer meant.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CredentialFile(_File):
    type: Literal["eid", "keystore"] = "eid"
    secret: str = Field(min_length=1)


class IdentityFile(_File):
    primary: CredentialFile
    fallback: CredentialFile | None = None


class OutlierFile(_File):
    consecutive_failures: int | None = setting(
        help="failures in a row that eject a data center", ge=1
    )
    consecutive_timeouts: int | None = setting(
        help="attempts in a row unanswered within their per-try time that eject it", ge=1
    )
    failure_rate: Ratio | None = setting(
        help="share of failed requests within the window that ejects a data center"
    )
    min_requests: int | None = setting(
        help="requests within the window before the failure rate counts", ge=1
    )
    window: Duration | None = setting(help="how far back the failure rate looks")
    base_ejection: Duration | None = setting(
        help="first ejection of a data center (doubles each time)"
    )
    max_ejection: Duration | None = setting(help="longest ejection of a data center")
    jitter: Ratio | None = setting(help="random share added to or taken from each ejection")
    health_failures: int | None = setting(
        help="health probes failed in a row to mark a data center unhealthy", ge=1
    )
    health_successes: int | None = setting(
        help="health probes passed in a row to mark it healthy again", ge=1
    )


class GatewaySettingsFile(_File):
    """The whole file; every key is optional (``docs/gateway-contract.md`` shows each)."""

    host: str | None = setting(help="address callers connect to (--host overrides)", min_length=1)
    port: int | None = setting(help="port callers connect to (--port overrides)", ge=0, le=65535)
    target_group: str | None = setting(
        help="the care providers behind this gateway (a request's Garde-Target-Group wins)",
        min_length=1,
    )
    admin_token: str | None = setting(
        help="bearer token for /_garde/* and /metrics; required off loopback (env:NAME)",
        min_length=1,
    )
    allowed_hosts: list[str] | None = setting(help="Host values accepted (DNS-rebinding guard)")
    max_body: int | None = setting(help="largest request body, in bytes (413 beyond)", ge=0)
    max_headers: int | None = setting(help="most request headers (431 beyond)", ge=1)
    max_header_bytes: int | None = setting(help="largest request head, in bytes (431 beyond)", ge=1)
    client_header_timeout: Duration | None = setting(
        help="a request's head must arrive within this of its first byte"
    )
    client_idle_timeout: Duration | None = setting(
        help="a connection with nothing to do, or a stalled body, is closed after this"
    )
    max_clients: int | None = setting(help="caller connections per worker", ge=1)
    connect_timeout: Duration | None = setting(
        help="connecting to a data center gives up after this"
    )
    min_try_timeout: Duration | None = setting(
        help="shortest wait before a retry-safe call leaves a silent data center"
    )
    try_timeout_factor: Positive | None = setting(
        help="a retry-safe call leaves a data center after this many times its usual answer time"
    )
    hedge: bool | None = setting(
        help="send a retry-safe call to the next data center too when it is slower than usual"
    )
    hedge_quantile: Annotated[float, BeforeValidator(lenient_number), Field(gt=0, lt=1)] | None = (
        setting(help="the answer-time quantile (per operation and data center) to hedge at")
    )
    hedge_min_delay: Duration | None = setting(help="never hedge sooner than this after sending")
    hedge_max_delay: Duration | None = setting(
        help="hedge at the latest this long after sending (also before the quantile is known)"
    )
    hedge_ratio: Ratio | None = setting(help="hedges add at most this share of load")
    hedge_min_per_second: NonNegative | None = setting(
        help="hedges per second always allowed, whatever the share"
    )
    health_checks: bool | None = setting(
        help="probe each data center's health endpoint (false: live traffic alone decides)"
    )
    health_interval: Duration | None = setting(
        help="how often health probes go (default: the catalog's probe interval)"
    )
    health_timeout: Duration | None = setting(help="how long a health probe may take")
    monitor_feed: str | None = setting(
        help="a garde monitor whose mode feed this gateway follows", pattern=r"^https?://"
    )
    retry_ratio: Ratio | None = setting(
        help="retries add at most this share of load (the retry budget)"
    )
    retry_min_per_second: NonNegative | None = setting(
        help="retries per second always allowed, whatever the budget"
    )
    retry_after: int | None = setting(
        help="seconds suggested in Retry-After to callers refused while a service is offline", ge=0
    )
    soap_fault_status: Literal[500, 503] | None = setting(
        help="HTTP status of a SOAP refusal: 503, or 500 for JAX-WS and .NET clients (WS-I BP)"
    )
    cache_entries: int | None = setting(
        help="answers of cacheable reads kept for stale-but-marked replies", ge=0
    )
    fast_path: bool | Literal["auto", "native", "python", "off"] | None = setting(
        help="who serves plain retry-safe pass-through: auto, native, python, off"
    )
    xml_validation: Literal["when_needed", "full"] | None = setting(
        help="when_needed, or full: parse every SOAP body (slower)"
    )
    outlier: OutlierFile | None = setting(help="when a data center is ejected, and for how long")
    identities: dict[str, IdentityFile] | None = setting(
        help="per identity, primary and optional fallback credentials"
    )


def load_gateway_settings(
    path: str | Path | None, *, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read and check the gateway's settings file; ``SettingsInvalid`` lists every problem.
    Without a file, the defaults."""
    if path is None:
        return GatewayConfig()
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = Problem(file, None, None, "", f"cannot read the gateway settings: {reason}")
        raise SettingsInvalid(file, [problem]) from None
    return parse_gateway_settings(text, file, env=environment() if env is None else env)


def parse_gateway_settings(
    text: str, file: str, *, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Gateway settings from YAML ``text`` (``file`` names it in messages)."""
    env = environment() if env is None else env
    read = read_settings(
        text,
        file,
        GatewaySettingsFile,
        subject=file,
        expected="gateway settings are a YAML mapping (target_group: ..., admin_token: ...)",
        hint=f"start from the example in {DOCS}",
        docs=DOCS,
        allowed=_allowed,
        empty_ok=True,
    )
    data, model, problems, reader = read.data, read.model, read.problems, read.reader
    secrets = _secrets(data, env, reader, problems)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise SettingsInvalid(file, problems)
    assert model is not None
    return _config(model, secrets)


def _allowed(loc: Path_) -> list[str]:
    if not loc:
        return sorted(GatewaySettingsFile.model_fields)
    if loc == ("outlier",):
        return sorted(OutlierFile.model_fields)
    if len(loc) == 2 and loc[0] == "identities":
        return sorted(IdentityFile.model_fields)
    if len(loc) == 3 and loc[0] == "identities":
        return sorted(CredentialFile.model_fields)
    return []


def _secrets(
    data: dict[str, Any], env: Mapping[str, str], reader: NodeReader, problems: list[Problem]
) -> dict[Path_, str]:
    """``env:NAME`` values resolved, by where they are in the file (a problem if unset)."""
    wanted: list[Path_] = [("admin_token",)]
    identities = data.get("identities")
    if isinstance(identities, dict):
        for name, spec in identities.items():
            for role in ("primary", "fallback"):
                if isinstance(spec, dict) and isinstance(spec.get(role), dict):
                    wanted.append(("identities", name, role, "secret"))
    return resolve_secrets(data, wanted, env, reader, problems, when="before starting the gateway")


def _config(model: GatewaySettingsFile, secrets: dict[Path_, str]) -> GatewayConfig:
    values: dict[str, Any] = model.model_dump(exclude_unset=True, exclude={"outlier", "identities"})
    if "admin_token" in values:
        values["admin_token"] = secrets.get(("admin_token",), values["admin_token"])
    if "allowed_hosts" in values and values["allowed_hosts"] is not None:
        values["allowed_hosts"] = tuple(values["allowed_hosts"])
    if model.outlier is not None:
        values["outlier"] = OutlierSettings(**model.outlier.model_dump(exclude_none=True))
    if model.identities is not None:

        def credential(spec: CredentialFile, where: Path_) -> Credential:
            return Credential(spec.type, secrets.get(where, spec.secret))

        values["identities"] = {
            name: IdentityConfig(
                credential(spec.primary, ("identities", name, "primary", "secret")),
                None
                if spec.fallback is None
                else credential(spec.fallback, ("identities", name, "fallback", "secret")),
            )
            for name, spec in model.identities.items()
        }
    return GatewayConfig(**values)
