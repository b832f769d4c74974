"""The lab: the eHealth chain simulated on loopback, in every data center, breakable on command.

``Lab`` runs the simulated services behind fault proxies with a control API; the ledger records
every business effect so that drills count what was lost or applied twice. See docs/lab.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garde.faces import lazy

if TYPE_CHECKING:
    from garde.lab.faults import OPTIONS, Fault, FaultKind, make_fault
    from garde.lab.ledger import Duplicate, Effect, Ledger
    from garde.lab.proxy import LinkProxy
    from garde.lab.runtime import Lab, lab_in_thread
    from garde.lab.services.base import LabSettings
    from garde.lab.services.identifiers import nihii_check_digits

_FACE = {
    "Duplicate": "garde.lab.ledger",
    "Effect": "garde.lab.ledger",
    "Fault": "garde.lab.faults",
    "FaultKind": "garde.lab.faults",
    "Lab": "garde.lab.runtime",
    "LabSettings": "garde.lab.services.base",
    "Ledger": "garde.lab.ledger",
    "LinkProxy": "garde.lab.proxy",
    "OPTIONS": "garde.lab.faults",
    "lab_in_thread": "garde.lab.runtime",
    "make_fault": "garde.lab.faults",
    "nihii_check_digits": "garde.lab.services.identifiers",
}
"""What other parts (and the CLI) may use, and where it lives. Anything else is inside the
part and free to change. Loaded on first use, so importing the part costs nothing."""

__all__ = [
    "OPTIONS",
    "Duplicate",
    "Effect",
    "Fault",
    "FaultKind",
    "Lab",
    "LabSettings",
    "Ledger",
    "LinkProxy",
    "lab_in_thread",
    "make_fault",
    "nihii_check_digits",
]

__getattr__ = lazy(__name__, _FACE, globals())
