"""Masking of identifiers before they reach a log line, an error message or an export.

Health data is sensitive: a NISS, a NIHII or a RID in a log is a leak. Mask by default; show
in full only where an operator explicitly asked (``--reveal``, which is audited).
"""

from __future__ import annotations

import re

_LONG_DIGITS = re.compile(r"\b\d{9,13}\b")
_RID = re.compile(r"\b[A-Z0-9]{12}\b")


def mask(value: str, keep: int = 2) -> str:
    """``85073003328`` -> ``85*******28``: enough to tell two apart, not to identify anyone."""
    if len(value) <= 2 * keep:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_text(text: str) -> str:
    """Mask every identifier-looking run (9–13 digits, 12-character RIDs) in free text."""
    text = _LONG_DIGITS.sub(lambda m: mask(m.group(0)), text)
    return _RID.sub(lambda m: mask(m.group(0)), text)
