"""The registry: which simulated service answers for which catalog service id."""

from __future__ import annotations

from garde.lab.services.base import SimulatedService
from garde.lab.services.chapter4 import Chapter4, Chapter4Consultation
from garde.lab.services.eattest import EAttest
from garde.lab.services.efact import EFact
from garde.lab.services.ehbox import EHealthBox, EHealthBoxPublication
from garde.lab.services.etarif import ETarif
from garde.lab.services.etk import EtkDepot
from garde.lab.services.hub import Hub
from garde.lab.services.insurability import Insurability, MemberData
from garde.lab.services.kgss import Kgss
from garde.lab.services.recipe_executor import RecipeExecutor
from garde.lab.services.recipe_prescriber import RecipePrescriber
from garde.lab.services.sts import Sts

SIMULATORS: dict[str, type[SimulatedService]] = {
    "sts": Sts,
    "etk": EtkDepot,
    "kgss": Kgss,
    "recipe-prescriber": RecipePrescriber,
    "recipe-executor": RecipeExecutor,
    "insurability": Insurability,
    "memberdata": MemberData,
    "eattest": EAttest,
    "efact": EFact,
    "etarif": ETarif,
    "chapter4": Chapter4,
    "chapter4-consultation": Chapter4Consultation,
    "hub": Hub,
    "ehbox": EHealthBox,
    "ehbox-publication": EHealthBoxPublication,
}
"""Catalog service id -> simulator. A catalog service without one is not served by the lab."""

__all__ = ["SIMULATORS", "SimulatedService"]
