"""The journal's settings, as one table: the replayer's pace (``GARDE_REPLAY_*``), the receipt
webhooks (``GARDE_RECEIPT_WEBHOOK*``) and the keys that seal payloads (``GARDE_JOURNAL_KEYS``).

They are read where the gateway starts (``load_journal_settings(environment())``), checked
all together before anything is opened, and handed to what needs them: the replayer gets a
``ReplayPolicy``, ``open_journal`` the webhook settings, ``Keyring.load`` the keys. The
defaults of the replayer's pace live in ``ReplayPolicy``; ``docs/journal.md`` has the table
(``tests/journal/test_settings.py`` fails if a row is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from garde.catalog import lenient_duration, lenient_number
from garde.journal.replayer import ReplayPolicy
from garde.settings import Given, load_settings, merge_problems, setting
from garde.storage import JOURNAL

DOCS = "docs/journal.md"

Seconds = Annotated[float, BeforeValidator(lenient_duration), Field(gt=0)]
NonNegativeSeconds = Annotated[float, BeforeValidator(lenient_duration), Field(ge=0)]
Rate = Annotated[float, BeforeValidator(lenient_number), Field(gt=0)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplaySettings(_Table):
    """The replayer's pace; a setting left unset keeps ``ReplayPolicy``'s default."""

    concurrency: int | None = setting(
        help="entries in flight at once (each from a different ordering key)",
        env="GARDE_REPLAY_CONCURRENCY",
        ge=1,
    )
    rate: Rate | None = setting(
        help="at most this many deliveries per second per service (token bucket)",
        env="GARDE_REPLAY_RATE",
    )
    burst: Rate | None = setting(help="tokens saved up while idle", env="GARDE_REPLAY_BURST")
    start_jitter: NonNegativeSeconds | None = setting(
        help="a service that comes back is replayed after a random delay up to this",
        env="GARDE_REPLAY_JITTER",
    )
    lease_seconds: Seconds | None = setting(
        help="how long a replayer owns an entry it is sending", env="GARDE_REPLAY_LEASE"
    )
    send_timeout: Seconds | None = setting(
        help="a send gives up after this; must stay under the lease",
        env="GARDE_REPLAY_SEND_TIMEOUT",
    )
    backoff: Seconds | None = setting(
        help="first back-off of an entry after the service answered with a failure",
        env="GARDE_REPLAY_BACKOFF",
    )
    backoff_max: Seconds | None = setting(
        help="longest back-off of an entry (it doubles up to this)",
        env="GARDE_REPLAY_BACKOFF_MAX",
    )
    probe_max: Seconds | None = setting(
        help="longest hold of a service that answers nothing before one entry tries it again",
        env="GARDE_REPLAY_PROBE_MAX",
    )

    @model_validator(mode="after")
    def _send_under_lease(self) -> ReplaySettings:
        policy = self.policy()
        if policy.send_timeout >= policy.lease_seconds:
            raise ValueError(
                "GARDE_REPLAY_SEND_TIMEOUT must stay under GARDE_REPLAY_LEASE: a lease must"
                f" not run out while its entry is being sent (send timeout"
                f" {policy.send_timeout:g}s, lease {policy.lease_seconds:g}s)"
            )
        return self

    def policy(self, base: ReplayPolicy | None = None) -> ReplayPolicy:
        """``base`` (the defaults) with what is set here."""
        return replace(base or ReplayPolicy(), **self.model_dump(exclude_none=True))


class WebhookSettings(_Table):
    """Signed callbacks to the care software on each change of a receipt (``webhooks.py``)."""

    url: str | None = setting(
        help="where each change of a receipt's state is POSTed (http:// or https://)",
        env="GARDE_RECEIPT_WEBHOOK",
        pattern=r"^https?://\S+$",
    )
    secret: str | None = setting(
        help="the HMAC-SHA256 key that signs each callback (Garde-Signature)",
        env="GARDE_RECEIPT_WEBHOOK_SECRET",
        secret=True,
        min_length=1,
    )

    @model_validator(mode="after")
    def _signed(self) -> WebhookSettings:
        if self.url and not self.secret:
            raise ValueError(
                "GARDE_RECEIPT_WEBHOOK is set but GARDE_RECEIPT_WEBHOOK_SECRET is not: receipt"
                " webhooks need a secret to sign with"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url)


class StoreSettings(_Table):
    """Where the journal is and what opens it (the command line's ``--journal`` options read
    the same variables: the flag wins over the variable)."""

    location: str = setting(
        JOURNAL.default,
        help="journal URL: sqlite:///PATH, postgresql://..., or none (the gateway)",
        env=JOURNAL.env,
    )
    keys: str | None = setting(
        help="the keyring (one key per line, the last one seals) when no key file is given",
        env="GARDE_JOURNAL_KEYS",
        secret=True,
    )
    key_file: str | None = setting(
        help="keyring file that opens sealed payloads, for `garde journal` commands",
        env="GARDE_JOURNAL_KEY_FILE",
    )
    operator: str | None = setting(
        help="who acts, for the audit log of `garde journal` (default: the login name)",
        env="GARDE_OPERATOR",
    )


TABLES: tuple[type[BaseModel], ...] = (ReplaySettings, WebhookSettings, StoreSettings)
"""The journal's whole table (docs/journal.md, "Settings")."""


class JournalSettings(BaseModel):
    """What the journal takes from the environment, checked (picklable: workers get it)."""

    model_config = ConfigDict(frozen=True)

    replay: ReplaySettings = ReplaySettings()
    webhooks: WebhookSettings = WebhookSettings()
    store: StoreSettings = StoreSettings()

    @property
    def policy(self) -> ReplayPolicy:
        return self.replay.policy()


def load_journal_settings(
    env: Mapping[str, str], *, given: Mapping[str, Given] | None = None
) -> JournalSettings:
    """The journal's settings from ``env`` (``garde.settings.environment()`` in a process
    that starts the gateway); ``given`` are command-line values of ``StoreSettings`` fields.
    ``SettingsInvalid`` lists every bad variable at once."""
    replay, webhooks, store = merge_problems(
        lambda: load_settings(ReplaySettings, env=env, docs=DOCS),
        lambda: load_settings(WebhookSettings, env=env, docs=DOCS),
        lambda: load_settings(StoreSettings, env=env, given=given, docs=DOCS),
    )
    return JournalSettings(replay=replay, webhooks=webhooks, store=store)
