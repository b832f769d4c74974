"""Drills: replay the outages of the past on the lab and judge the BCP against its RTO/RPO.

The scenario format and its checker (``scenario``, ``checks``) and the built-in scenarios;
the runner (``procs`` and ``files``: garde's processes and the files a gateway reads, also
for the tests and benchmarks that start gateways; ``stack`` starts the lab, the gateways and
the monitor as processes, ``workload`` plays the care software, ``timeline`` the faults,
``truth`` collects the ledger and the rest, ``runner`` ties them) and the report
(``report``, ``html``). See docs/drills.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garde.faces import lazy

if TYPE_CHECKING:
    from garde.drill.files import eid_identity, gateway_files, write_catalog, write_settings
    from garde.drill.html import render
    from garde.drill.procs import GatewayProcess, free_port
    from garde.drill.report import build_report
    from garde.drill.runner import Progress, Run, run_drill
    from garde.drill.scenario import CheckedScenario, Scenario, builtin_names, load_scenario
    from garde.drill.stack import Stack
    from garde.drill.workload import OUTCOMES

_FACE = {
    "CheckedScenario": "garde.drill.scenario",
    "GatewayProcess": "garde.drill.procs",
    "OUTCOMES": "garde.drill.workload",
    "Progress": "garde.drill.runner",
    "Run": "garde.drill.runner",
    "Scenario": "garde.drill.scenario",
    "Stack": "garde.drill.stack",
    "build_report": "garde.drill.report",
    "builtin_names": "garde.drill.scenario",
    "eid_identity": "garde.drill.files",
    "free_port": "garde.drill.procs",
    "gateway_files": "garde.drill.files",
    "load_scenario": "garde.drill.scenario",
    "render": "garde.drill.html",
    "run_drill": "garde.drill.runner",
    "write_catalog": "garde.drill.files",
    "write_settings": "garde.drill.files",
}
"""What other parts (and the CLI) may use, and where it lives. Loaded on first use."""

__all__ = [
    "OUTCOMES",
    "CheckedScenario",
    "GatewayProcess",
    "Progress",
    "Run",
    "Scenario",
    "Stack",
    "build_report",
    "builtin_names",
    "eid_identity",
    "free_port",
    "gateway_files",
    "load_scenario",
    "render",
    "run_drill",
    "write_catalog",
    "write_settings",
]

__getattr__ = lazy(__name__, _FACE, globals())
