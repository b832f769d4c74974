"""The lab: the eHealth chain simulated on loopback, in every data center, breakable on command.

``Lab`` runs the simulated services behind fault proxies with a control API; the ledger records
every business effect so that drills count what was lost or applied twice. See docs/lab.md.
"""

from __future__ import annotations

from garde.lab.faults import Fault, FaultKind, make_fault
from garde.lab.ledger import Duplicate, Effect, Ledger
from garde.lab.runtime import Lab, lab_in_thread
from garde.lab.services.base import LabSettings

__all__ = [
    "Duplicate",
    "Effect",
    "Fault",
    "FaultKind",
    "Lab",
    "LabSettings",
    "Ledger",
    "lab_in_thread",
    "make_fault",
]
