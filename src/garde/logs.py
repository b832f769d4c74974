"""Logging for the commands that keep running (gateway, monitor, probe, lab, drill, demo).

One handler on the ``garde`` logger, to stderr, where systemd's journal, a container runtime
or a terminal collects it. ``text`` is one line per event (``WARNING garde.gateway:
recipe-executor dc1 ejected for 5.0 s: refused``), without a timestamp when the journal adds
its own (``JOURNAL_STREAM`` is set by systemd); ``json`` is one JSON object per line, with
``time`` in UTC (RFC 3339), ``level``, ``logger`` and ``message``, for a log shipper.

What is logged never carries an identifier or a payload unmasked (``garde.masking``): the
messages are written that way where they are made.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, Literal

from pythonjsonlogger.json import JsonFormatter

from garde.locales import rfc3339
from garde.settings import environment

LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("text", "json")
Format = Literal["text", "json"]

_HANDLER_NAME = "garde-stderr"
_current: tuple[str, Format] | None = None
"""What ``configure`` was last told, for processes spawned after it (``current``)."""


def current() -> tuple[str, Format] | None:
    """The ``(level, format)`` this process logs with, to hand to a spawned worker."""
    return _current


class _Json(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


def configure(level: str = "info", fmt: Format = "text") -> None:
    """Send garde's log records at ``level`` and above to stderr, as ``fmt`` says. Called
    once per process (again replaces the handler: the multi-worker gateway's workers)."""
    global _current
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    _current = (level, fmt)
    root = logging.getLogger("garde")
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if fmt == "json":
        handler.setFormatter(
            _Json(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    elif environment().get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False  # one line per record, whatever else configured the root logger
