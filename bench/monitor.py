"""Monitor benchmarks (``python -m bench.monitor``):

1. probing: N targets (default 5,000) at a 10 s interval against loopback services, the
   monitor pinned to one core (the services on the other): does it keep up (probes/s, how
   late probes start, CPU share)? Baseline, same run: a bare aiohttp loop sending the same
   requests at the same rate (the floor any Python prober pays).
2. status page: 200 targets with a year of hour and day history; time to serve ``/``, against
   ``/healthz`` on the same server (the framework floor).
3. status page at scale (``--only scale``): 5,000 targets with a year of history seeded in
   bulk, a cold monitor process (``serve``): first request, p50/p99 of sequential requests,
   views/s of ``/`` and ``/for/pharmacist`` (wrk, errors checked), nginx serving the same
   page as a static file in the same run.
4. storage: bytes per target at steady state with the default retention (raw 3 days, minute
   30 days, hour 400 days, day for ever) and growth per target-year.

Results go to bench/results/monitor.json; docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


# -- the services probed (a separate process, on the other core) ---------------------------


def serve_targets(port_file: str) -> None:
    """Answer every GET with a small WSDL and every POST with a SOAP answer."""
    from aiohttp import web

    wsdl = b'<?xml version="1.0"?><definitions xmlns="http://schemas.xmlsoap.org/wsdl/"/>'
    answer = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b"<PingResponse><Status>OK</Status></PingResponse></soap:Body></soap:Envelope>"
    )

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            await request.read()
            return web.Response(body=answer, content_type="text/xml")
        return web.Response(body=wsdl, content_type="text/xml")

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        Path(port_file).write_text(str(port))
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def serve_lab(endpoints_file: str) -> None:
    """The lab (every simulated service behind its fault proxy) on loopback, on uvloop."""
    from garde.catalog import load_catalog
    from garde.lab import lab_in_thread

    with lab_in_thread(load_catalog("belgium", env={}), uvloop=True) as lab:
        Path(endpoints_file).write_text(json.dumps(lab.endpoints))
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


@contextlib.contextmanager
def lab_process() -> Iterator[dict[str, dict[str, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "endpoints.json"
        proc = subprocess.Popen([sys.executable, "-m", "bench.monitor", "--serve-lab", str(out)])
        try:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, {1 % (os.cpu_count() or 1)})
            deadline = time.monotonic() + 60
            while not out.exists() or not out.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the lab did not start")
                time.sleep(0.1)
            cpu0 = _cpu_seconds(proc.pid)
            yield json.loads(out.read_text())
            LAB_CPU.append(_cpu_seconds(proc.pid) - cpu0)
        finally:
            proc.terminate()
            proc.wait(20)


LAB_CPU: list[float] = []


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lab_targets(endpoints: dict[str, dict[str, str]], count: int, interval: float) -> list[Any]:
    """``count`` targets cycling over the lab's 31 (service, data center) probes: the real
    SOAP operations with STS tokens, and the WSDL GETs, as the monitor probes the chain."""
    from dataclasses import replace

    from garde.catalog import load_catalog
    from garde.monitor.targets import ProbeSettings, targets_from_catalog

    catalog = load_catalog("belgium", env={}).with_endpoints(endpoints)
    base = targets_from_catalog(catalog, ProbeSettings(interval_override=interval))
    return [replace(base[i % len(base)], id=f"{base[i % len(base)].id}#{i}") for i in range(count)]


@contextlib.contextmanager
def target_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.monitor", "--serve-targets", str(port_file)],
        )
        try:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, {1 % (os.cpu_count() or 1)})
            deadline = time.monotonic() + 15
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError("the target server did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text()}"
        finally:
            proc.terminate()
            proc.wait(10)


def bench_targets(base: str, count: int, interval: float) -> list[Any]:
    from garde.monitor.targets import Assertion, Kind, Target

    targets = []
    for i in range(count):
        dc = f"dc{i % 3 + 1}"
        if i % 2:
            targets.append(
                Target(
                    id=f"bench-{i}@{dc}",
                    service=f"bench-{i}",
                    dc=dc,
                    url=f"{base}/svc/{i}?wsdl",
                    interval=interval,
                    timeout=5,
                    latency_threshold=2.5,
                )
            )
        else:
            targets.append(
                Target(
                    id=f"bench-{i}@{dc}",
                    service=f"bench-{i}",
                    dc=dc,
                    url=f"{base}/svc/{i}",
                    kind=Kind.SOAP,
                    method="POST",
                    body=b"<Ping/>",
                    headers=(("Content-Type", "text/xml"), ("SOAPAction", '"ping"')),
                    assertions=(Assertion(xpath="//Status", equals="OK"),),
                    interval=interval,
                    timeout=5,
                    latency_threshold=2.5,
                )
            )
    return targets


def pin_to_one_core() -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {0})


async def _monitor_phase(
    targets: list[Any], interval: float, duration: float, db: Path
) -> dict[str, Any]:
    from garde.catalog import load_catalog
    from garde.monitor.alerts import Notifier
    from garde.monitor.service import Monitor
    from garde.monitor.store.sqlite import SqliteStore

    count = len(targets)
    monitor = Monitor(
        load_catalog("belgium", env={}),
        SqliteStore(db),
        targets=targets,
        notifier=Notifier(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    marks: dict[str, tuple[float, float, int]] = {}

    def mark(name: str) -> None:
        assert monitor.scheduler is not None
        marks[name] = (time.monotonic(), time.process_time(), monitor.scheduler.stats.completed)

    loop.call_later(interval, mark, "warm")  # the first interval holds the start-up spread
    loop.call_later(duration, mark, "end")
    loop.call_later(duration, stop.set)
    await monitor.run(stop)
    assert monitor.scheduler is not None
    stats = monitor.scheduler.stats
    (w_wall, w_cpu, w_done), (e_wall, e_cpu, e_done) = marks["warm"], marks["end"]
    lags = sorted(stats.lag_samples)
    failed = sum(1 for v in monitor.snapshot.targets.values() if v.status.value == "down")
    latencies = sorted(v.latency for v in monitor.snapshot.targets.values() if v.latency)
    return {
        "targets": count,
        "interval_s": interval,
        "steady_window_s": round(e_wall - w_wall, 1),
        "probes_per_s": round((e_done - w_done) / (e_wall - w_wall), 1),
        "needed_per_s": round(count / interval, 1),
        "cpu_share_of_one_core": round((e_cpu - w_cpu) / (e_wall - w_wall), 3),
        "lag_p50_ms": round(1000 * lags[len(lags) // 2], 1),
        "lag_p99_ms": round(1000 * lags[int(0.99 * (len(lags) - 1))], 1),
        "lag_max_ms_incl_startup": round(1000 * stats.max_lag, 1),
        "overruns": stats.overruns,
        "targets_down_at_end": failed,
        "answer_latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1)
        if latencies
        else None,
    }


async def _baseline_phase(targets: list[Any], interval: float, duration: float) -> dict[str, Any]:
    """The same requests at the same rate from a bare aiohttp loop: no state, no storage.

    (SOAP bodies go without the token the monitor obtains first, so against the lab the
    baseline's answers are security faults: the same work for the client, less for the lab.)
    """
    import aiohttp

    from garde.monitor.targets import Kind, soap_envelope

    count = len(targets)
    rate = count / interval
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one(t: Any) -> None:
            nonlocal done
            body = soap_envelope(t.body.decode()) if t.kind is Kind.SOAP and t.body else t.body
            async with session.request(t.method, t.url, data=body, headers=dict(t.headers)) as r:
                await r.read()
            done += 1

        tasks: set[asyncio.Task[None]] = set()
        start, cpu0 = time.monotonic(), time.process_time()
        sent = 0
        while time.monotonic() - start < duration:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                task = asyncio.create_task(one(targets[sent % count]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        wall, cpu = time.monotonic() - start, time.process_time() - cpu0
    return {"requests_per_s": round(done / wall, 1), "cpu_share_of_one_core": round(cpu / wall, 3)}


def probing(count: int, interval: float, duration: float, against: str) -> dict[str, Any]:
    pin_to_one_core()
    with contextlib.ExitStack() as stack:
        if against == "lab":
            targets = lab_targets(stack.enter_context(lab_process()), count, interval)
        else:
            targets = bench_targets(stack.enter_context(target_server()), count, interval)
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        baseline = asyncio.run(_baseline_phase(targets, interval, min(duration, 30)))
        start = time.monotonic()
        result = asyncio.run(
            _monitor_phase(targets, interval, duration, Path(tmp) / "bench.sqlite")
        )
        wall = time.monotonic() - start
    if LAB_CPU:
        # CPU of the probed side over the whole run (baseline and monitor phases).
        result["lab_cpu_share_of_one_core"] = round(LAB_CPU[-1] / (wall + min(duration, 30)), 3)
    result["against"] = against
    result["baseline_bare_aiohttp"] = baseline
    return result


# -- status page ----------------------------------------------------------------------------


def big_catalog(targets: int) -> Any:
    """The belgium catalog plus copies of three-data-center services up to ``targets``."""
    from garde.catalog import load_catalog

    base = load_catalog("belgium", env={})
    services = dict(base.services)
    three = [s for s in base.services.values() if len(s.endpoints) == 3]
    k = 0
    while sum(len(s.endpoints) for s in services.values()) < targets:
        model = three[k % len(three)]
        sid = f"{model.id}-{k // len(three) + 2}"
        services[sid] = model.model_copy(update={"id": sid, "name": f"{model.name} #{sid}"})
        k += 1
    return base.model_copy(update={"services": services})


def fill_history(store: Any, target_ids: list[str], now: float, days: int) -> None:
    from garde.monitor.store.base import BUCKETS, Aggregate, Resolution

    rng = random.Random(7)
    batch: list[Aggregate] = []

    def row(res: Resolution, tid: str, bucket: int, n: int) -> Aggregate:
        up = n - (rng.random() < 0.01) * rng.randint(1, n)
        hist = [0] * BUCKETS
        hist[3], hist[4], hist[6] = up // 2, up - up // 2 - up // 20, up // 20
        return Aggregate(res, tid, bucket, n, up, 0, 0, up * 0.06, 0.4, hist)

    first_day = Resolution.DAY.bucket(now) - days * 86400
    for tid in target_ids:
        for d in range(days + 1):
            batch.append(row(Resolution.DAY, tid, first_day + d * 86400, 8640))
            for h in range(24):
                start = first_day + d * 86400 + h * 3600
                if start <= now:  # no rows from the future
                    batch.append(row(Resolution.HOUR, tid, start, 360))
        if len(batch) > 50_000:
            store.add_aggregates(batch)
            batch = []
    store.add_aggregates(batch)


def fill_history_bulk(path: Path, target_ids: list[str], now: float, days: int, hours: int) -> None:
    """A year of history for thousands of targets in seconds: the rows are generated by
    SQLite itself (one ``INSERT ... SELECT`` per resolution, in key order), not built one by
    one in Python. Day rows for ``days`` days and hour rows for the last ``hours`` hours, with
    the same shape as ``fill_history``: about 1 % of buckets lose some probes."""
    import sqlite3

    from garde.monitor.store.base import BUCKETS

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TEMP TABLE seed_targets (target TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO seed_targets VALUES (?)", [(t,) for t in target_ids])
    rest = ", ".join(f"h{i}" for i in range(BUCKETS) if i not in (3, 4, 6))
    zeros = ", ".join("0" for i in range(BUCKETS) if i not in (3, 4, 6))
    for resolution, size, first, n in (
        ("d", 86400, int(now // 86400) * 86400 - days * 86400, 8640),
        ("h", 3600, int(now // 3600) * 3600 - hours * 3600, 360),
    ):
        conn.execute(
            f"""INSERT INTO aggregates (resolution, target, bucket, n, up, slow, maint,
                latency_sum, latency_max, observed, h3, h4, h6, {rest})
            WITH RECURSIVE b(start) AS (SELECT ? UNION ALL SELECT start + ? FROM b
                WHERE start + ? <= ?)
            SELECT ?, target, start, ?, up, 0, 0, up * 0.06, 0.4, ?, up / 2, up - up / 2 - up / 20,
                up / 20, {zeros}
            FROM (SELECT start, target, ? - CASE WHEN abs(random()) % 100 = 0
                    THEN 1 + abs(random()) % ? ELSE 0 END AS up
                  FROM b, seed_targets ORDER BY start, target)""",
            (first, size, size, int(now), resolution, n, float(size), n, n),
        )
    conn.commit()
    conn.close()


def status_page(targets: int, requests: int, view_seconds: float = 10.0) -> dict[str, Any]:
    import uvicorn

    from garde.monitor.alerts import Notifier
    from garde.monitor.history import SERVICE_PREFIX
    from garde.monitor.probes import ProbeResult
    from garde.monitor.service import Monitor
    from garde.monitor.store.sqlite import SqliteStore
    from garde.monitor.web.app import create_app

    catalog = big_catalog(targets)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "page.sqlite")
        monitor = Monitor(catalog, store, notifier=Notifier(), probe_locally=False)
        ids = [t.id for t in monitor.targets] + [SERVICE_PREFIX + s for s in catalog.services]
        now = time.time()
        t0 = time.monotonic()
        fill_history(store, ids, now, 365)
        fill_seconds = time.monotonic() - t0
        for tid in monitor.tracker.targets:
            monitor.ingest(ProbeResult(tid, now, not tid.startswith("recipe-executor"), 0.05))
        asyncio.run(monitor.tick())
        size = (Path(tmp) / "page.sqlite").stat().st_size

        app = create_app(monitor)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            # The first request renders; the others (same snapshot) are served as rendered.
            page = _timed_gets(port, "/", requests)
            health = _timed_gets(port, "/healthz", requests)
            views = page_views(port, Path(tmp), view_seconds) if view_seconds else None
            if views is not None:
                # Which path served them: renderings (the rest came from RenderedPages).
                views["renders"] = app.state.site.rendered.renders
        finally:
            server.should_exit = True
            thread.join(10)
        store.close()
    return {
        "targets": len(monitor.targets),
        "history_days": 365,
        "db_mb": round(size / 1e6, 1),
        "fill_seconds": round(fill_seconds, 1),
        "page": page,
        "baseline_healthz": health,
        "page_views": views,
    }


PAGE_HOURS = 35 * 24
"""Hour rows seeded for the 5,000-target round: the page reads 48 of them; the 400 days the
monitor keeps would be 7 GB of hour rows at this scale (day rows: the whole year)."""


def serve_page(db: str, targets: int, port_file: str) -> None:
    """The cold process of the 5,000-target round: a monitor over the seeded database,
    started the way ``garde monitor --no-probes`` starts (``serve``: the pages rendered once
    before it listens), with one round of results (Recip-e executor failing everywhere)."""
    from garde.monitor.alerts import Notifier
    from garde.monitor.probes import ProbeResult
    from garde.monitor.service import Monitor
    from garde.monitor.store.sqlite import SqliteStore
    from garde.monitor.web.app import create_app
    from garde.monitor.web.server import serve

    started = time.monotonic()
    catalog = big_catalog(targets)
    store = SqliteStore(db)
    monitor = Monitor(catalog, store, notifier=Notifier(), probe_locally=False)

    async def main() -> None:
        now = time.time()
        for tid in monitor.tracker.targets:
            monitor.ingest(ProbeResult(tid, now, not tid.startswith("recipe-executor"), 0.05))
        await monitor.tick()
        app = create_app(monitor)

        def listening(port: int) -> None:
            Path(port_file).write_text(
                json.dumps({"port": port, "start_seconds": time.monotonic() - started})
            )

        await serve(monitor, app, "127.0.0.1", 0, on_listening=listening)

    asyncio.run(main())


def status_page_at_scale(targets: int, view_seconds: float) -> dict[str, Any]:
    """Issue 19's target: the status page at ``targets`` targets with a year of history,
    first request in a cold process, p50/p99 of every request, views/s of ``/`` and
    ``/for/pharmacist``, nginx serving the same page as a static file in the same run."""
    from bench.gateway import cpu_seconds, ensure_tools, tool
    from garde.monitor.alerts import Notifier
    from garde.monitor.history import SERVICE_PREFIX
    from garde.monitor.service import Monitor
    from garde.monitor.store.sqlite import SqliteStore

    ensure_tools()
    catalog = big_catalog(targets)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = workdir / "page.sqlite"
        store = SqliteStore(db)
        monitor = Monitor(catalog, store, notifier=Notifier(), probe_locally=False)
        ids = [t.id for t in monitor.targets] + [SERVICE_PREFIX + s for s in catalog.services]
        store.close()
        t0 = time.monotonic()
        fill_history_bulk(db, ids, time.time(), 365, PAGE_HOURS)
        fill_seconds = time.monotonic() - t0
        size = db.stat().st_size
        port_file = workdir / "port.json"
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.monitor", "--serve-page", str(db),
             "--page-targets", str(targets), "--port-file", str(port_file)],
            cwd=Path(__file__).parents[1],
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while not port_file.exists() or not port_file.read_text():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the page monitor did not start")
                time.sleep(0.05)
            started = json.loads(port_file.read_text())
            port = int(started["port"])
            result: dict[str, Any] = {
                "targets": len(monitor.targets),
                "history_days": 365,
                "hour_rows_hours": PAGE_HOURS,
                "db_mb": round(size / 1e6, 1),
                "fill_seconds": round(fill_seconds, 1),
                "start_to_listening_seconds": round(started["start_seconds"], 2),
            }
            paths = ["/", "/for/pharmacist", "/services/insurability?period=90d", "/healthz"]
            result["first_request_ms"] = {path: _one_get(port, path) for path in paths}
            result["sequential"] = {path: _timed_gets(port, path, 30) for path in paths}
            views: dict[str, Any] = {}
            for path in ("/", "/for/pharmacist"):
                before = cpu_seconds(child.pid)
                out = _wrk(tool("wrk"), f"http://127.0.0.1:{port}{path}", view_seconds,
                           "Accept-Encoding: gzip")  # fmt: skip
                after = cpu_seconds(child.pid)
                cpu = (sum(after) - sum(before)) / max(out["requests"], 1)
                views[path] = {**out, "cpu_us_per_view": round(cpu * 1e6, 1)}
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as answer:
                body = answer.read()
            views["/"]["bytes"] = len(body)
            views["nginx_static"] = _nginx_static(workdir, body, view_seconds)
            result["page_views"] = views
        finally:
            child.terminate()
            child.wait(30)
    return result


def _nginx_static(workdir: Path, body: bytes, seconds: float) -> dict[str, Any]:
    """nginx (one worker) serving ``body`` as a static file, precompressed as the monitor
    does (``gzip_static``), to the same wrk round."""
    import gzip

    from bench.gateway import Processes, cpu_seconds, free_port, nginx_conf, tool

    root = workdir / "static"
    root.mkdir()
    (root / "index.html").write_bytes(body)
    (root / "index.html.gz").write_bytes(gzip.compress(body, 6, mtime=0))
    port = free_port()
    server = (
        f"server {{ listen 127.0.0.1:{port} backlog=4096; root {root}; gzip_static on;"
        " location / { default_type 'text/html; charset=utf-8'; } }"
    )
    conf = nginx_conf(workdir, "static", 1, server)
    procs = Processes()
    nginx = procs.start([tool("nginx"), "-c", str(conf)], port, workdir / "nginx.log")
    try:
        before = cpu_seconds(nginx.pid)
        out = _wrk(tool("wrk"), f"http://127.0.0.1:{port}/index.html", seconds,
                   "Accept-Encoding: gzip")  # fmt: skip
        after = cpu_seconds(nginx.pid)
    finally:
        procs.stop_all()
    cpu = (sum(after) - sum(before)) / max(out["requests"], 1)
    return {**out, "cpu_us_per_view": round(cpu * 1e6, 1), "bytes": len(body)}


def _one_get(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - start
    conn.close()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")
    return round(elapsed * 1000, 1)


def page_views(port: int, workdir: Path, seconds: float) -> dict[str, Any]:
    """A national outage's page views: wrk (1 thread, 50 connections) on ``/`` and on
    ``/for/pharmacist`` of this monitor process, then on nginx serving the same page as a
    static file (one worker, the same bytes). Views per second and CPU per view; the run
    fails on any non-2xx answer or socket error."""
    from bench.gateway import (
        Processes,
        cpu_seconds,
        ensure_tools,
        free_port,
        nginx_conf,
        tool,
    )

    ensure_tools()
    result: dict[str, Any] = {}
    for path in ("/", "/for/pharmacist"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            body = answer.read()
        (workdir / ("page" + path.replace("/", "_") + ".html")).write_bytes(body)
        user, system = cpu_seconds(os.getpid())
        out = _wrk(tool("wrk"), f"http://127.0.0.1:{port}{path}", seconds)
        user_after, system_after = cpu_seconds(os.getpid())
        cpu = (user_after - user + system_after - system) / max(out["requests"], 1)
        result[path] = {**out, "cpu_us_per_view": round(cpu * 1e6, 1), "bytes": len(body)}
    # What browsers ask: gzip (the monitor compressed the page once, when it rendered it).
    user, system = cpu_seconds(os.getpid())
    out = _wrk(tool("wrk"), f"http://127.0.0.1:{port}/", seconds, "Accept-Encoding: gzip")
    user_after, system_after = cpu_seconds(os.getpid())
    cpu = (user_after - user + system_after - system) / max(out["requests"], 1)
    result["/ (gzip)"] = {**out, "cpu_us_per_view": round(cpu * 1e6, 1)}
    procs = Processes()
    static_port = free_port()
    root = workdir
    server = (
        f"server {{ listen 127.0.0.1:{static_port} backlog=4096; root {root};"
        " location / { default_type 'text/html; charset=utf-8'; } }"
    )
    conf = nginx_conf(workdir, "static", 1, server)
    nginx = procs.start([tool("nginx"), "-c", str(conf)], static_port, workdir / "nginx.log")
    try:
        user, system = cpu_seconds(nginx.pid)
        out = _wrk(tool("wrk"), f"http://127.0.0.1:{static_port}/page_.html", seconds)
        user_after, system_after = cpu_seconds(nginx.pid)
    finally:
        procs.stop_all()
    cpu = (user_after - user + system_after - system) / max(out["requests"], 1)
    result["nginx_static"] = {**out, "cpu_us_per_view": round(cpu * 1e6, 1)}
    return result


def _wrk(wrk: str, url: str, seconds: float, *headers: str) -> dict[str, float]:
    out = subprocess.run(
        [wrk, "-t1", "-c50", f"-d{int(seconds)}s", "--latency", *(f"-H{h}" for h in headers), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    import re

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(bad.group(1)) if bad else 0) + (
        sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    )
    if errors:
        raise SystemExit(f"{url}: {errors} non-2xx answers or socket errors")
    latency = {
        f"p{q}_ms": _ms(found.group(1))
        for q in (50, 99)
        if (found := re.search(rf"^\s*{q}(?:\.0+)?%\s+([\d.]+[a-z]+)", out, re.MULTILINE))
    }
    return {
        "views_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        **latency,
    }


def _ms(text: str) -> float:
    """wrk's ``812.00us``, ``1.23ms``, ``2.01s`` in milliseconds."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 2)
    return float(text)


def _timed_gets(port: int, path: str, count: int) -> dict[str, Any]:
    times = []
    size = 0
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.perf_counter()
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - start)
        assert response.status == 200, response.status
        size = len(body)
        conn.close()
    times.sort()
    return {
        "requests": count,
        "p50_ms": round(1000 * statistics.median(times), 1),
        "p95_ms": round(1000 * times[int(0.95 * (count - 1))], 1),
        "p99_ms": round(1000 * times[int(0.99 * (count - 1))], 1),
        "max_ms": round(1000 * times[-1], 1),
        "bytes_gzip": size,
    }


