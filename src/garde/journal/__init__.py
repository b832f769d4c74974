"""The durable journal: writes that may wait, kept until delivered exactly once, in order.

``base`` holds the seam every backend implements and the gateway uses; ``sqlite`` and
``postgres`` are the two backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garde.faces import lazy

if TYPE_CHECKING:
    from garde.journal.base import (
        FINAL,
        UNSETTLED,
        Answer,
        Backlog,
        CallerToken,
        Delivery,
        EntryView,
        Journal,
        JournalStore,
        Outcome,
        Receipt,
        RekeyReport,
        ServiceReady,
        State,
        Submission,
    )
    from garde.journal.factory import open_for_operator, open_journal
    from garde.journal.records import new_idempotency_key
    from garde.journal.replayer import Replayer, ReplayPolicy, describer
    from garde.journal.sealing import ENV_KEYS, Keyring, new_key_line
    from garde.journal.settings import JournalSettings, load_journal_settings
    from garde.journal.sqlite import SqliteJournal

_FACE = {
    "Answer": "garde.journal.base",
    "Backlog": "garde.journal.base",
    "CallerToken": "garde.journal.base",
    "Delivery": "garde.journal.base",
    "ENV_KEYS": "garde.journal.sealing",
    "EntryView": "garde.journal.base",
    "FINAL": "garde.journal.base",
    "Journal": "garde.journal.base",
    "JournalSettings": "garde.journal.settings",
    "JournalStore": "garde.journal.base",
    "Keyring": "garde.journal.sealing",
    "Outcome": "garde.journal.base",
    "load_journal_settings": "garde.journal.settings",
    "new_idempotency_key": "garde.journal.records",
    "new_key_line": "garde.journal.sealing",
    "open_for_operator": "garde.journal.factory",
    "open_journal": "garde.journal.factory",
    "Receipt": "garde.journal.base",
    "RekeyReport": "garde.journal.base",
    "ReplayPolicy": "garde.journal.replayer",
    "Replayer": "garde.journal.replayer",
    "ServiceReady": "garde.journal.base",
    "SqliteJournal": "garde.journal.sqlite",
    "State": "garde.journal.base",
    "Submission": "garde.journal.base",
    "UNSETTLED": "garde.journal.base",
    "describer": "garde.journal.replayer",
}
"""What other parts (and the CLI) may use, and where it lives. Anything else is inside the
part and free to change. Loaded on first use, so importing the part costs nothing."""

__all__ = [
    "ENV_KEYS",
    "FINAL",
    "UNSETTLED",
    "Answer",
    "Backlog",
    "CallerToken",
    "Delivery",
    "EntryView",
    "Journal",
    "JournalSettings",
    "JournalStore",
    "Keyring",
    "Outcome",
    "Receipt",
    "RekeyReport",
    "ReplayPolicy",
    "Replayer",
    "ServiceReady",
    "SqliteJournal",
    "State",
    "Submission",
    "describer",
    "load_journal_settings",
    "new_idempotency_key",
    "new_key_line",
    "open_for_operator",
    "open_journal",
]

__getattr__ = lazy(__name__, _FACE, globals())
