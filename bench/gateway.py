"""Gateway benchmark: pass-through against nginx, failover against HAProxy, in one run.

    python -m bench.gateway [--workers N] [--duration S] [--skip-failover]

1. Throughput: wrk posts a small SOAP request (getPrescriptionForExecutor) through nginx
   ``proxy_pass`` (keep-alive upstream) and through the gateway (whole continuity path on;
   the default, served by the native data plane, and the same gateway with ``fast_path:
   python``), all in front of the same nginx serving a canned SOAP answer; same worker
   count; rounds alternate. A bare uvloop + httptools forwarder (``bench/_bare_proxy.py``)
   runs alongside as the floor for a Python proxy. Each proxy's CPU time per request (its processes'
   utime + stime over the run, divided by the requests served) is reported too: unlike
   req/s it barely moves when other work shares the machine, and it is split into user and
   kernel time. Then latency at half the gateway's saturating rate, with h2load at a fixed
   rate (20 connections): p99 through each proxy minus p99 straight to the upstream, same
   rate, same round; twice, once with the connections sending out of step (one h2load
   each: independent callers) and once in step (one h2load for all: bursts of 20).
2. Failover: three data centers (nginx) with a fault proxy in front of dc1; a paced client
   sends a fixed rate through HAProxy (same three servers, health checks) and through the
   gateway; dc1 is made to refuse connections, then (separately) blackholed. Counted:
   client-visible errors and slow requests. The blackhole is run against the gateway twice:
   with hedged requests (the default) and with ``hedge: false`` and timeouts ejecting as any
   failure does (the gateway before issue 19), so before and after are in the same run.

Installs nginx, haproxy, wrk and h2load (nghttp2-client) with apt-get if missing; everything
on 127.0.0.1; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from bench._paced import PacedClient, Sample
from garde import drill
from garde.catalog import load_catalog
from garde.lab import LinkProxy, make_fault

RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"
SOAP_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/>'
    f'<soap:Body><r:GetPrescriptionForExecutorRequest xmlns:r="{RECIPE}">'
    "<r:Rid>BEP0ABCDEFGH</r:Rid></r:GetPrescriptionForExecutorRequest></soap:Body>"
    "</soap:Envelope>"
)
SOAP_ANSWER = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    f'<r:GetPrescriptionForExecutorResponse xmlns:r="{RECIPE}"><r:Status>OK</r:Status>'
    "<r:Prescription>c2VhbGVkIGttZWhy</r:Prescription></r:GetPrescriptionForExecutorResponse>"
    "</soap:Body></soap:Envelope>"
)
PATH = "/Recip-e/v4/Executor"
ACTION = f'"{RECIPE}:getPrescriptionForExecutor"'


_PACKAGES = {"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk", "h2load": "nghttp2-client"}


def ensure_tools() -> None:
    missing = [t for t in _PACKAGES if shutil.which(t) is None]
    missing = [t for t in missing if not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        packages = [_PACKAGES[t] for t in missing]
        print(f"installing {', '.join(packages)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True)


def tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Processes:
    """Every process the benchmark starts, stopped by pid at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], port: int, log: Path, **kw: object) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        self.started.append(proc)
        try:
            wait_port(port)
        except RuntimeError:
            raise RuntimeError(
                f"{args[0]} did not start; see {log}:\n{log.read_text()[-2000:]}"
            ) from None
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            self.stop(proc)


def nginx_conf(workdir: Path, name: str, workers: int, server: str, upstreams: str = "") -> Path:
    base = workdir / name
    base.mkdir(exist_ok=True)
    conf = base / "nginx.conf"
    conf.write_text(
        f"""
user root root;
worker_processes {workers};
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {base}/body; proxy_temp_path {base}/proxy;
  fastcgi_temp_path {base}/fcgi; uwsgi_temp_path {base}/uwsgi; scgi_temp_path {base}/scgi;
  keepalive_requests 10000000; keepalive_timeout 75s;
  {upstreams}
  {server}
}}
"""
    )
    return conf


