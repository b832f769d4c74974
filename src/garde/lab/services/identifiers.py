"""Belgian identifiers as the real services check them, and the faults they give when wrong.

NISS and BIS numbers are checked with python-stdnum (``stdnum.be.nn``, ``stdnum.be.bis``):
date part and the modulo-97 check, with the ``2`` prefix for people born from 2000. NIHII
numbers are checked for format only (11 digits), since no published check-digit rule is cited.
"""

from __future__ import annotations

import functools
import re

from stdnum.be import bis, nn
from stdnum.exceptions import ValidationError

from garde.lab.services.base import BusinessFault
from garde.masking import mask

_NIHII = re.compile(r"^\d{11}$")
_RID = re.compile(r"^[A-Z0-9]{12}$")


@functools.lru_cache(maxsize=65536)
def _valid_niss(value: str) -> str | None:
    # Cached: the same patients come back all day, and stdnum's checks are not free.
    for module in (nn, bis):
        try:
            return str(module.validate(value))
        except ValidationError:
            continue
    return None


def check_niss(value: str, field: str = "patient") -> str:
    """The compact NISS (or BIS number); ``INVALID_NISS`` if it is neither."""
    valid = _valid_niss(value)
    if valid is None:
        raise BusinessFault(
            "INVALID_NISS",
            f"the {field} identifier {mask(value)} is not a valid NISS or BIS number"
            " (11 digits, modulo-97 check)",
        )
    return valid


def check_nihii(value: str, field: str = "care provider") -> str:
    """The NIHII; ``INVALID_NIHII`` unless it is 11 digits."""
    compact = value.replace(".", "").replace("-", "").replace(" ", "")
    if not _NIHII.match(compact):
        raise BusinessFault("INVALID_NIHII", f"the {field} NIHII {mask(value)} must be 11 digits")
    return compact


def check_rid(value: str) -> str:
    """The RID; ``INVALID_RID`` unless it is exactly 12 characters (upper-case letters, digits)."""
    if not _RID.match(value):
        raise BusinessFault(
            "INVALID_RID", f"RID {mask(value)} must be exactly 12 upper-case letters or digits"
        )
    return value
