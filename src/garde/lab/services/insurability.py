"""MyCareNet insurability (GenericInsurability v1) and member data: who is insured, where, how.

Answers are deterministic per NISS (derived from a digest of it), so a drill can check that a
stale answer served by the gateway equals a fresh one. About one patient in ten is not insured:
the answer says so (``Insurable`` false), as the real service does, rather than faulting.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from garde.lab.schema import f
from garde.lab.services.base import Call, SimulatedService, operation
from garde.lab.services.identifiers import check_niss

MUTUALITIES = ("100", "200", "300", "400", "500", "600", "900")
"""Belgian insurer codes: the five national unions, HZIV/CAAMI, HR Rail."""


@dataclass(frozen=True, slots=True)
class Profile:
    insured: bool
    mutuality: str
    ct1: str
    ct2: str
    """Insurance codes; 111/111 is increased reimbursement (BIM/VT), 110/110 the general regime."""
    third_party_payer: bool


@functools.lru_cache(maxsize=65536)
def profile(niss: str) -> Profile:
    """The insurability of ``niss`` in the lab: stable for a given NISS."""
    h = hashlib.sha256(niss.encode()).digest()
    insured = h[0] % 10 != 0
    increased = h[1] % 4 == 0
    return Profile(
        insured=insured,
        mutuality=MUTUALITIES[h[2] % len(MUTUALITIES)],
        ct1="111" if increased else "110",
        ct2="111" if increased else "110",
        third_party_payer=insured and increased,
    )


_ANSWER = (
    f("Ssin"),
    f("Insurable", "boolean"),
    f("Reason", optional=True),
    f("Mutuality", optional=True),
    f("Ct1", optional=True),
    f("Ct2", optional=True),
    f("ThirdPartyPayer", "boolean", optional=True),
    f("PeriodStart", "date", optional=True),
    f("PeriodEnd", "date", optional=True),
)


class _Answers(SimulatedService):
    """What both MyCareNet faces answer about a patient's insurability."""

    def _answer_for(self, niss: str, when: date) -> dict[str, Any]:
        found = profile(niss)
        if not found.insured:
            return {"Ssin": niss, "Insurable": False, "Reason": "no insurability on this date"}
        return {
            "Ssin": niss,
            "Insurable": True,
            "Mutuality": found.mutuality,
            "Ct1": found.ct1,
            "Ct2": found.ct2,
            "ThirdPartyPayer": found.third_party_payer,
            "PeriodStart": date(when.year, 1, 1),
            "PeriodEnd": date(when.year, 12, 31),
        }


class Insurability(_Answers):
    @operation(
        "getInsurability",
        request=(f("Ssin"), f("RequestDate", "date", optional=True)),
        response=_ANSWER,
    )
    def get_insurability(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        return self._answer_for(niss, call.values.get("RequestDate") or self.today())

    @operation(
        "getInsurabilityAsFlat",
        request=(f("Ssin"), f("RequestDate", "date", optional=True)),
        response=(f("Ssin"), f("Flat")),
    )
    def get_insurability_as_flat(self, call: Call) -> dict[str, Any]:
        """The same answer as getInsurability, as one ``;``-separated record."""
        niss = check_niss(call.values["Ssin"])
        answer = self._answer_for(niss, call.values.get("RequestDate") or self.today())
        names = [field.name for field in _ANSWER[1:]]
        flat = ";".join(_flat(answer.get(name)) for name in names)
        return {"Ssin": niss, "Flat": flat}


def _flat(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return value.isoformat() if isinstance(value, date) else str(value)


class MemberData(_Answers):
    """MyCareNet member data: the same insurability, asked as the insurer's member data."""

    @operation(
        "memberDataConsultation",
        request=(f("Ssin"), f("RequestDate", "date", optional=True)),
        response=_ANSWER,
    )
    def member_data_consultation(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        return self._answer_for(niss, call.values.get("RequestDate") or self.today())
