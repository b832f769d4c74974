"""How a part's face loads its names: on first use, from the module the face's table names.

A part's ``__init__`` lists what other parts may use (``_FACE``: name -> module) and sets
``__getattr__ = lazy(__name__, _FACE, globals())``; importing the part then costs nothing
until a name is used, and type checkers see the names through ``if TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy(part: str, table: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` once and keeps the value."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {part!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
