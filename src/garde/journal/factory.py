"""Open a journal from the location given on the command line or in the environment.

``--journal PATH`` (or ``sqlite:///PATH``) is the embedded SQLite journal;
``--journal postgresql://...`` the shared PostgreSQL one, in schema ``garde_journal`` unless
the URL says ``?schema=NAME``. The syntax is ``garde.storage``'s, shared with the monitor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from garde.errors import UsageError
from garde.journal.base import JournalStore
from garde.journal.sealing import ENV_KEYS, Keyring
from garde.journal.store import StoreBase
from garde.journal.webhooks import ReceiptWebhooks
from garde.storage import JOURNAL, PostgresUrl, SqliteUrl, StoreUrl, parse_url


async def open_journal(
    location: str | StoreUrl,
    keyring: Keyring,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> JournalStore:
    """The backend ``location`` names, opened and ready (schema created if needed), with
    receipt webhooks attached when the environment asks for them."""
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
    hooks = ReceiptWebhooks.from_env(os.environ if env is None else env)
    if hooks is not None:
        store.listeners.append(hooks)
        store.on_close.append(hooks.close)
    return store


async def open_for_operator(
    location: str,
    key_file: str | None,
    no_encryption: bool,
    need_key: bool,
    env: Mapping[str, str] | None = None,
) -> JournalStore:
    """The gateway's journal, for ``garde journal``: never created (a mistyped path must not
    open an empty journal), and opened with the keys the task needs; listing needs none."""
    env = os.environ if env is None else env
    url = parse_url(location, JOURNAL)
    if isinstance(url, SqliteUrl) and not url.file.exists():
        raise UsageError(
            f"no journal at {url.file}: give --journal (or {JOURNAL.env}) as the gateway has it"
        )
    if key_file or env.get(ENV_KEYS):
        keyring = Keyring.load(key_file, env)
    elif no_encryption:
        keyring = Keyring.clear()
    elif need_key:
        raise UsageError(
            "this needs the journal's keys: give --journal-key-file FILE or set"
            f" {ENV_KEYS} (or --journal-no-encryption if the journal stores payloads in clear)"
        )
    else:
        keyring = Keyring.none()  # sealed fields stay sealed
    return await open_journal(url, keyring, env)
