"""A lab in its own process for ``bench.journal``'s replay, as ``garde lab up`` runs it
(uvloop, its database in memory, free loopback ports). Its ledger, read through the control
API afterwards, is the ground truth for "every entry once, in order per key".

    python -m bench._journal_lab

Prints the endpoints and the control API's URL as one JSON line, serves until its standard
input closes. Helper module: ``python -m bench`` skips it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys


def main() -> None:
    import uvloop

    from garde.catalog import load_catalog
    from garde.lab import Lab

    async def serve() -> None:
        lab = Lab(load_catalog("belgium", env={}))
        async with lab:
            print(json.dumps({"endpoints": lab.endpoints, "control": lab.control_url}))
            sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    profile = os.environ.get("BENCH_LAB_PROFILE")
    if not profile:
        uvloop.run(serve())
        return
    import cProfile

    cProfile.runctx("uvloop.run(serve())", globals(), {"uvloop": uvloop, "serve": serve}, profile)


if __name__ == "__main__":
    main()
