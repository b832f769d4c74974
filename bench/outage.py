"""Outage benchmark: journaled writes over HTTP as the journal grows, the path every write
takes when no data center answers.

    python -m bench.outage                          # SQLite, up to 1,000,000 entries
    python -m bench.outage --entries 200000         # a shorter curve
    python -m bench.outage --backend postgres       # the same curve on PostgreSQL
    python -m bench.outage --backend both

One ``garde gateway`` process (one worker, SQLite with WAL and synchronous=FULL, payloads
sealed with AES-GCM, or PostgreSQL with its defaults) in front of data centers that refuse
every connection: each request is tried on the three data centers (refused), then the
write is journaled and answered once durable. wrk (1 thread, 64 connections) posts
``markAsDelivered`` with ``Garde-Identity`` (the gateway has no token: the STS is down too,
so the entry waits with the identity) and a random RID per request (the ordering key: real
RIDs do not arrive in order), without an idempotency key (the gateway makes one), rounds of
``--round`` seconds until the journal holds ``--entries``. Per round: acknowledged writes
per second, the gateway's CPU time per write (utime + stime from /proc: the figure that
moves least with other work on the machine) and the bytes it wrote to disk per write
(``/proc/PID/io``), against the journal's size at the start of the round.

Baselines in the same run, same disk: the journal alone in this process (``accept()``
from 64 concurrent callers, no HTTP, no gateway) on an empty journal, and raw SQLite
batched (the ceiling for a durable write here). The run fails on any non-2xx answer or
socket error, and checks at the end that the journal holds exactly as many entries as
wrk counted answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.gateway import Processes, cpu_seconds, ensure_tools, free_port, tool
from garde.catalog import load_catalog
from garde.drill import eid_identity, gateway_files

RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"
PATH = "/Recip-e/v4/Executor"
IDENTITY = "71715100070"
PG_URL = "postgresql://127.0.0.1:5432/test"

# A random RID per request (12 characters of the RID alphabet after "BEP"), so that the
# ordering key is as scattered as real prescriptions.
WRK_SCRIPT = """
local alphabet = "0123456789ABCDEFGHJKLMNPQRSTVWXYZ"
math.randomseed(os.time())
local head = [[<?xml version="1.0" encoding="utf-8"?>]] ..
  [[<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>]] ..
  [[<r:MarkAsDeliveredRequest xmlns:r="%(ns)s"><r:Rid>BEP]]