def upstream_server(port: int) -> str:
    body = SOAP_ANSWER.replace("'", "\\'")
    return (
        f"server {{ listen 127.0.0.1:{port} backlog=4096; location / {{"
        f" default_type 'text/xml; charset=utf-8'; return 200 '{body}'; }} }}"
    )


def write_catalog(workdir: Path, dc_ports: list[int], timeout: str) -> Path:
    catalog = load_catalog("belgium", env={})
    # Every service lives on the benchmark's data centers: a service whose data centers do
    # not exist here would fail its health checks all the time, and the garbage of those
    # failures (exceptions, tracebacks) brings collections that show in the gateway's tail.
    endpoints = {
        sid: {
            f"dc{i + 1}": f"http://127.0.0.1:{port}{service.path_prefix}"
            for i, port in enumerate(dc_ports)
        }
        for sid, service in catalog.services.items()
    }

    def recipe_timeout(data: dict[str, object]) -> None:
        executor = data["services"]["recipe-executor"]  # type: ignore[index]
        executor["timeout"] = timeout
        for operation in executor["operations"].values():
            operation.pop("timeout", None)

    return drill.write_catalog(catalog, workdir / "catalog.yaml", endpoints, recipe_timeout)


def start_gateway(
    procs: Processes,
    workdir: Path,
    catalog: Path,
    port: int,
    workers: int,
    health: str,
    extra: str = "",
    outlier: str = "consecutive_failures: 5, base_ejection: 10s",
) -> subprocess.Popen[bytes]:
    config = workdir / f"gateway-{port}.yaml"
    config.write_text(
        f"health_interval: {health}\nhealth_timeout: 1s\nconnect_timeout: 1s\n"
        f"outlier: {{{outlier}}}\n" + extra
    )
    args = [
        sys.executable,
        "-m",
        "garde",
        "gateway",
        "--catalog",
        str(catalog),
        "--config",
        str(config),
        "--journal",
        "none",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return procs.start(args, port, workdir / f"gateway-{port}.log")


# -- wrk -----------------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = [[%s]]
"""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk(script: Path, port: int, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            tool("wrk"),
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{PATH}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    for pct, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        result[f"p{pct}"] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = float(bad.group(1)) if bad else 0.0
    if errors:
        result["errors"] += sum(float(x) for x in errors.groups())
    return result


PATTERNS = {"independent": True, "in-step": False}
"""How the paced connections send: out of step (each its own h2load) or in step (one h2load)."""


def paced(
    workdir: Path,
    body: Path,
    port: int,
    rate: float,
    seconds: float,
    connections: int = 20,
    *,
    independent: bool = False,
) -> dict[str, float]:
    """Latency at a fixed offered rate: h2load (HTTP/1.1) with ``--rps`` per connection.

    One h2load process drives its connections from one timer each, all started together:
    the connections send in step, so requests arrive in bursts of ``connections``, and the
    last of a burst waits for the proxy to handle all before it. ``independent`` runs one
    h2load process per connection instead, each started on its own, so the connections'
    sending is out of step, as independent callers are. Every request's time is read from
    h2load's per-request log, so the percentiles are computed from all samples. A request
    that failed counts as an error, not as a latency.
    """
    callers = connections if independent else 1
    per_process = 1 if independent else connections
    logs = [workdir / f"h2load-{i}.log" for i in range(callers)]
    command = [
        tool("h2load"),
        "--h1",
        "-t1",
        f"-c{per_process}",
        f"--rps={rate / connections:.2f}",
        f"-D{int(seconds)}",
        "--warm-up-time=1",
        "-d",
        str(body),
        "-H",
        "Content-Type: text/xml; charset=utf-8",
        "-H",
        f"SOAPAction: {ACTION}",
    ]
    target = f"http://127.0.0.1:{port}{PATH}"
    running = [
        subprocess.Popen(
            [*command, f"--log-file={log}", target],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for log in logs
    ]
    for process in running:
        if process.wait(timeout=seconds + 30) != 0:
            raise RuntimeError(f"h2load failed against 127.0.0.1:{port}")
    durations: list[float] = []
    errors = 0
    for log in logs:
        for line in log.read_text().splitlines():
            _, status, micros = line.split("\t")[:3]
            if status.strip() == "200":
                durations.append(int(micros) / 1e6)
            else:
                errors += 1
        log.unlink()
    if not durations:
        raise RuntimeError(f"h2load got no answer from 127.0.0.1:{port}")
    durations.sort()

    def pct(p: float) -> float:
        return durations[min(len(durations) - 1, int(p / 100 * len(durations)))]

    return {
        "rps": len(durations) / seconds,
        "requests": float(len(durations)),
        "errors": float(errors),
        "p50": pct(50),
        "p99": pct(99),
        "p999": pct(99.9),
    }


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of ``pid`` and its child processes (nginx's workers)."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    user = system = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    ticks = os.sysconf("SC_CLK_TCK")
    return user / ticks, system / ticks


def measured(script: Path, port: int, pid: int, seconds: float) -> dict[str, float]:
    """A saturating wrk run, plus the proxy's CPU time per request (in microseconds).

    CPU per request is what the proxy costs whatever else the machine runs: on a quiet
    machine the throughput ratio of two proxies is the inverse ratio of these.
    """
    user, system = cpu_seconds(pid)
    result = wrk(script, port, seconds, 50)
    user_after, system_after = cpu_seconds(pid)
    per_request = 1e6 / max(result["requests"], 1.0)
    result["user_us"] = (user_after - user) * per_request
    result["sys_us"] = (system_after - system) * per_request
    result["cpu_us"] = result["user_us"] + result["sys_us"]
    return result


def throughput(
    workdir: Path, procs: Processes, workers: int, duration: float, rounds: int
) -> dict[str, object]:
    upstream_port, nginx_port, gateway_port = free_port(), free_port(), free_port()
    bare_port = free_port()
    conf = nginx_conf(workdir, "upstream", 1, upstream_server(upstream_port))
    procs.start([tool("nginx"), "-c", str(conf)], upstream_port, workdir / "upstream.log")
    proxy = (
        f"server {{ listen 127.0.0.1:{nginx_port} backlog=4096; location / {{"
        ' proxy_pass http://dc; proxy_http_version 1.1; proxy_set_header Connection ""; } }'
    )
    upstreams = f"upstream dc {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}"
    conf = nginx_conf(workdir, "proxy", workers, proxy, upstreams)
    nginx = procs.start([tool("nginx"), "-c", str(conf)], nginx_port, workdir / "proxy.log")
    # The floor for a Python proxy (one process: compare it with one worker).
    bare = procs.start(
        [sys.executable, "-m", "bench._bare_proxy", str(bare_port), str(upstream_port)],
        bare_port,
        workdir / "bare.log",
    )
    catalog = write_catalog(workdir, [upstream_port] * 3, "10s")
    gateway = start_gateway(procs, workdir, catalog, gateway_port, workers, "5s")
    # The same gateway with ``xml_validation: full``: what parsing every body costs.
    full_port = free_port()
    full = start_gateway(
        procs, workdir, catalog, full_port, workers, "5s", "xml_validation: full\n"
    )
    # The same gateway with the Python fast path instead of the native data plane.
    python_port = free_port()
    python = start_gateway(
        procs, workdir, catalog, python_port, workers, "5s", "fast_path: python\n"
    )
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % (SOAP_REQUEST, ACTION))
    for port in (nginx_port, bare_port, gateway_port, python_port, full_port):  # warm up
        wrk(script, port, 2, 50)
    contenders = [
        ("nginx", nginx_port, nginx.pid),
        ("bare", bare_port, bare.pid),
        ("gateway", gateway_port, gateway.pid),
        ("python", python_port, python.pid),
        ("full", full_port, full.pid),
    ]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in contenders}
    for r in range(rounds):
        for name, port, pid in contenders if r % 2 == 0 else contenders[::-1]:
            runs[name].append(measured(script, port, pid, duration))
            print(
                f"  round {r + 1} {name}: {runs[name][-1]['rps']:.0f} req/s,"
                f" {runs[name][-1]['cpu_us']:.1f} us CPU/request"
                f" (user {runs[name][-1]['user_us']:.1f}, kernel {runs[name][-1]['sys_us']:.1f})",
                flush=True,
            )
    best = {name: max(x["rps"] for x in results) for name, results in runs.items()}
    mean = {name: sum(x["rps"] for x in results) / len(results) for name, results in runs.items()}
    lowest = {name: min(results, key=lambda x: x["cpu_us"]) for name, results in runs.items()}
    cpu = {name: run["cpu_us"] for name, run in lowest.items()}
    split = {name: (run["user_us"], run["sys_us"]) for name, run in lowest.items()}
    # Latency at half the gateway's saturating rate, for direct, nginx and gateway alike:
    # the same fixed rate (h2load --rps, not wrk's closed loop), alternating, several rounds;
    # added latency is each round's p99 minus the direct p99 of the same round.
    rate = mean["gateway"] / 2
    body = workdir / "request.xml"
    body.write_text(SOAP_REQUEST)
    targets = (("direct", upstream_port), ("nginx", nginx_port), ("gateway", gateway_port))
    latency: dict[str, dict[str, list[dict[str, float]]]] = {
        pattern: {name: [] for name, _ in targets} for pattern in PATTERNS
    }
    for r in range(max(rounds, 3)):
        for pattern, independent in PATTERNS.items():
            for name, port in targets if r % 2 == 0 else targets[::-1]:
                result = paced(workdir, body, port, rate, duration, independent=independent)
                latency[pattern][name].append(result)
                print(
                    f"  paced round {r + 1}, {pattern} callers, {name}: {result['rps']:.0f} req/s"
                    f" p50 {result['p50'] * 1e3:.3f} ms p99 {result['p99'] * 1e3:.3f} ms"
                    f" ({result['errors']:.0f} errors)",
                    flush=True,
                )
    return {
        "data_plane": data_plane(gateway_port),
        "runs": runs,
        "best": best,
        "mean": mean,
        "cpu": cpu,
        "split": split,
        "latency": latency,
        "rate": rate,
    }


# -- failover ------------------------------------------------------------------------------------


def haproxy_conf(workdir: Path, port: int, dcs: list[int], timeout: str) -> Path:
    conf = workdir / "haproxy.cfg"
    servers = "\n".join(
        f"  server dc{i + 1} 127.0.0.1:{p} check inter 1s fall 2 rise 2" + (" backup" if i else "")
        for i, p in enumerate(dcs)
    )
    conf.write_text(
        f"""
global
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server {timeout}
  retries 3
  option redispatch 1
  option http-keep-alive
frontend front
  bind 127.0.0.1:{port}
  default_backend dcs
backend dcs
  option httpchk GET {PATH}?wsdl
  retry-on conn-failure empty-response response-timeout
{servers}
"""
    )
    return conf


def summarise(samples: list[Sample], fault_at: float) -> dict[str, float]:
    after = [s for s in samples if s.sent_at >= fault_at - 2.5]
    errors = sum(1 for s in samples if s.status != 200)
    slow = sum(1 for s in samples if s.latency > 0.1)
    latencies = sorted(s.latency for s in samples)
    slowest = sorted(samples, key=lambda s: -s.latency)[:5]
    # When the slowest were sent (ms after the fault) and how long they took (ms).
    print(
        "    slowest: "
        + ", ".join(
            f"{(s.sent_at - fault_at) * 1e3:+.0f}ms:{s.latency * 1e3:.0f}" for s in slowest
        ),
        flush=True,
    )
    return {
        "requests": len(samples),
        "errors": errors,
        "slow_over_100ms": slow,
        "max_latency": latencies[-1] if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0,
        "in_fault_window": len(after),
    }


GATEWAY_VARIANTS = {
    "gateway": ("", "consecutive_failures: 5, base_ejection: 10s"),
    # Before hedging (issue 19): no hedge, and a timeout ejects only as any failure does.
    "gateway-nohedge": (
        "hedge: false\n",
        "consecutive_failures: 5, consecutive_timeouts: 5, base_ejection: 10s",
    ),
}
"""The gateway's settings per case (extra lines, outlier settings): ``gateway`` is the
default (hedging on, two timeouts in a row eject)."""


def gateway_counts(port: int) -> dict[str, float]:
    """What served the gateway's requests, from its status and metrics: requests served by
    the native plane, connections handed over to Python, hedges sent."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_garde/status", timeout=5) as answer:
        status = json.load(answer)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    hedges = re.search(r"^garde_gateway_hedges_total (\d+)", metrics, re.M)
    plane = status["gateway"]["data_plane"]
    return {
        "native_served": float(plane.get("served", 0)),
        "handed_over": float(plane.get("handed_over", 0)),
        "hedges": float(hedges.group(1)) if hedges else 0.0,
    }


