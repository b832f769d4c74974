"""garde: business continuity for the Belgian eHealth chain.

Parts (one package each): ``catalog`` (the chain as data), ``gateway`` (the continuity proxy),
``journal`` (durable writes that may wait), ``monitor`` and ``lab`` (the simulated chain).
``cli`` wires them together.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
