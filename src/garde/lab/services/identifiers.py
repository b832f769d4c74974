"""Belgian identifiers as the real services check them, and the faults they give when wrong.

NISS and BIS numbers are checked with python-stdnum (``stdnum.be.nn``, ``stdnum.be.bis``):
date part and the modulo-97 check, with the ``2`` prefix for people born from 2000.

NIHII (RIZIV/INAMI) numbers are checked as the KMEHR ``ID-HCPARTY`` rule does: a care
provider's number is 11 digits (6 digits, 2 check digits, 3 of qualification), an
organisation's (a pharmacy, a hospital, an on-call post) 8 digits (6 digits, 2 check digits);
the check digits are 97 minus the first 6 digits modulo 97, or, for older numbers, 89 minus
them modulo 89. RIDs (Recip-e prescription ids) are checked as the Recip-e connector does.
"""

from __future__ import annotations

import functools
import re

from stdnum.be import bis, nn
from stdnum.exceptions import ValidationError

from garde.lab.services.base import BusinessFault
from garde.masking import mask

_NIHII = re.compile(r"^(\d{8}|\d{11})$")
INDIVIDUAL = "individual"
ORGANISATION = "organisation"
NIHII_LENGTHS = {INDIVIDUAL: (11,), ORGANISATION: (8,), None: (8, 11)}


def nihii_check_digits(base: str) -> tuple[str, str]:
    """The two accepted check digits of a NIHII's first 6 digits (modulo 97, older modulo 89)."""
    number = int(base)
    return f"{97 - number % 97:02d}", f"{89 - number % 89:02d}"


RID_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTVWXYZ"
"""The 8 last characters of a RID: digits and capitals without I, O and U."""
_RID = re.compile(rf"^BE[PKN][P0-9][{RID_ALPHABET}]{{8}}$")


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


def check_nihii(value: str, field: str = "care provider", kind: str | None = None) -> str:
    """The compact NIHII; ``INVALID_NIHII`` unless its length and check digits are right.

    ``kind``: ``individual`` (11 digits), ``organisation`` (8 digits), or None for either.
    """
    compact = value.replace(".", "").replace("-", "").replace(" ", "").replace("/", "")
    lengths = NIHII_LENGTHS[kind]
    if not _NIHII.match(compact) or len(compact) not in lengths:
        expected = {INDIVIDUAL: "11 digits", ORGANISATION: "8 digits"}.get(
            kind or "", "11 digits (a care provider) or 8 (an organisation)"
        )
        raise BusinessFault("INVALID_NIHII", f"the {field} NIHII {mask(value)} must be {expected}")
    if compact[6:8] not in nihii_check_digits(compact[:6]):
        raise BusinessFault(
            "INVALID_NIHII",
            f"the {field} NIHII {mask(value)} fails its check digits (digits 7 and 8 are 97"
            " minus the first six modulo 97)",
        )
    return compact


def check_rid(value: str) -> str:
    """The RID; ``INVALID_RID`` unless it has the real format.

    12 characters: ``BE``, the kind (``P``, ``K`` or ``N``), a version (``P`` or a digit),
    then 8 of digits and capitals without I, O and U (as the Recip-e connector checks it).
    """
    if not _RID.match(value):
        raise BusinessFault(
            "INVALID_RID",
            f"RID {mask(value)} is not a RID: 12 characters, BE, P, K or N, P or a digit, then"
            " 8 digits or capitals other than I, O and U (e.g. BEP0AB12CD34)",
        )
    return value