async def failover_case(
    fault: str, target: str, workdir: Path, procs: Processes, rate: float, duration: float
) -> dict[str, float]:
    dc_ports = [free_port() for _ in range(3)]
    servers = " ".join(upstream_server(p) for p in dc_ports)
    conf = nginx_conf(workdir, f"dcs-{target}-{fault}", 1, servers)
    upstream = procs.start([tool("nginx"), "-c", str(conf)], dc_ports[0], workdir / "dcs.log")
    # The lab's fault proxy, in front of a data center that is not the lab's.
    proxy = LinkProxy("bench", "dc1", "127.0.0.1", 0, ("127.0.0.1", dc_ports[0]))
    await proxy.start()
    front_port = free_port()
    timeout = "2s"
    if target == "haproxy":
        cfg = haproxy_conf(workdir, front_port, [proxy.port, dc_ports[1], dc_ports[2]], timeout)
        front = procs.start(
            [tool("haproxy"), "-f", str(cfg), "-db"], front_port, workdir / "haproxy.log"
        )
    else:
        catalog = write_catalog(workdir, [proxy.port, dc_ports[1], dc_ports[2]], timeout)
        extra, outlier = GATEWAY_VARIANTS[target]
        front = start_gateway(procs, workdir, catalog, front_port, 1, "1s", extra, outlier)
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"SOAPAction: {ACTION}\r\nContent-Length: {len(SOAP_REQUEST)}\r\n\r\n{SOAP_REQUEST}"
    ).encode()
    client = PacedClient(front_port, request, rate, duration)
    fault_at = duration / 3
    runner = asyncio.create_task(client.run())
    await asyncio.sleep(fault_at)
    # refuse: connections refused, open ones reset; blackhole: accepted, never answered.
    proxy.set(make_fault("down" if fault == "refuse" else "blackhole"))
    samples = await runner
    counts = gateway_counts(front_port) if target != "haproxy" else {}
    await proxy.stop()
    procs.stop(front)
    procs.stop(upstream)
    return {**summarise(samples, fault_at), **counts}


