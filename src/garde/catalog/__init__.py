"""The chain as data: data centers, services, operations, target groups, procedures.

No I/O beyond reading YAML, and no import of the gateway, storage or web parts: everything
else depends on the catalog, never the other way round.
"""

from __future__ import annotations

from garde.catalog.impact import FailedService, Impact, impact, parse_failures
from garde.catalog.load import BUILTIN, load_catalog, parse_catalog
from garde.catalog.model import Catalog, Continuity, Operation, Service
from garde.faces import renamed

__all__ = [
    "BUILTIN",
    "Catalog",
    "Continuity",
    "FailedService",
    "Impact",
    "Operation",
    "Service",
    "impact",
    "load_catalog",
    "parse_catalog",
    "parse_failures",
]

__getattr__ = renamed(__name__, {"Failure": "FailedService"}, globals())