local tail = [[</r:Rid></r:MarkAsDeliveredRequest></soap:Body></soap:Envelope>]]
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = [["%(ns)s:markAsDelivered"]]
wrk.headers["Garde-Identity"] = "%(identity)s"
request = function()
  local rid = {}
  for i = 1, 9 do
    local k = math.random(1, #alphabet)
    rid[i] = alphabet:sub(k, k)
  end
  return wrk.format(nil, nil, nil, head .. table.concat(rid) .. tail)
end
"""


def write_files(workdir: Path) -> tuple[Path, Path]:
    """A catalog whose data centers all refuse (nothing listens on their ports)."""
    catalog = load_catalog("belgium", env={})
    closed = [free_port() for _ in range(3)]
    endpoints = {
        sid: {
            f"dc{i + 1}": f"http://127.0.0.1:{port}{s.path_prefix}" for i, port in enumerate(closed)
        }
        for sid, s in catalog.services.items()
    }
    settings = {
        "target_group": "pharmacist",
        "health_interval": "1s",
        "connect_timeout": "1s",
        "identities": eid_identity(IDENTITY),
    }
    return gateway_files(workdir, catalog, settings, endpoints=endpoints)


def disk_writes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def wrk_round(script: Path, port: int, seconds: float) -> tuple[float, int, int]:
    """``(seconds, answers, errors)`` of one saturating wrk round."""
    out = subprocess.run(
        [tool("wrk"), "-t1", "-c64", f"-d{int(seconds)}s", "-s", str(script),
         f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    answers = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket:
        errors += sum(int(x) for x in socket.groups())
    elapsed = float(re.search(r"requests in ([\d.]+)(ms|s|m)", out).group(1))  # type: ignore[union-attr]
    return elapsed, answers, errors


def depth(journal: str) -> int:
    if journal.startswith("sqlite:///"):
        with sqlite3.connect(journal.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    import psycopg

    url, _, schema = journal.partition("?schema=")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".entries').fetchone()
        return int(row[0]) if row else 0


def curve(workdir: Path, backend: str, entries: int, round_seconds: float) -> dict[str, Any]:
    catalog, config = write_files(workdir)
    keys = workdir / "journal.keys"
    subprocess.run(
        [sys.executable, "-m", "garde", "journal", "keygen", "--key-file", str(keys)],
        check=True, capture_output=True,
    )  # fmt: skip
    if backend == "sqlite":
        journal = f"sqlite:///{workdir / 'journal.db'}"
    else:
        schema = f"bench_outage_{os.getpid()}"
        journal = f"{PG_URL}?schema={schema}"
    port = free_port()
    procs = Processes()
    script = workdir / "deliver.lua"
    script.write_text(WRK_SCRIPT % {"ns": RECIPE, "identity": IDENTITY})
    rows: list[dict[str, float]] = []
    answered = 0
    try:
        gateway = procs.start(
            [sys.executable, "-m", "garde", "gateway", "--catalog", str(catalog),
             "--config", str(config), "--journal", journal, "--journal-key-file", str(keys),
             "--port", str(port)],
            port, workdir / f"gateway-{backend}.log",
        )  # fmt: skip
        time.sleep(3)  # health checks see every data center down
        size = 0
        while size < entries:
            user, system = cpu_seconds(gateway.pid)
            written = disk_writes(gateway.pid)
            seconds, answers, errors = wrk_round(script, port, round_seconds)
            if errors:
                raise SystemExit(f"{errors} non-2xx answers or socket errors: see the gateway log")
            user_after, system_after = cpu_seconds(gateway.pid)
            row = {
                "entries_before": size,
                "writes_per_s": answers / seconds,
                "cpu_us": (user_after - user + system_after - system) * 1e6 / max(answers, 1),
                "kb_per_write": (disk_writes(gateway.pid) - written) / 1024 / max(answers, 1),
            }
            rows.append(row)
            answered += answers
            size += answers
            print(
                f"  {backend}: {row['entries_before']:>9,.0f} entries: {row['writes_per_s']:7,.0f}"
                f" writes/s, {row['cpu_us']:5.0f} µs CPU and {row['kb_per_write']:5.1f} KB written"
                " per write",
                flush=True,
            )
    finally:
        procs.stop_all()
    held = depth(journal)
    # wrk does not count the answers in flight when a round ends (at most one per
    # connection): the journal may hold that many more, never fewer.
    if not answered <= held <= answered + 64 * len(rows):
        raise SystemExit(f"the journal holds {held} entries for {answered} acknowledged writes")
    if backend == "postgres":
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{journal.partition("?schema=")[2]}" CASCADE')
    first, last = rows[0], rows[-1]
    return {
        "rows": rows,
        "flatness": last["writes_per_s"] / first["writes_per_s"],
        "cpu_growth": last["cpu_us"] / first["cpu_us"],
        "held": held,
    }


def baselines(workdir: Path) -> dict[str, float]:
    from bench.journal import journal_accepts, raw_batched

    rate, _ = asyncio.run(journal_accepts(workdir / "alone.db", 50_000, 64))
    return {"journal_alone": rate, "raw_batched": raw_batched(workdir, 50_000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--round", type=float, default=10.0, help="seconds per wrk round")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = parser.parse_args()
    ensure_tools()
    python = platform.python_version()
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {python}")
    with tempfile.TemporaryDirectory(prefix="garde-bench-outage-", dir=".") as tmp:
        workdir = Path(tmp)
        base = baselines(workdir)
        print(
            f"baselines (same disk, same run): journal alone {base['journal_alone']:,.0f}"
            f" accepts/s, raw SQLite batched {base['raw_batched']:,.0f} rows/s"
        )
        backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
        for backend in backends:
            result = curve(workdir, backend, args.entries, args.round)
            rates = [r["writes_per_s"] for r in result["rows"]]
            print(
                f"{backend}: {result['held']:,} entries journaled,"
                f" median {statistics.median(rates):,.0f}"
                f" writes/s; last round / first round: {result['flatness']:.2f} by rate,"
                f" {result['cpu_growth']:.2f} by CPU per write; the journal alone"
                f" {base['journal_alone']:,.0f}/s"
            )


if __name__ == "__main__":
    main()
