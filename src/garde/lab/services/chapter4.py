"""Chapter IV: ask the insurer's medical advisor for an agreement, and consult the decisions.

As the real service answers (the KMEHR ``CD-MAA-*`` codes): askChap4MedicalAdvisorAgreement
answers at once with a ``ResponseType`` (``CD-MAA-RESPONSETYPE``):

- ``agreement``: granted now, with its ``DecisionReference``, ``AgreementStartDate`` and
  ``AgreementEndDate``;
- ``refusal``: refused now, with a ``RefusalJustification``;
- ``intreatment``: the medical advisor has it in hand; the decision (agreement or refusal)
  comes later, and only consultChap4MedicalAdvisorAgreement shows it, after the lab's
  ``chapter4_decision_delay``.

Which one is deterministic per request (a digest of prescriber, patient, paragraph, request
type and the previous agreement): about one request in three is ``intreatment``, one in five
refused. ``Status`` (``agreed``, ``refused``, ``pending``) is the lab's first summary of the
same answer, kept for older callers. A request other than ``newrequest`` quotes the
``Reference`` of an agreement of the same patient. The real chain serves the two operations at
their own paths (agreement admission, agreement consultation); here they share one store.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, SimulatedService, digest, operation
from garde.lab.services.identifiers import INDIVIDUAL, check_nihii, check_niss
from garde.masking import mask

REQUEST_TYPES = (
    "newrequest",
    "extension",
    "noncontinuousextension",
    "complimentaryannex",
    "cancellation",
    "closure",
)
"""CD-MAA-REQUESTTYPE."""
AGREEMENT, REFUSAL, IN_TREATMENT = "agreement", "refusal", "intreatment"
"""CD-MAA-RESPONSETYPE."""
STATUS = {AGREEMENT: "agreed", REFUSAL: "refused", IN_TREATMENT: "pending"}
AGREEMENT_DAYS = 365
REFUSAL_JUSTIFICATION = "the medical criteria of the paragraph are not met"

_REQUESTED = (f("Reference"), f("Paragraph"), f("RequestType"))
_DECISION = (
    f("ResponseType"),
    f("Status"),
    f("DecisionReference", optional=True),
    f("DecisionDate", "date", optional=True),
    f("AgreementStartDate", "date", optional=True),
    f("AgreementEndDate", "date", optional=True),
    f("ValidUntil", "date", optional=True),
    f("RefusalJustification", optional=True),
)


class _Agreements(SimulatedService):
    """The store both Chapter IV services share: admission writes it, consultation reads it."""

    backend = "chapter4"

    def _decision(self, record: dict[str, Any]) -> tuple[str, date | None]:
        """The response type as it stands now, and the day it was decided (None: not yet)."""
        asked = record["asked"]
        if record["first"] != IN_TREATMENT:
            return record["first"], datetime.fromtimestamp(asked, self.ctx.tz()).date()
        decided_at = asked + self.ctx.settings.chapter4_decision_delay
        if self.ctx.clock() < decided_at:
            return IN_TREATMENT, None
        return record["final"], datetime.fromtimestamp(decided_at, self.ctx.tz()).date()

    def _view(self, record: dict[str, Any]) -> dict[str, Any]:
        response, decided = self._decision(record)
        view: dict[str, Any] = {
            "Reference": record["reference"],
            "Paragraph": record["paragraph"],
            "RequestType": record["type"],
            "ResponseType": response,
            "Status": STATUS[response],
        }
        if decided is not None:
            view["DecisionReference"] = "D" + record["reference"][2:]
            view["DecisionDate"] = decided
        if response == AGREEMENT and decided is not None:
            end = decided + timedelta(days=AGREEMENT_DAYS)
            view.update(AgreementStartDate=decided, AgreementEndDate=end, ValidUntil=end)
        elif response == REFUSAL:
            view["RefusalJustification"] = REFUSAL_JUSTIFICATION
        return view


class Chapter4(_Agreements):
    """Chapter IV agreement admission: ask the medical advisor."""

    @operation(
        "askChap4MedicalAdvisorAgreement",
        request=(
            f("PrescriberNihii"),
            f("Ssin"),
            f("Paragraph"),
            f("RequestType"),
            f("Reference", optional=True),
        ),
        response=(f("Reference"), *_DECISION),
    )
    def ask(self, call: Call) -> dict[str, Any]:
        prescriber = check_nihii(call.values["PrescriberNihii"], "prescriber", INDIVIDUAL)
        niss = check_niss(call.values["Ssin"])
        kind = str(call.values["RequestType"])
        paragraph = str(call.values["Paragraph"])
        if kind not in REQUEST_TYPES:
            raise BusinessFault(
                "INVALID_REQUEST_TYPE",
                f"RequestType {kind!r} is not one of {REQUEST_TYPES} (CD-MAA-REQUESTTYPE)",
            )
        previous = call.values.get("Reference")
        if kind != "newrequest":
            found = None if previous is None else self.records.get("agreement", previous)
            if found is None or found["patient"] != niss:
                raise BusinessFault(
                    "AGREEMENT_UNKNOWN",
                    f"a {kind} quotes the Reference of an agreement of this patient"
                    f" ({mask(str(previous or ''))} is unknown)",
                )
        content = digest(prescriber, niss, paragraph, kind, previous or "")
        reference = "C4" + digest(content, self.ctx.clock())[:14].upper()
        roll = int(content[:4], 16)
        first = IN_TREATMENT if roll % 3 == 0 else (REFUSAL if roll % 5 == 0 else AGREEMENT)
        if kind in ("cancellation", "closure"):
            first = AGREEMENT  # ending an agreement is acknowledged at once
        record = {
            "reference": reference,
            "prescriber": prescriber,
            "patient": niss,
            "paragraph": paragraph,
            "type": kind,
            "asked": self.ctx.clock(),
            "first": first,
            "final": REFUSAL if roll % 7 == 0 else AGREEMENT,
        }
        call.put("agreement", reference, record, owner=niss)
        call.effect("agreement.requested", content, {"reference": reference, "response": first})
        view = self._view(record)
        del view["Paragraph"], view["RequestType"]
        return view


class Chapter4Consultation(_Agreements):
    """Chapter IV agreement consultation: the decisions, by patient or reference."""

    @operation(
        "consultChap4MedicalAdvisorAgreement",
        request=(f("Ssin"), f("Reference", optional=True)),
        response=(group("Agreement", *_REQUESTED, *_DECISION, many=True),),
    )
    def consult(self, call: Call) -> dict[str, Any]:
        niss = check_niss(call.values["Ssin"])
        reference = call.values.get("Reference")
        records = self.records.by_owner("agreement", niss)
        if reference is not None:
            records = [r for r in records if r["reference"] == reference]
            if not records:
                raise BusinessFault("AGREEMENT_UNKNOWN", f"no agreement {mask(reference)}")
        return {"Agreement": [self._view(r) for r in records]}
