"""What people read, in one place: their language, and times in their zone.

Care providers read French, Dutch or English, and Belgian time: every page and message a
person reads picks its language with ``pick_language`` and writes times with
``local_time`` (Europe/Brussels, with the offset, so a time read at 2 am in October is not
ambiguous). Machines get UTC: ``rfc3339`` in every JSON answer and feed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from garde.catalog import LANGUAGES

__all__ = [
    "LANGUAGES",
    "ZONE",
    "from_rfc3339",
    "local_time",
    "moment",
    "moment_schema",
    "pick_language",
    "rfc3339",
]


def _zone() -> ZoneInfo | None:
    try:
        return ZoneInfo("Europe/Brussels")
    except ZoneInfoNotFoundError:  # no tz database on this machine: UTC, said as such
        return None


ZONE = _zone()


def local_time(moment: float | None, *, seconds: bool = False) -> str:
    """``2026-12-02 09:38 +01:00``: the time a person in Belgium reads ("" for None)."""
    if moment is None:
        return ""
    when = datetime.fromtimestamp(moment, ZONE or UTC)
    offset = when.strftime("%z")
    shown = when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {offset[:3]}:{offset[3:]}"


def rfc3339(moment: float, *, fraction: bool = False) -> str:
    """``2026-12-02T08:38:00Z``: a time for machines, in UTC (``fraction``: with its
    milliseconds, ``2026-12-02T08:38:00.250Z``)."""
    spec = "milliseconds" if fraction else "seconds"
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec=spec).replace("+00:00", "Z")


UNIX = "_unix"
"""Suffix of the deprecated Unix-seconds sibling of a time field (see ``moment``)."""


def moment(name: str, at: float | None) -> dict[str, str | float | None]:
    """A time in a JSON answer: ``{name: "2026-12-02T08:38:00.250Z", name_unix: 1796...}``.

    The field itself is RFC 3339 in UTC, to the millisecond (``null`` stays ``null``). Its
    Unix seconds, what the field was before, stay under ``<name>_unix`` for one release so
    that readers have time to move (deprecated: CHANGELOG.md)."""
    return {name: None if at is None else rfc3339(at, fraction=True), name + UNIX: at}


def moment_schema(name: str, what: str = "", *, nullable: bool = False) -> dict[str, Any]:
    """The OpenAPI properties of ``moment(name, ...)``: the RFC 3339 field and its
    deprecated Unix-seconds sibling."""
    text = f"{what}: " if what else ""
    kinds: list[str] = ["string", "null"] if nullable else ["string"]
    return {
        name: {
            "type": kinds if nullable else "string",
            "format": "date-time",
            "description": f"{text}RFC 3339, UTC, to the millisecond (2026-12-03T07:12:03.250Z)",
        },
        name + UNIX: {
            "type": ["number", "null"] if nullable else "number",
            "deprecated": True,
            "description": f"{text}the same time in Unix seconds; deprecated, kept for one"
            f" release: read {name}",
        },
    }


def from_rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 time (``Z`` or an offset), for garde's own readers."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no offset: RFC 3339 times end in Z or +hh:mm")
    return parsed.timestamp()


def pick_language(query: str | None, accept_language: str | bytes | None) -> str:
    """``?lang=`` wins; then the caller's most preferred of fr/nl/en in Accept-Language
    (q-values honoured, ``q=0`` refused); then English."""
    if query in LANGUAGES:
        return str(query)
    if not accept_language:
        return "en"
    text = (
        accept_language.decode("latin-1") if isinstance(accept_language, bytes) else accept_language
    )
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(text.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else "en"
