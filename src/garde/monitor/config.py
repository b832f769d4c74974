"""The monitor's settings and the probe agent's, as one table each (name, type, default,
help, environment variable): what ``garde monitor`` and ``garde probe`` take on the command
line or from the environment. The probe settings *file* (``--probes``) is ``settings.py``.

``load_monitor_settings`` and ``load_agent_settings`` check every value together (the
command line's, then the environment's, then the defaults: ``garde.settings``) and report
every bad one at once, named by its flag or variable; ``docs/monitor.md`` has both tables
(``tests/monitor/test_config.py`` fails if a row is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from garde.catalog import lenient_duration
from garde.errors import UsageError
from garde.settings import Given, load_settings, setting
from garde.storage import MONITOR, SqliteUrl, missing_directory, parse_url

if TYPE_CHECKING:
    from garde.monitor.alerts import Channel
    from garde.monitor.store.base import Retention
    from garde.monitor.subscriptions import SubscriptionRules

DOCS = "docs/monitor.md"
DEFAULT_PORT = 8490

Seconds = Annotated[float, BeforeValidator(lenient_duration), Field(gt=0)]


def _forever(value: object) -> object:
    return None if value == "forever" else lenient_duration(value)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


class MonitorSettings(_Table):
    """``garde monitor``: where it keeps its history, where it listens, who may write, where
    alerts go, how long history is kept."""

    db: str = setting(
        MONITOR.default,
        help="sqlite:///PATH or postgresql://USER@HOST/DB[?schema=NAME]",
        env=MONITOR.env,
    )
    host: str = setting("127.0.0.1", help="address to listen on", min_length=1)
    port: int = setting(DEFAULT_PORT, help="port to listen on (0: any free one)", ge=0, le=65535)
    public_url: str | None = setting(
        help="base URL readers reach the monitor at, for the Atom feed's ids and links"
        " (default: the address it listens on)",
        env="GARDE_MONITOR_PUBLIC_URL",
    )
    location: str = setting("local", help="name of this probe site", min_length=1)
    quorum: int | None = setting(
        help="locations that must agree a target is down (default: a majority)", ge=1
    )
    probe_locally: bool = setting(True, help="probe from here (--no-probes: only pushed results)")
    admin_token: str | None = setting(
        help="bearer token for API writes (incident updates, maintenance)",
        env="GARDE_MONITOR_ADMIN_TOKEN",
        secret=True,
        min_length=1,
    )
    location_tokens: dict[str, str] = setting(
        {}, help="probe locations that may push results, NAME=TOKEN each", secret=True
    )
    webhooks: tuple[str, ...] = setting((), help="URLs incident events are POSTed to, signed")
    webhook_secret: str | None = setting(
        help="HMAC-SHA256 key for the Garde-Signature header of webhooks",
        env="GARDE_MONITOR_WEBHOOK_SECRET",
        secret=True,
        min_length=1,
    )
    alerts: tuple[str, ...] = setting((), help="alert channels as apprise URLs (mailto://...)")
    probes: str | None = setting(help="probe settings file (YAML): see 'What is probed'")
    subscriptions: bool = setting(
        True, help="take subscriptions per profession (--no-subscriptions: no form, no sends)"
    )
    subscribe_mail: str | None = setting(
        help="apprise mailto:// or mailtos:// URL of the account that e-mails subscribers"
        " (without it, subscribers give an apprise or webhook URL)",
        env="GARDE_MONITOR_SUBSCRIBE_MAIL",
        secret=True,
        min_length=1,
    )
    subscribe_per_client: int = setting(
        5, help="subscription requests per client address per hour", ge=1
    )
    subscribe_per_address: int = setting(
        3, help="confirmation messages per e-mail address or URL per day", ge=1
    )
    subscribe_pending_max: int = setting(
        1000, help="subscriptions waiting for their confirmation at most", ge=1
    )
    subscribe_confirm_within: Seconds = setting(
        48 * 3600.0, help="how long a confirmation link is valid"
    )
    subscribe_private_hosts: bool = setting(
        False,
        help="let subscribers name hosts on loopback and private networks (labs and tests only)",
    )
    keep_raw: Seconds = setting(3 * 86400.0, help="how long raw probe results are kept")
    keep_minutes: Seconds = setting(30 * 86400.0, help="how long per-minute rows are kept")
    keep_hours: Seconds = setting(400 * 86400.0, help="how long per-hour rows are kept")
    keep_days: Annotated[Annotated[float, Field(gt=0)] | None, BeforeValidator(_forever)] = setting(
        help="how long per-day rows are kept (forever: never dropped)"
    )

    @field_validator("db")
    @classmethod
    def _store_url(cls, value: str) -> str:
        try:
            url = parse_url(value, MONITOR)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        # A mistyped directory is found here, with every other problem (and by --check),
        # rather than when the store opens.
        if isinstance(url, SqliteUrl) and url.path != ":memory:" and not url.file.parent.is_dir():
            raise ValueError(missing_directory("monitor store", url.file))
        return value

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError("expected an http(s) base URL like https://status.example.org/")
        return value.rstrip("/")

    @field_validator("location_tokens", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            found = {}
            for pair in value:
                name, sep, token = str(pair).partition("=")
                if not sep or not name or not token:
                    raise ValueError("each must be NAME=TOKEN")
                found[name] = token
            return found
        return value

    @field_validator("webhooks")
    @classmethod
    def _webhook_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(url) for url in value)

    @field_validator("subscribe_mail")
    @classmethod
    def _mailer(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("mailto", "mailtos"):
            # The value may hold a password: say what is expected, not what was given.
            raise ValueError("expected an apprise mailto:// or mailtos:// URL")
        return value

    @model_validator(mode="after")
    def _signed(self) -> MonitorSettings:
        if self.webhooks and not self.webhook_secret:
            raise ValueError(
                "--webhook needs --webhook-secret (or GARDE_MONITOR_WEBHOOK_SECRET) so"
                " receivers can verify events"
            )
        return self

    def retention(self) -> Retention:
        from garde.monitor.store.base import Retention

        return Retention(
            raw=self.keep_raw, minute=self.keep_minutes, hour=self.keep_hours, day=self.keep_days
        )

    def subscription_rules(self) -> SubscriptionRules:
        from garde.monitor.subscriptions import SubscriptionRules

        return SubscriptionRules(
            per_client=self.subscribe_per_client,
            per_address=self.subscribe_per_address,
            pending_max=self.subscribe_pending_max,
            confirm_within=self.subscribe_confirm_within,
            private_hosts=self.subscribe_private_hosts,
            mail=self.subscribe_mail is not None,
        )

    def channels(self) -> list[Channel]:
        from garde.monitor.alerts import AppriseChannel, WebhookChannel

        found: list[Channel] = [
            WebhookChannel(url, str(self.webhook_secret)) for url in self.webhooks
        ]
        if self.alerts:
            found.append(AppriseChannel(list(self.alerts)))
        return found


class AgentSettings(_Table):
    """``garde probe``: a remote probe location pushing its results to a monitor."""

    location: str = setting(
        ..., help="name of this probe site, as the monitor knows it", min_length=1
    )
    push_url: str = setting(..., help="base URL of the monitor the results are pushed to")
    token: str = setting(
        ...,
        help="this location's token (the monitor's --location-token NAME=TOKEN)",
        env="GARDE_PROBE_TOKEN",
        secret=True,
        min_length=1,
    )
    run_for: Seconds | None = setting(help="stop after this long (default: never)")
    probes: str | None = setting(help="probe settings file (YAML), as for the monitor")

    @field_validator("push_url")
    @classmethod
    def _push_url(cls, value: str) -> str:
        return _http_url(value)


TABLES: tuple[type[BaseModel], ...] = (MonitorSettings, AgentSettings)


def load_monitor_settings(
    env: Mapping[str, str], given: Mapping[str, Given] | None = None
) -> MonitorSettings:
    """``garde monitor``'s settings; ``SettingsInvalid`` names every bad flag or variable."""
    return load_settings(MonitorSettings, env=env, given=given, docs=DOCS)


def load_agent_settings(
    env: Mapping[str, str], given: Mapping[str, Given] | None = None
) -> AgentSettings:
    """``garde probe``'s settings; ``SettingsInvalid`` names every bad flag or variable."""
    return load_settings(AgentSettings, env=env, given=given, docs=DOCS)
