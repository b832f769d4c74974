"""Open a journal from the location given on the command line or in the environment.

``--journal PATH`` (or ``sqlite:///PATH``) is the embedded SQLite journal;
``--journal postgresql://...`` the shared PostgreSQL one, in schema ``garde_journal`` unless
the URL ends with ``?schema=NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from garde.journal.base import JournalStore
from garde.journal.sealing import Keyring
from garde.journal.store import StoreBase
from garde.journal.webhooks import ReceiptWebhooks

DEFAULT_LOCATION = "garde-journal.db"
ENV_LOCATION = "GARDE_JOURNAL"


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def split_schema(location: str) -> tuple[str, str | None]:
    """``postgresql://...?schema=x`` -> (conninfo without it, ``x``)."""
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


async def open_journal(
    location: str, keyring: Keyring, env: Mapping[str, str] | None = None, **options: Any
) -> JournalStore:
    """The backend ``location`` names, opened and ready (schema created if needed), with
    receipt webhooks attached when the environment asks for them."""
    store: StoreBase
    if is_postgres(location):
        from garde.journal.postgres import PostgresJournal

        conninfo, schema = split_schema(location)
        if schema is not None:
            options.setdefault("schema", schema)
        store = await PostgresJournal.open(conninfo, keyring, **options)
    else:
        from garde.journal.sqlite import SqliteJournal

        path = location.removeprefix("sqlite:///")
        store = await SqliteJournal.open(Path(path), keyring, **options)
    hooks = ReceiptWebhooks.from_env(os.environ if env is None else env)
    if hooks is not None:
        store.listeners.append(hooks)
        store.on_close.append(hooks.close)
    return store
