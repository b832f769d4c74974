"""How a part's face loads its names: on first use, from the module the face's table names.

A part's ``__init__`` lists what other parts may use (``_FACE``: name -> module) and sets
``__getattr__ = lazy(__name__, _FACE, globals())``; importing the part then costs nothing
until a name is used, and type checkers see the names through ``if TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
import warnings
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


def renamed(part: str, table: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that still answers a name a part renamed (``table``: old
    name -> new name), with a ``DeprecationWarning`` telling the caller the new one."""

    def __getattr__(name: str) -> Any:
        new = table.get(name)
        if new is None:
            raise AttributeError(f"module {part!r} has no attribute {name!r}")
        warnings.warn(
            f"{part}.{name} was renamed {part}.{new}; the old name will go",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new]

    return __getattr__
