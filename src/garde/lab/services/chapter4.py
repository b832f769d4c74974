"""Chapter IV: ask the insurer's medical advisor for an agreement; the decision comes later.

askChap4MedicalAdvisorAgreement answers a reference at once; the decision (agreed or refused,
deterministic per request) is known only after the lab's ``chapter4_decision_delay``, and
consultChap4MedicalAdvisorAgreement shows it. The real chain serves the two at their own paths
(agreement admission, agreement consultation); here they share one store.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from garde.lab.schema import f, group
from garde.lab.services.base import BusinessFault, Call, SimulatedService, digest, operation
from garde.lab.services.identifiers import INDIVIDUAL, check_nihii, check_niss
from garde.masking import mask

REQUEST_TYPES = ("newrequest", "extension", "cancellation", "closure")


class _Agreements(SimulatedService):
    """The store both Chapter IV services share: admission writes it, consultation reads it."""

    backend = "chapter4"

    def _view(self, record: dict[str, Any]) -> dict[str, Any]:
        decided_at = record["asked"] + self.ctx.settings.chapter4_decision_delay
        view = {
            "Reference": record["reference"],
            "Paragraph": record["paragraph"],
            "RequestType": record["type"],
            "Status": "pending",
        }
        if self.ctx.clock() >= decided_at:
            decided = datetime.fromtimestamp(decided_at, self.ctx.tz())
            view["Status"] = record["decision"]
            view["DecisionDate"] = decided.date()
            if record["decision"] == "agreed":
                view["ValidUntil"] = (decided + timedelta(days=365)).date()
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
        response=(f("Reference"), f("Status")),
    )
    def ask(self, call: Call) -> dict[str, Any]:
        prescriber = check_nihii(call.values["PrescriberNihii"], "prescriber", INDIVIDUAL)
        niss = check_niss(call.values["Ssin"])
        kind = str(call.values["RequestType"])
        paragraph = str(call.values["Paragraph"])
        if kind not in REQUEST_TYPES:
            raise BusinessFault(
                "INVALID_REQUEST_TYPE", f"RequestType {kind!r} is not one of {REQUEST_TYPES}"
            )
        previous = call.values.get("Reference")
        if kind != "newrequest" and (
            previous is None or self.records.get("agreement", previous) is None
        ):
            raise BusinessFault(
                "AGREEMENT_UNKNOWN",
                f"a {kind} needs the Reference of an existing agreement"
                f" ({mask(str(previous or ''))} is unknown)",
            )
        content = digest(prescriber, niss, paragraph, kind, previous or "")
        reference = "C4" + digest(content, self.ctx.clock())[:14].upper()
        decision = "refused" if int(content[:2], 16) % 5 == 0 else "agreed"
        record = {
            "reference": reference,
            "prescriber": prescriber,
            "patient": niss,
            "paragraph": paragraph,
            "type": kind,
            "asked": self.ctx.clock(),
            "decision": decision,
        }
        call.put("agreement", reference, record, owner=niss)
        call.effect("agreement.requested", content, {"reference": reference})
        return {"Reference": reference, "Status": "pending"}


class Chapter4Consultation(_Agreements):
    """Chapter IV agreement consultation: the decisions, by patient or reference."""

    @operation(
        "consultChap4MedicalAdvisorAgreement",
        request=(f("Ssin"), f("Reference", optional=True)),
        response=(
            group(
                "Agreement",
                f("Reference"),
                f("Paragraph"),
                f("RequestType"),
                f("Status"),
                f("DecisionDate", "date", optional=True),
                f("ValidUntil", "date", optional=True),
                many=True,
            ),
        ),
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
