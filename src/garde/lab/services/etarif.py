"""MyCareNet eTarif: the fee, reimbursement and patient share of a nomenclature code.

Deterministic per code and patient; an uninsured patient gets ``NOT_INSURED``. The insurers
call it an aid, not an indispensable resource: it is cacheable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from garde.lab.schema import f
from garde.lab.services.base import BusinessFault, Call, SimulatedService, operation
from garde.lab.services.identifiers import check_nihii, check_niss
from garde.lab.services.insurability import profile


class ETarif(SimulatedService):
    @operation(
        "consultTarif",
        published="tarificationConsultation",
        request=(
            f("ProviderNihii"),
            f("Ssin"),
            f("Nomenclature"),
            f("Date", "date", optional=True),
        ),
        response=(
            f("Ssin"),
            f("Nomenclature"),
            f("Fee", "decimal"),
            f("Reimbursement", "decimal"),
            f("PatientShare", "decimal"),
        ),
    )
    def consult_tarif(self, call: Call) -> dict[str, Any]:
        check_nihii(call.values["ProviderNihii"], "provider")
        niss = check_niss(call.values["Ssin"])
        code = str(call.values["Nomenclature"])
        if not (code.isdigit() and len(code) == 6):
            raise BusinessFault(
                "INVALID_NOMENCLATURE", f"nomenclature code {code!r} must be 6 digits"
            )
        insured = profile(niss)
        if not insured.insured:
            raise BusinessFault("NOT_INSURED", "the patient has no insurability on this date")
        fee = Decimal(2000 + int(code) % 4000) / 100
        share = Decimal("0.10") if insured.ct1 == "111" else Decimal("0.25")
        patient = (fee * share).quantize(Decimal("0.01"))
        return {
            "Ssin": niss,
            "Nomenclature": code,
            "Fee": fee.quantize(Decimal("0.01")),
            "Reimbursement": fee - patient,
            "PatientShare": patient,
        }
