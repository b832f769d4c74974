"""Drills: replay the outages of the past on the lab and judge the BCP against its RTO/RPO.

This first step holds the scenario format and its checker (``scenario``, ``checks``) and the
built-in scenarios; the runner and the report come next (docs/drills.md).
"""

from __future__ import annotations

from garde.drill.scenario import CheckedScenario, Scenario, builtin_names, load_scenario

__all__ = ["CheckedScenario", "Scenario", "builtin_names", "load_scenario"]
