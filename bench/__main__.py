"""Run every part's benchmark in turn: each is a module of this package with a ``main()``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    failed = 0
    for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__)):
        if module.startswith("_"):
            continue
        print(f"== bench.{module}", flush=True)
        entry = getattr(importlib.import_module(f"bench.{module}"), "main", None)
        if entry is not None and entry() not in (None, 0):
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
