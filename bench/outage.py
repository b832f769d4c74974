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
import random
import re
import shutil
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


def seed(journal: str, keys: Path, count: int, clients: int = 1000) -> float:
    """Add ``count`` entries to ``journal`` directly (not through HTTP), of the shape the
    gateway journals here: same service, operation and identity, a random RID each, the
    envelope wrk sends, the catalog's deadline. Returns entries per second."""
    from garde.journal import Keyring, Submission, new_idempotency_key, open_journal
    from garde.loop import run_loop

    catalog = load_catalog("belgium", env={})
    service = next(s for s in catalog.services.values() if s.path_prefix in PATH)
    deadline = getattr(service.operations["markAsDelivered"].continuity, "deadline", None)
    seconds = deadline if isinstance(deadline, float) else 86_400.0  # "same_day": about
    headers = (
        ("Content-Type", "text/xml; charset=utf-8"),
        ("SOAPAction", f'"{RECIPE}:markAsDelivered"'),
    )
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTVWXYZ"

    def submission(rng: random.Random) -> Submission:
        rid = "BEP" + "".join(rng.choices(alphabet, k=9))
        payload = (
            '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap='
            '"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><r:MarkAsDeliveredRequest'
            f' xmlns:r="{RECIPE}"><r:Rid>{rid}</r:Rid></r:MarkAsDeliveredRequest></soap:Body>'
            "</soap:Envelope>"
        ).encode()
        return Submission(
            service=service.id, operation="markAsDelivered", identity=IDENTITY,
            target_group="pharmacist", idempotency_key=new_idempotency_key(),
            ordering_key=rid, payload=payload, headers=headers,
            deadline=time.time() + seconds,
        )  # fmt: skip

    async def fill() -> None:
        store = await open_journal(journal, Keyring.load(keys))
        left = [count]

        async def client(k: int) -> None:
            rng = random.Random(k)
            while left[0] > 0:
                left[0] -= 1
                await store.accept(submission(rng))

        try:
            await asyncio.gather(*(client(k) for k in range(clients)))
        finally:
            await store.close()

    start = time.perf_counter()
    run_loop(fill())
    return count / (time.perf_counter() - start)


def baseline_tree(workdir: Path, rev: str) -> Path:
    """The ``src`` of commit ``rev``, exported (not checked out) beside the run, with this
    tree's build of the native data plane (its C source must be the same)."""
    root = Path(__file__).resolve().parent.parent
    target = workdir / f"baseline-{rev}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for built in (root / "src/garde/gateway").glob("_plane*.so"):
        shutil.copy(built, target / "src/garde/gateway" / built.name)
    return target / "src"


