"""Run every benchmark module of this package in turn (``make bench``)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    failed = 0
    for name in names:
        print(f"== bench.{name}", flush=True)
        failed += subprocess.call([sys.executable, "-m", f"bench.{name}"], cwd=here.parent) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