# -- storage --------------------------------------------------------------------------------


def storage(targets: int) -> dict[str, Any]:
    """Steady state of ``targets`` probed every 10 s, with the default retention."""
    from garde.monitor.history import Aggregator
    from garde.monitor.probes import ProbeResult
    from garde.monitor.store.base import Resolution, Retention
    from garde.monitor.store.sqlite import SqliteStore

    retention = Retention()
    now = time.time()
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.sqlite"
        store = SqliteStore(path)
        ids = [f"t{i}@dc1" for i in range(targets)]
        # Raw results and minute rows for the windows they are kept; then hour and day rows.
        agg = Aggregator()
        start = now - retention.minute
        raw_from = now - retention.raw
        batch: list[ProbeResult] = []
        at = start
        while at < now:
            for tid in ids:
                r = ProbeResult(tid, at, rng.random() > 0.001, rng.uniform(0.02, 0.2), status=200)
                agg.add(r)
                if at >= raw_from:
                    batch.append(r)
            at += 10
            if len(batch) > 50_000:
                store.add_results(batch)
                batch = []
            if len(agg) > 20_000:
                store.add_aggregates(
                    [a for a in agg.flush(at) if a.resolution is Resolution.MINUTE]
                )
        store.add_results(batch)
        store.add_aggregates(
            [a for a in agg.flush(now, everything=True) if a.resolution is Resolution.MINUTE]
        )
        fill_history(store, ids, now, int((retention.hour or 0) // 86400))
        store.prune(now, retention)
        store.close()
        import sqlite3

        # Peel the history off kind by kind (VACUUM after each): the size differences are
        # what each kind costs, measured rather than estimated.
        kinds: dict[str, float] = {}
        with contextlib.closing(sqlite3.connect(path)) as db:
            # Out of WAL mode, so each VACUUM shrinks the file itself, not a log beside it.
            db.execute("PRAGMA journal_mode=DELETE")
            counts = {"raw": db.execute("SELECT count(*) FROM results").fetchone()[0]}
            for res in Resolution:
                counts[res.name.lower()] = db.execute(
                    "SELECT count(*) FROM aggregates WHERE resolution = ?", (res.value,)
                ).fetchone()[0]
            db.execute("VACUUM")
            before = size = path.stat().st_size
            steps = [
                ("raw", "DELETE FROM results"),
                *[
                    (res.name.lower(), f"DELETE FROM aggregates WHERE resolution = '{res.value}'")
                    for res in Resolution
                ],
            ]
            for name, statement in steps:
                db.execute(statement)
                db.commit()
                db.execute("VACUUM")
                after = path.stat().st_size
                kinds[name] = before - after
                before = after
    per_row = {k: round(kinds[k] / counts[k], 1) if counts[k] else None for k in kinds}
    return {
        "targets": targets,
        "retention": {"raw_days": 3, "minute_days": 30, "hour_days": 400, "day": "forever"},
        "rows_per_target": {k: v // targets for k, v in counts.items()},
        "bytes_per_row": per_row,
        "mb_per_target_by_kind": {k: round(v / targets / 1e6, 2) for k, v in kinds.items()},
        "steady_state_mb_per_target": round(size / targets / 1e6, 2),
        "growth_kb_per_target_year": round(365 * (per_row["day"] or 0) / 1e3, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor")
    parser.add_argument("--serve-targets", help=argparse.SUPPRESS)
    parser.add_argument("--serve-lab", help=argparse.SUPPRESS)
    parser.add_argument(
        "--against",
        choices=["lab", "stub"],
        default="lab",
        help="probe the lab (default) or a minimal stub server",
    )
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--page-targets", type=int, default=200)
    parser.add_argument(
        "--view-seconds", type=float, default=10.0, help="seconds per page-views round (0: skip)"
    )
    parser.add_argument("--storage-targets", type=int, default=5)
    parser.add_argument(
        "--scale-targets", type=int, default=5000, help="targets of the page-at-scale round"
    )
    parser.add_argument("--serve-page", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["probing", "page", "scale", "storage"], default=None)
    args = parser.parse_args(argv)
    if args.serve_page:
        serve_page(args.serve_page, args.page_targets, args.port_file)
        return 0
    if args.serve_targets:
        serve_targets(args.serve_targets)
        return 0
    if args.serve_lab:
        serve_lab(args.serve_lab)
        return 0
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    if args.only in (None, "probing"):
        results["probing"] = probing(args.targets, args.interval, args.duration, args.against)
        print(json.dumps({"probing": results["probing"]}, indent=2), flush=True)
    if args.only in (None, "page"):
        results["status_page"] = status_page(args.page_targets, 30, args.view_seconds)
        print(json.dumps({"status_page": results["status_page"]}, indent=2), flush=True)
    if args.only in (None, "scale"):
        results["status_page_at_scale"] = status_page_at_scale(
            args.scale_targets, args.view_seconds or 10.0
        )
        print(json.dumps({"status_page_at_scale": results["status_page_at_scale"]}, indent=2))
    if args.only in (None, "storage"):
        results["storage"] = storage(args.storage_targets)
        print(json.dumps({"storage": results["storage"]}, indent=2), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monitor.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