def sizes_for(entries: int) -> list[int]:
    """The journal sizes measured at: empty, a tenth, three tenths, all of ``entries``."""
    return sorted({0, entries // 10, entries * 3 // 10, entries})


def curve(
    workdir: Path,
    backend: str,
    entries: int,
    round_seconds: float,
    rounds: int,
    baseline: str | None,
) -> dict[str, Any]:
    catalog, config = write_files(workdir)
    keys = workdir / f"journal-{backend}.keys"
    subprocess.run(
        [sys.executable, "-m", "garde", "journal", "keygen", "--key-file", str(keys)],
        check=True, capture_output=True,
    )  # fmt: skip
    if backend == "sqlite":
        journal = f"sqlite:///{workdir / 'journal.db'}"
    else:
        schema = f"bench_outage_{os.getpid()}"
        journal = f"{PG_URL}?schema={schema}"
    procs = Processes()
    script = workdir / "deliver.lua"
    script.write_text(WRK_SCRIPT % {"ns": RECIPE, "identity": IDENTITY})
    # The gateways share the journal (as gateways sharing a file or a database do) and take
    # turns under load: the same journal size, the same moment of the machine.
    trees: dict[str, Path | None] = {"this tree": None}
    if baseline:
        trees[f"baseline {baseline}"] = baseline_tree(workdir, baseline)
    rows: list[dict[str, Any]] = []
    answered = seeded = 0
    try:
        gateways: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        for name, src in trees.items():
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = str(src)  # ahead of the editable install: that commit
            port = free_port()
            proc = procs.start(
                [sys.executable, "-m", "garde", "gateway", "--catalog", str(catalog),
                 "--config", str(config), "--journal", journal, "--journal-key-file",
                 str(keys), "--port", str(port)],
                port, workdir / f"gateway-{backend}-{len(gateways)}.log", env=env,
            )  # fmt: skip
            gateways[name] = (proc, port)
        time.sleep(3)  # health checks see every data center down
        for target in sizes_for(entries):
            held = seeded + answered
            if target > held:
                rate = seed(journal, keys, target - held)
                seeded += target - held
                print(f"  {backend}: seeded {target - held:,} entries directly ({rate:,.0f}/s)")
            for _ in range(rounds):
                for name, (gateway, port) in gateways.items():
                    rows.append(measure(gateway, port, script, round_seconds, target))
                    rows[-1].update(gateway=name, entries_before=seeded + answered)
                    answered += rows[-1]["answers"]
                    row = rows[-1]
                    print(
                        f"  {backend}, {name}: {row['entries_before']:>9,} entries:"
                        f" {row['writes_per_s']:7,.0f} writes/s, {row['cpu_us']:5.0f} µs CPU"
                        f" and {row['kb_per_write']:5.1f} KB written per write (load average"
                        f" {row['load']:.1f})",
                        flush=True,
                    )
    finally:
        procs.stop_all()
    held = depth(journal)
    # wrk does not count the answers in flight when a round ends (at most one per
    # connection): the journal may hold that many more, never fewer.
    expected = seeded + answered
    if not expected <= held <= expected + 64 * len(rows):
        raise SystemExit(
            f"the journal holds {held} entries for {seeded} seeded and {answered} acknowledged"
        )
    if backend == "postgres":
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{journal.partition("?schema=")[2]}" CASCADE')
    return {"rows": rows, "held": held, "gateways": list(trees)}


def measure(
    gateway: subprocess.Popen[bytes], port: int, script: Path, seconds: float, size: int
) -> dict[str, Any]:
    """One saturating round against ``gateway``: its rate, CPU and disk writes per write."""
    user, system = cpu_seconds(gateway.pid)
    written = disk_writes(gateway.pid)
    elapsed, answers, errors = wrk_round(script, port, seconds)
    if errors:
        raise SystemExit(f"{errors} non-2xx answers or socket errors: see the gateway logs")
    user_after, system_after = cpu_seconds(gateway.pid)
    per = max(answers, 1)
    return {
        "size": size,
        "answers": answers,
        "writes_per_s": answers / elapsed,
        "cpu_us": (user_after - user + system_after - system) * 1e6 / per,
        "kb_per_write": (disk_writes(gateway.pid) - written) / 1024 / per,
        "load": os.getloadavg()[0],
    }


def summary(result: dict[str, Any]) -> dict[str, list[tuple[int, float, float]]]:
    """Per gateway, per journal size: the median rate and CPU per write of its rounds."""
    table: dict[str, list[tuple[int, float, float]]] = {}
    for name in result["gateways"]:
        mine = [r for r in result["rows"] if r["gateway"] == name]
        for size in sorted({r["size"] for r in mine}):
            at = [r for r in mine if r["size"] == size]
            table.setdefault(name, []).append(
                (
                    min(r["entries_before"] for r in at),  # the journal's size as they began
                    statistics.median(r["writes_per_s"] for r in at),
                    statistics.median(r["cpu_us"] for r in at),
                )
            )
    return table


def baselines(workdir: Path) -> dict[str, float]:
    from bench.journal import journal_accepts, raw_batched

    rate, _ = asyncio.run(journal_accepts(workdir / "alone.db", 50_000, 64))
    return {"journal_alone": rate, "raw_batched": raw_batched(workdir, 50_000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--round", type=float, default=10.0, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per gateway and size")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the gateway of git commit REV, side by side on the same journal",
    )
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
            result = curve(workdir, backend, args.entries, args.round, args.rounds, args.baseline)
            print(f"{backend}: {result['held']:,} entries in the journal at the end")
            for name, points in summary(result).items():
                cells = "; ".join(
                    f"{size:,} entries {rate:,.0f}/s at {cpu:.0f} µs" for size, rate, cpu in points
                )
                first, last = points[0], points[-1]
                print(
                    f"  {name}: {cells}; largest / empty: {last[1] / first[1]:.2f} by rate,"
                    f" {last[2] / first[2]:.2f} by CPU per write"
                )


if __name__ == "__main__":
    main()
