"""The durable journal: writes that may wait, kept until delivered exactly once, in order.

``base`` holds the seam every backend implements and the gateway uses; ``sqlite`` and
``postgres`` are the two backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garde.faces import lazy

if TYPE_CHECKING:
    from garde.journal.base import (
        EntryView,
        Journal,
        JournalStore,
        Receipt,
        RekeyReport,
        State,
        Submission,
    )
    from garde.journal.factory import open_for_operator, open_journal
    from garde.journal.replayer import Replayer, ReplayPolicy
    from garde.journal.sealing import Keyring, new_key_line
    from garde.journal.settings import JournalSettings, load_journal_settings
    from garde.journal.sqlite import SqliteJournal

_FACE = {
    "EntryView": "garde.journal.base",
    "Journal": "garde.journal.base",
    "JournalSettings": "garde.journal.settings",
    "JournalStore": "garde.journal.base",
    "Keyring": "garde.journal.sealing",
    "load_journal_settings": "garde.journal.settings",
    "new_key_line": "garde.journal.sealing",
    "open_for_operator": "garde.journal.factory",
    "open_journal": "garde.journal.factory",
    "Receipt": "garde.journal.base",
    "RekeyReport": "garde.journal.base",
    "Replayer": "garde.journal.replayer",
    "ReplayPolicy": "garde.journal.replayer",
    "SqliteJournal": "garde.journal.sqlite",
    "State": "garde.journal.base",
    "Submission": "garde.journal.base",
}
"""What other parts (and the CLI) may use, and where it lives. Anything else is inside the
part and free to change. Loaded on first use, so importing the part costs nothing."""

__all__ = [
    "EntryView",
    "Journal",
    "JournalSettings",
    "JournalStore",
    "Keyring",
    "Receipt",
    "RekeyReport",
    "ReplayPolicy",
    "Replayer",
    "SqliteJournal",
    "State",
    "Submission",
    "load_journal_settings",
    "new_key_line",
    "open_for_operator",
    "open_journal",
]

__getattr__ = lazy(__name__, _FACE, globals())
