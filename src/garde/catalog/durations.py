"""Durations as people write them in a catalog: ``750ms``, ``10s``, ``5m``, ``1h30m``, ``2d``.

A bare number means seconds. Kept separate so every part parses them the same way.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")

DURATION_FORMAT = "a number of seconds or a duration like 750ms, 10s, 5m, 1h30m, 2d"


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raise ``ValueError`` saying the expected format otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_FORMAT}, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _WHOLE.fullmatch(text):
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    raise ValueError(f"expected {DURATION_FORMAT}, got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest readable form of ``seconds`` (``90`` -> ``1m30s``)."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    rest = round(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def lenient_duration(value: object) -> object:
    """For a pydantic ``BeforeValidator``: a written duration or a whole number becomes
    seconds as a float; anything else is left for the schema to refuse with its own words."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(f"expected {DURATION_FORMAT}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def lenient_number(value: object) -> object:
    """For a pydantic ``BeforeValidator``: a whole number where a float is wanted (strict
    models refuse ``2`` for a float otherwise); a boolean stays a boolean, to be refused."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