def failover(
    workdir: Path, procs: Processes, rate: float, duration: float
) -> dict[str, dict[str, float]]:
    results = {}
    cases = [
        ("refuse", "haproxy"),
        ("refuse", "gateway"),
        ("blackhole", "haproxy"),
        ("blackhole", "gateway-nohedge"),
        ("blackhole", "gateway"),
    ]
    for fault, target in cases:
        result = asyncio.run(failover_case(fault, target, workdir, procs, rate, duration))
        results[f"{fault}/{target}"] = result
        print(f"  {fault:9} {target:15}: {describe(result)}", flush=True)
    return results


def describe(result: dict[str, float]) -> str:
    text = (
        f"{result['errors']:.0f} errors, {result['slow_over_100ms']:.0f} slow (>100 ms),"
        f" max {result['max_latency']:.3f} s, of {result['requests']:.0f} requests"
    )
    if "hedges" in result:
        text += (
            f" (native plane served {result['native_served']:.0f}, handed over"
            f" {result['handed_over']:.0f} connections, {result['hedges']:.0f} hedges)"
        )
    return text


def data_plane(port: int) -> dict[str, object]:
    """What served the default gateway (from its status): proof the native plane did."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_garde/status", timeout=5) as answer:
        status = json.load(answer)
    return dict(status["gateway"]["data_plane"])


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def report(tp: dict[str, object], fo: dict[str, dict[str, float]] | None, workers: int) -> str:
    mean = tp["mean"]  # type: ignore[index]
    best = tp["best"]  # type: ignore[index]
    lat = tp["latency"]  # type: ignore[index]
    cpu = tp["cpu"]  # type: ignore[index]
    split = tp["split"]  # type: ignore[index]
    lines = [
        f"workers: {workers}; rounds per proxy: {len(tp['runs']['nginx'])}",  # type: ignore[index]
        f"throughput nginx proxy_pass: mean {mean['nginx']:.0f} req/s (best {best['nginx']:.0f})",
        f"throughput bare forwarder:   mean {mean['bare']:.0f} req/s (best {best['bare']:.0f})",
        f"throughput garde gateway:    mean {mean['gateway']:.0f} req/s"
        f" (best {best['gateway']:.0f})",
        f"throughput gateway, fast_path python: mean {mean['python']:.0f} req/s"
        f" (best {best['python']:.0f})",
        f"throughput gateway, xml_validation full: mean {mean['full']:.0f} req/s"
        f" (best {best['full']:.0f})",
        f"ratio gateway/nginx: {mean['gateway'] / mean['nginx']:.2f} (mean),"
        f" {best['gateway'] / best['nginx']:.2f} (best); python/nginx"
        f" {mean['python'] / mean['nginx']:.2f} (mean); full/nginx"
        f" {mean['full'] / mean['nginx']:.2f} (mean); bare/nginx"
        f" {mean['bare'] / mean['nginx']:.2f} (mean)",
        f"data plane of the default gateway (worker answering): {tp['data_plane']}",
        "CPU per request (lowest round; includes all worker processes; python = the gateway"
        " with fast_path: python, full = with xml_validation: full, which is served by Python):",
        *(
            f"  {name:8} {cpu[name]:6.1f} us (user {split[name][0]:.1f}, kernel"
            f" {split[name][1]:.1f})   nginx/{name} = {cpu['nginx'] / cpu[name]:.2f}"
            for name in ("nginx", "bare", "gateway", "python", "full")
        ),
        f"paced at {tp['rate']:.0f} req/s (half the gateway's saturating rate), h2load,"
        f" 20 connections, {len(lat['in-step']['direct'])} rounds; medians of the rounds:",
    ]
    for pattern in PATTERNS:
        lines.append(f" {pattern} callers:")
        for name in ("direct", "nginx", "gateway"):
            rounds = lat[pattern][name]
            direct = lat[pattern]["direct"]
            added = [(r["p99"] - d["p99"]) * 1e3 for r, d in zip(rounds, direct, strict=True)]
            lines.append(
                f"  {name:8} achieved {median(r['rps'] for r in rounds):.0f} req/s,"
                f" p50 {median(r['p50'] for r in rounds) * 1e3:.3f} ms,"
                f" p99 {median(r['p99'] for r in rounds) * 1e3:.3f} ms,"
                f" p99.9 {median(r['p999'] for r in rounds) * 1e3:.3f} ms, added p99"
                f" {median(added):+.3f} ms (rounds {', '.join(f'{a:+.2f}' for a in added)})"
            )
    if fo:
        lines.append("failover (dc1 faulted a third of the way in; paced client):")
        for case, r in fo.items():
            lines.append(f"  {case:25} {describe(r)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200.0, help="failover request rate")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    ensure_tools()
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="garde-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        try:
            tp = None
            if not args.skip_throughput:
                print(f"pass-through, {args.workers} worker(s):", flush=True)
                tp = throughput(workdir, procs, args.workers, args.duration, args.rounds)
            fo = None
            if not args.skip_failover:
                print(f"failover at {args.rate:.0f} req/s:", flush=True)
                fo = failover(workdir, procs, args.rate, 12.0)
        finally:
            procs.stop_all()
    if tp is not None:
        print("\n" + report(tp, fo, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
