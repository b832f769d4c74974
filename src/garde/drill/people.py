"""The people of a drill: patients with valid NISS, care providers with NIHII numbers.

NISS numbers are built as the National Register does (birth date ``YYMMDD``, a serial, and
97 minus the number modulo 97, with a ``2`` in front for those born from 2000) and checked
with python-stdnum, so a service that validates them accepts them. NIHII numbers are 11
digits whose first digit is the profession (1 physician, 2 pharmacist, 7 hospital), as the
lab checks them (length and check digits, docs/lab.md).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from stdnum.be import nn

from garde.lab import nihii_check_digits

PROFESSION_DIGIT = {"gp": "1", "specialist": "1", "pharmacist": "2", "hospital": "7"}
"""First digit of a NIHII for the target groups the workload plays; others use 1."""


def niss(born: date, serial: int) -> str:
    """A NISS for someone born on ``born`` (serial 1-997), valid by python-stdnum."""
    base = f"{born:%y%m%d}{serial:03d}"
    number = int(("2" if born.year >= 2000 else "") + base)
    value = f"{base}{97 - number % 97:02d}"
    return str(nn.validate(value))


def patients(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct patients born between 1930 and 2020."""
    found: set[str] = set()
    start = date(1930, 1, 1)
    while len(found) < count:
        born = start + timedelta(days=rng.randrange(365 * 90))
        found.add(niss(born, rng.randrange(1, 998)))
    return sorted(found)


def nihii(target_group: str, serial: int) -> str:
    """An 11-digit NIHII for a provider of ``target_group``: profession digit and a 5-digit
    serial, the two check digits the chain computes from those six, a 3-digit
    qualification code."""
    digit = PROFESSION_DIGIT.get(target_group, "1")
    base = f"{digit}{serial % 10**5:05d}"
    qualification = "004" if digit == "1" else "001"
    return f"{base}{nihii_check_digits(base)[0]}{qualification}"


PRESCRIBER = nihii("gp", 99_001)
"""The GP whose morning prescriptions the pharmacies deliver when no site prescribes."""
