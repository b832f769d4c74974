"""Open a journal from the location given on the command line or in the environment.

``--journal PATH`` (or ``sqlite:///PATH``) is the embedded SQLite journal;
``--journal postgresql://...`` the shared PostgreSQL one, in schema ``garde_journal`` unless
the URL says ``?schema=NAME``. The syntax is ``garde.storage``'s, shared with the monitor.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from garde.errors import UsageError
from garde.journal.base import JournalStore
from garde.journal.sealing import ENV_KEYS, Keyring
from garde.journal.store import StoreBase
from garde.journal.webhooks import ReceiptWebhooks
from garde.storage import JOURNAL, PostgresUrl, SqliteUrl, StoreUrl, parse_url

if TYPE_CHECKING:
    from garde.journal.settings import JournalSettings, WebhookSettings


async def open_journal(
    location: str | StoreUrl,
    keyring: Keyring,
    *,
    webhooks: WebhookSettings | None = None,
    **options: Any,
) -> JournalStore:
    """The backend ``location`` names, opened and ready (schema created if needed), with
    receipt webhooks attached when ``webhooks`` has a URL (``GARDE_RECEIPT_WEBHOOK``)."""
    if "env" in options:  # the signature before garde.journal.settings
        warnings.warn(
            "open_journal(..., env=...) is deprecated: pass"
            " webhooks=load_journal_settings(env).webhooks",
            DeprecationWarning,
            stacklevel=2,
        )
        from garde.journal.settings import load_journal_settings

        webhooks = load_journal_settings(options.pop("env") or {}).webhooks
    url = parse_url(location, JOURNAL) if isinstance(location, str) else location
    store: StoreBase
    if isinstance(url, PostgresUrl):
        from garde.journal.postgres import PostgresJournal

        if url.schema is not None:
            options.setdefault("schema", url.schema)
        store = await PostgresJournal.open(url.conninfo, keyring, **options)
    else:
        from garde.journal.sqlite import SqliteJournal

        store = await SqliteJournal.open(url.file, keyring, **options)
    if webhooks is not None and webhooks.url:
        hooks = ReceiptWebhooks(webhooks.url, (webhooks.secret or "").encode())
        store.listeners.append(hooks)
        store.on_close.append(hooks.close)
    return store


async def open_for_operator(
    location: str,
    key_file: str | None,
    no_encryption: bool,
    need_key: bool,
    settings: JournalSettings | None = None,
) -> JournalStore:
    """The gateway's journal, for ``garde journal``: never created (a mistyped path must not
    open an empty journal), and opened with the keys the task needs; listing needs none.
    ``settings`` give the keys (``GARDE_JOURNAL_KEYS``) and the receipt webhooks."""
    if settings is None:
        from garde.journal.settings import JournalSettings

        settings = JournalSettings()
    keys = settings.store.keys
    url = parse_url(location, JOURNAL)
    if isinstance(url, SqliteUrl) and not url.file.exists():
        raise UsageError(
            f"no journal at {url.file}: give --journal (or {JOURNAL.env}) as the gateway has it"
        )
    if key_file or keys:
        keyring = Keyring.load(key_file, keys)
    elif no_encryption:
        keyring = Keyring.clear()
    elif need_key:
        raise UsageError(
            "this needs the journal's keys: give --journal-key-file FILE or set"
            f" {ENV_KEYS} (or --journal-no-encryption if the journal stores payloads in clear)"
        )
    else:
        keyring = Keyring.none()  # sealed fields stay sealed
    return await open_journal(url, keyring, webhooks=settings.webhooks)
