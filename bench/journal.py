"""Journal benchmark: durable accept rate and replay rate, against this machine's raw SQLite.

    python -m bench.journal                 # accept + replay (100,000 entries)
    python -m bench.journal --replay 20000  # a shorter replay
    python -m bench.journal --crash 100     # plus the kill -9 run (needs the gateway)
    python -m bench.journal --rounds 1 --replay 0 --lab-replay 100000   # the lab replay only

Baselines measured in the same run, on the same disk, with the same settings (WAL,
synchronous=FULL): raw SQLite with one transaction per row (what a naive journal gets: one
fsync per acknowledged write) and raw SQLite batched (the ceiling: no encryption, no
asyncio, no futures); the same for PostgreSQL with raw psycopg. The journal's figure is
acknowledged writes per second: each one resolved only after the commit that holds it.

Everything runs on uvloop, as the gateway and ``garde journal`` do. The replay runs twice:
to an in-process upstream (the journal and replayer alone), and to a real lab in its own
process (``bench/_journal_lab.py``) through the gateway's upstream sender: Recip-e
deliveries and undeliveries alternating per RID, so the lab itself refuses any write out of
order, and the lab's ledger is checked for every entry once, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import platform
import re
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garde.catalog import Catalog
from garde.journal.base import Answer, Delivery, Outcome, Sender, Submission
from garde.journal.replayer import Replayer, ReplayPolicy
from garde.journal.sealing import Keyring
from garde.journal.sqlite import SqliteJournal
from garde.loop import run_loop

if TYPE_CHECKING:
    import psycopg

PAYLOAD = b"<MarkAsDeliveredRequest><Rid>BEP0ABCDEFGH</Rid></MarkAsDeliveredRequest>" * 3


def _raw_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, k TEXT UNIQUE, payload BLOB)")
    return conn


def raw_per_row(directory: Path, rows: int) -> float:
    conn = _raw_db(directory / "raw1.db")
    start = time.perf_counter()
    for n in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (k, payload) VALUES (?, ?)", (f"k{n}", PAYLOAD))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return rows / elapsed


def raw_batched(directory: Path, rows: int, batch: int = 1000) -> float:
    conn = _raw_db(directory / "raw2.db")
    start = time.perf_counter()
    for first in range(0, rows, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO t (k, payload) VALUES (?, ?)",
            ((f"k{n}", PAYLOAD) for n in range(first, min(rows, first + batch))),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return rows / elapsed


def submissions(count: int, keys: int, prefix: str = "") -> list[Submission]:
    return [
        Submission(
            service="recipe-executor",
            operation="markAsDelivered",
            identity="12345678901",
            target_group="pharmacist",
            idempotency_key=f"{prefix}idem-{n}",
            ordering_key=f"RID{n % keys:09d}",
            payload=PAYLOAD,
        )
        for n in range(count)
    ]


def keyring() -> Keyring:
    return Keyring({"bench": os.urandom(32)}, "bench")


async def journal_accepts(path: Path, count: int, clients: int) -> tuple[float, int]:
    """``clients`` concurrent callers, each awaiting its acknowledgement before the next."""
    journal = await SqliteJournal.open(path, keyring())
    work = submissions(count, keys=count // 10)

    async def client(k: int) -> None:
        for submission in work[k::clients]:
            await journal.accept(submission)

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    batches = journal.batches
    await journal.close()
    return count / elapsed, batches


def _process_accepts(path: str, worker: int, count: int, clients: int, key: bytes) -> None:
    async def main() -> None:
        journal = await SqliteJournal.open(Path(path), Keyring({"bench": key}, "bench"))
        work = submissions(count, keys=max(1, count // 10), prefix=f"p{worker}-")

        async def client(k: int) -> None:
            for submission in work[k::clients]:
                await journal.accept(submission)

        await asyncio.gather(*(client(k) for k in range(clients)))
        await journal.close()

    run_loop(main())


def shared_file_accepts(path: Path, processes: int, count: int, clients: int) -> float:
    """``processes`` gateway workers, each with its own writer, sharing one file."""
    import multiprocessing

    key = os.urandom(32)
    run_loop(_create(path, key))
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_process_accepts, args=(str(path), w, count, clients, key))
        for w in range(processes)
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    return processes * count / elapsed


PG_URL = os.environ.get("GARDE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_schema(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    conn.execute(f'CREATE SCHEMA "{name}"')
    conn.execute(
        f'CREATE TABLE "{name}".t (seq BIGSERIAL PRIMARY KEY, k TEXT UNIQUE, payload BYTEA)'
    )


def pg_raw(url: str, rows: int, batch: int) -> float:
    """Raw psycopg on the same server: ``batch`` rows per transaction (1: one per row)."""
    import psycopg

    name = "garde_bench_raw"
    with psycopg.connect(url, autocommit=True) as conn:
        _pg_schema(conn, name)
        insert = f'INSERT INTO "{name}".t (k, payload) VALUES (%s, %s)'
        start = time.perf_counter()
        for first in range(0, rows, batch):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    insert, [(f"k{n}", PAYLOAD) for n in range(first, min(rows, first + batch))]
                )
        elapsed = time.perf_counter() - start
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    return rows / elapsed


async def pg_accepts(url: str, count: int, clients: int) -> float:
    """The PostgreSQL journal: ``clients`` concurrent callers, each acknowledged after the
    commit that holds its entry (accepts waiting together share one multi-row insert)."""
    from garde.journal.postgres import PostgresJournal

    schema = "garde_bench_journal"
    journal = await PostgresJournal.open(url, keyring(), schema=schema)
    await journal.drop()
    await journal.close()
    journal = await PostgresJournal.open(url, keyring(), schema=schema)
    work = submissions(count, keys=max(1, count // 10), prefix="pg-")

    async def client(k: int) -> None:
        for submission in work[k::clients]:
            await journal.accept(submission)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        await journal.drop()
        await journal.close()
    return count / elapsed


async def _create(path: Path, key: bytes) -> None:
    journal = await SqliteJournal.open(path, Keyring({"bench": key}, "bench"))
    await journal.close()


class HealthyUpstream:
    """A service that answers at once and applies each idempotency key once."""

    def __init__(self) -> None:
        self.applied: dict[str, list[str]] = defaultdict(list)
        self.seen: set[str] = set()

    async def send(self, submission: Submission) -> Delivery:
        if submission.idempotency_key not in self.seen:
            self.seen.add(submission.idempotency_key)
            self.applied[submission.ordering_key or ""].append(submission.idempotency_key)
        return Delivery(Outcome.DELIVERED, Answer(200, b"<ok/>"))


async def replay(path: Path, count: int, keys: int, concurrency: int) -> tuple[float, bool]:
    journal = await SqliteJournal.open(path, keyring())
    work = submissions(count, keys, prefix="r")
    for first in range(0, count, 5000):
        await asyncio.gather(*(journal.accept(s) for s in work[first : first + 5000]))
    upstream = HealthyUpstream()
    replayer = Replayer(
        journal,
        upstream,
        lambda service: True,
        lambda s, o, g: "expired",
        policy=ReplayPolicy(concurrency=concurrency, batch=concurrency),
    )
    start = time.perf_counter()
    stats = await replayer.drain()
    elapsed = time.perf_counter() - start
    await journal.close()
    expected: dict[str, list[str]] = defaultdict(list)
    for s in work:
        expected[s.ordering_key or ""].append(s.idempotency_key)
    in_order = stats.delivered == count and upstream.applied == expected
    return count / elapsed, in_order


PRESCRIBER = "10012378004"
PHARMACIST = "20012385001"


def _niss(n: int) -> str:
    """The ``n``-th of a run of valid NISS numbers (modulo-97 check), one per patient."""
    base = f"{850101 + n // 900:06d}{n % 900 + 1:03d}"
    return f"{base}{97 - int(base) % 97:02d}"


def _soap(catalog: Catalog, service_id: str, operation_id: str, fields: dict[str, str]) -> bytes:
    from lxml import etree

    from garde import soap

    service = catalog.services[service_id]
    element = service.body_element_of(service.operations[operation_id])
    assert element is not None
    namespace = etree.QName(element).namespace or ""
    root = etree.Element(element)
    for name, value in fields.items():
        etree.SubElement(root, soap.qn(namespace, name)).text = value
    return soap.build_envelope(root)


def _headers(catalog: Catalog, service_id: str, operation_id: str) -> tuple[tuple[str, str], ...]:
    service = catalog.services[service_id]
    action = service.soap_action_of(service.operations[operation_id]) or ""
    return (("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", action))


async def _prescriptions(catalog: Catalog, sender: Sender, count: int) -> list[str]:
    """``count`` prescriptions created in the lab (through the same sender); their RIDs."""
    from datetime import date

    from garde.lab import kmehr

    headers = _headers(catalog, "recipe-prescriber", "createPrescription")
    rids: list[str] = [""] * count

    async def create(n: int) -> None:
        patient = _niss(n)
        body = _soap(
            catalog,
            "recipe-prescriber",
            "createPrescription",
            {
                "PrescriberNihii": PRESCRIBER,
                "PatientId": patient,
                "Prescription": base64.b64encode(
                    kmehr.prescription(PRESCRIBER, patient, when=date.today())
                ).decode(),
            },
        )
        delivery = await sender.send(
            Submission(
                "recipe-prescriber", "createPrescription", PRESCRIBER, "gp", f"create-{n}",
                None, body, headers,
            )
        )  # fmt: skip
        found = re.search(rb"Rid>([A-Z0-9]{12})<", delivery.answer.body if delivery.answer else b"")
        if delivery.outcome is not Outcome.DELIVERED or found is None:
            raise RuntimeError(f"the lab did not create prescription {n}: {delivery.reason}")
        rids[n] = found.group(1).decode()

    for first in range(0, count, 64):
        await asyncio.gather(*(create(n) for n in range(first, min(count, first + 64))))
    return rids


def _deliveries(
    catalog: Catalog, rids: list[str], count: int
) -> tuple[list[Submission], dict[str, list[str]]]:
    """``count`` pharmacy writes, as the gateway journals them (the business payload without
    a token, the catalog's ordering key: the RID): for each prescription in turn, delivered,
    undelivered, delivered again... so the lab itself refuses any write out of order. Also
    the expected order of idempotency keys per RID."""
    from garde.soap import parse_envelope, without_security

    work: list[Submission] = []
    expected: dict[str, list[str]] = defaultdict(list)
    bodies: dict[tuple[str, str], bytes] = {}
    deadline = time.time() + 7 * 86400  # the catalog's deadline for both operations
    for n in range(count):
        rid = rids[n % len(rids)]
        operation = "markAsDelivered" if (n // len(rids)) % 2 == 0 else "markAsUnDelivered"
        body = bodies.get((rid, operation))
        if body is None:
            fields = {"Rid": rid, "ExecutorNihii": PHARMACIST}
            envelope = parse_envelope(_soap(catalog, "recipe-executor", operation, fields))
            body = bodies[rid, operation] = without_security(envelope)  # as the gateway does
        key = f"lab-{n}"
        work.append(
            Submission(
                service="recipe-executor",
                operation=operation,
                identity=PHARMACIST,
                target_group="pharmacist",
                idempotency_key=key,
                ordering_key=rid,
                payload=body,
                headers=_headers(catalog, "recipe-executor", operation),
                deadline=deadline,
            )
        )
        expected[rid].append(key)
    return work, expected


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def replay_to_lab(directory: Path, count: int, keys: int, concurrency: int) -> dict[str, Any]:
    """Replay ``count`` journaled pharmacy writes to a healthy lab in its own process,
    through the gateway's upstream side (``GatewaySender``: a fresh STS token per identity,
    data-center choice, HTTP through the lab's fault proxies), as ``garde journal replay
    --now`` does; then check the lab's ledger."""
    import json
    import subprocess
    import sys
    import urllib.request

    import yaml

    from garde.catalog import load_catalog
    from garde.gateway.config import load_config
    from garde.gateway.handler import Gateway
    from garde.gateway.replay import journal_replayer
    from garde.gateway.sender import GatewaySender
    from garde.gateway.transport import HttpTransport

    lab = subprocess.Popen(
        [sys.executable, "-m", "bench._journal_lab"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert lab.stdout is not None
        started = json.loads(lab.stdout.readline())
        endpoints, control = started["endpoints"], started["control"]
        catalog = load_catalog("belgium", env={}).with_endpoints(endpoints)
        config_file = directory / "gateway.yaml"
        credentials = {"primary": {"type": "eid", "secret": "1234"}}
        config_file.write_text(
            yaml.safe_dump(
                {
                    "target_group": "pharmacist",
                    "identities": {PRESCRIBER: credentials, PHARMACIST: credentials},
                }
            ),
            encoding="utf-8",
        )
        gateway = Gateway(catalog, HttpTransport(), load_config(config_file), None)
        sender = GatewaySender(gateway)
        rids = await _prescriptions(catalog, sender, keys)
        work, expected = _deliveries(catalog, rids, count)
        journal = await SqliteJournal.open(directory / "lab-replay.db", keyring())
        for first in range(0, count, 5000):
            await asyncio.gather(*(journal.accept(s) for s in work[first : first + 5000]))
        del work  # a gateway does not keep what it journaled in memory; nor does the bench
        replayer = journal_replayer(
            gateway,
            journal,
            ready=lambda service: True,
            policy=ReplayPolicy(concurrency=concurrency, batch=concurrency, honour_backoff=False),
        )
        gc.freeze()  # as `garde journal replay` does before it drains
        lab_cpu, own_cpu = _cpu(lab.pid), time.process_time()
        start = time.perf_counter()
        stats = await replayer.drain()
        elapsed = time.perf_counter() - start
        lab_cpu, own_cpu = _cpu(lab.pid) - lab_cpu, time.process_time() - own_cpu
        gc.unfreeze()
        await journal.close()
        await gateway.close()
        # The lab's ledger, in the order the effects were applied.
        url = f"{control}/ledger?service=recipe-executor"
        with urllib.request.urlopen(url, timeout=300) as answer:
            effects = json.loads(answer.read())["effects"]
    finally:
        if lab.stdin is not None:
            lab.stdin.close()
        lab.wait(timeout=60)
    applied: dict[str, list[str]] = defaultdict(list)
    for effect in effects:
        rid = str(effect["business_key"]).split("#")[0]
        applied[rid].append(effect["idempotency_key"])
    return {
        "rate": count / elapsed,
        "delivered": stats.delivered,
        "conflicts": stats.conflicts,
        "retried": stats.retried,
        "effects": len(effects),
        "in_order": applied == expected,
        "lab_cpu_us": lab_cpu / count * 1e6,
        "replayer_cpu_us": own_cpu / count * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accepts", type=int, default=60_000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--replay", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crash", type=int, default=0, help="kill -9 runs (e.g. 100)")
    parser.add_argument(
        "--postgres",
        default=PG_URL,
        help="PostgreSQL for the shared-journal rows ('' to skip; env GARDE_TEST_POSTGRES)",
    )
    parser.add_argument("--pg-accepts", type=int, default=10_000)
    parser.add_argument(
        "--lab-replay", type=int, default=100_000, help="entries replayed to a lab (0: skip)"
    )
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} cores, {platform.platform()}, Python"
        f" {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    per_row, batched, journal, batches, shared = [], [], [], [], []
    pg_row, pg_batched, pg_journal = [], [], []
    with tempfile.TemporaryDirectory(prefix="garde-bench-", dir=os.getcwd()) as tmp:
        for r in range(args.rounds):
            # Interleaved rounds: a noisy neighbour hits every contender alike.
            directory = Path(tmp) / f"round{r}"
            directory.mkdir()
            per_row.append(raw_per_row(directory, 300))
            batched.append(raw_batched(directory, args.accepts))
            rate, count = run_loop(
                journal_accepts(directory / "journal.db", args.accepts, args.clients)
            )
            journal.append(rate)
            batches.append(count)
            shared.append(
                shared_file_accepts(
                    directory / "shared.db", 2, args.accepts // 2, args.clients // 2
                )
            )
            if args.postgres:
                pg_row.append(pg_raw(args.postgres, 500, 1))
                pg_batched.append(pg_raw(args.postgres, args.pg_accepts, 1000))
                pg_journal.append(
                    run_loop(pg_accepts(args.postgres, args.pg_accepts, args.clients))
                )
        if per_row:  # --rounds 0: only the replays
            print("\n| durable writes on SQLite (WAL, synchronous=FULL) | per second (median) |")
            print("|---|---:|")
            print(f"| raw SQLite, one transaction per row | {statistics.median(per_row):,.0f} |")
            print(f"| raw SQLite, 1,000 rows per transaction | {statistics.median(batched):,.0f} |")
            print(
                f"| garde journal `accept`, {args.clients} concurrent callers, encrypted,"
                f" group commit ({statistics.median(batches):.0f} commits for"
                f" {args.accepts:,} writes) | {statistics.median(journal):,.0f} |"
            )
            print(
                f"| garde journal `accept`, 2 worker processes sharing the file (incl. process"
                f" start) | {statistics.median(shared):,.0f} |"
            )
            if pg_journal:
                print(
                    "\n| durable writes on PostgreSQL (same server, committed) |"
                    " per second (median) |"
                )
                print("|---|---:|")
                print(
                    f"| raw psycopg, one transaction per row | {statistics.median(pg_row):,.0f} |"
                )
                print(
                    "| raw psycopg, 1,000 rows per transaction (executemany) |"
                    f" {statistics.median(pg_batched):,.0f} |"
                )
                print(
                    f"| garde journal `accept` on PostgreSQL, {args.clients} concurrent callers,"
                    f" encrypted, group commit | {statistics.median(pg_journal):,.0f} |"
                )
        print(f"\nCPU load average during the run: {os.getloadavg()}")
        if args.replay:
            rate, in_order = run_loop(
                replay(Path(tmp) / "replay.db", args.replay, args.keys, args.concurrency)
            )
            print(
                f"\nreplay of {args.replay:,} entries ({args.keys:,} ordering keys, concurrency"
                f" {args.concurrency}) to an in-process healthy upstream: {rate:,.0f}/s;"
                f" every entry once, in order per key: {'yes' if in_order else 'NO'}"
            )
        if args.lab_replay:
            lab_dir = Path(tmp) / "lab"
            lab_dir.mkdir()
            found = run_loop(replay_to_lab(lab_dir, args.lab_replay, args.keys, args.concurrency))
            print(
                f"\nreplay of {args.lab_replay:,} entries ({args.keys:,} RIDs, concurrency"
                f" {args.concurrency}) to a healthy lab in its own process, through the"
                f" gateway's sender: {found['rate']:,.0f}/s; delivered {found['delivered']:,},"
                f" conflicts {found['conflicts']}, retried {found['retried']}; ledger effects"
                f" {found['effects']:,}, in order per RID: {'yes' if found['in_order'] else 'NO'};"
                f" CPU per entry: replayer {found['replayer_cpu_us']:.0f} µs, lab"
                f" {found['lab_cpu_us']:.0f} µs"
            )
            print(f"CPU load average after the lab replay: {os.getloadavg()}")
        if args.crash:
            crash(args.crash, Path(tmp))


def crash(kills: int, directory: Path) -> None:
    """A real gateway killed -9 ``kills`` times under load; the lab's ledger is the judge."""
    from tests.journal.crashkit import crash_run

    from garde.catalog import load_catalog
    from garde.lab import lab_in_thread

    catalog = load_catalog("belgium", env={})
    with lab_in_thread(catalog) as lab:
        start = time.perf_counter()
        report = asyncio.run(crash_run(lab, catalog, directory, kills=kills))
        elapsed = time.perf_counter() - start
    print(
        f"\nkill -9 under load: {report.kills} kills in {elapsed:.0f}s, {report.sent:,} writes"
        f" sent, {len(report.acknowledged):,} acknowledged (202), {report.refused:,} not"
        f" acknowledged (gateway restarting); after recovery: {len(report.missing)} acknowledged"
        f" writes missing from the lab's ledger, {len(report.doubled)} applied twice"
    )


if __name__ == "__main__":
    main()
