"""The chain as data: data centers, services, operations, target groups, procedures.

No I/O beyond reading YAML, and no import of the gateway, storage or web parts: everything
else depends on the catalog, never the other way round.
"""

from __future__ import annotations

from garde.catalog.coverage import coverage
from garde.catalog.durations import (
    DURATION_FORMAT,
    format_duration,
    lenient_duration,
    lenient_number,
    parse_duration,
)
from garde.catalog.graph import FORMATS, render_graph
from garde.catalog.impact import (
    FailedService,
    Impact,
    ServiceState,
    Status,
    impact,
    parse_failures,
    service_states,
)
from garde.catalog.load import (
    BUILTIN,
    NodeReader,
    Path_,
    load_catalog,
    parse_catalog,
    read_settings,
    unknown_name,
)
from garde.catalog.model import (
    LANGUAGES,
    Async,
    Cacheable,
    Catalog,
    Continuity,
    Deferrable,
    JournaledAnswer,
    KeyRule,
    Kind,
    Operation,
    Service,
    WireProtocol,
)
from garde.faces import renamed

__all__ = [
    "BUILTIN",
    "DURATION_FORMAT",
    "FORMATS",
    "LANGUAGES",
    "Async",
    "Cacheable",
    "Catalog",
    "Continuity",
    "Deferrable",
    "FailedService",
    "Impact",
    "JournaledAnswer",
    "KeyRule",
    "Kind",
    "NodeReader",
    "Operation",
    "Path_",
    "Service",
    "ServiceState",
    "Status",
    "WireProtocol",
    "coverage",
    "format_duration",
    "impact",
    "lenient_duration",
    "lenient_number",
    "load_catalog",
    "parse_catalog",
    "parse_duration",
    "parse_failures",
    "read_settings",
    "render_graph",
    "service_states",
    "unknown_name",
]
"""What other parts may use; the modules inside are free to change."""

__getattr__ = renamed(__name__, {"Failure": "FailedService"}, globals())
