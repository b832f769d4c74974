"""The gateway: a drop-in continuity proxy between the care software and the chain.

``RunningGateway`` assembles it (``runner.py``); ``app.py`` is the server, ``handler.py`` the
request path, ``upstreams.py`` the data centers, ``policy.py`` the continuity decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garde.faces import lazy

if TYPE_CHECKING:
    from garde.gateway.config import GatewayConfig, load_config
    from garde.gateway.replay import ReplayNow, ReplayResult, journal_replayer
    from garde.gateway.runner import RunningGateway
    from garde.gateway.tokens import Credential, IdentityConfig
    from garde.gateway.workers import JournalChoice, Workers, run_gateway

_FACE = {
    "Credential": "garde.gateway.tokens",
    "GatewayConfig": "garde.gateway.config",
    "IdentityConfig": "garde.gateway.tokens",
    "journal_replayer": "garde.gateway.replay",
    "JournalChoice": "garde.gateway.workers",
    "load_config": "garde.gateway.config",
    "ReplayNow": "garde.gateway.replay",
    "ReplayResult": "garde.gateway.replay",
    "run_gateway": "garde.gateway.workers",
    "RunningGateway": "garde.gateway.runner",
    "Workers": "garde.gateway.workers",
}
"""What other parts (and the CLI) may use, and where it lives. Anything else is inside the
part and free to change. Loaded on first use, so importing the part costs nothing."""

__all__ = [
    "Credential",
    "GatewayConfig",
    "IdentityConfig",
    "JournalChoice",
    "ReplayNow",
    "ReplayResult",
    "RunningGateway",
    "Workers",
    "journal_replayer",
    "load_config",
    "run_gateway",
]

__getattr__ = lazy(__name__, _FACE, globals())
