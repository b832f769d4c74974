"""How many simple operations per second the lab serves through its fault proxy.

    python -m bench.lab [--seconds 5] [--connections 64]

The lab runs in its own process on uvloop (as ``garde lab up`` does); wrk (installed with
apt-get if missing) is the load client: one thread, keep-alive connections on loopback, no
pipelining. The lab process's CPU time per operation is reported too, since other processes
may share the two cores. Scenarios, measured in the same run:

- ``direct``: the simulator's internal port, no proxy (the baseline);
- ``proxied``: the catalog endpoint, through the fault proxy with no fault set;
- ``proxied+latency0``: through the proxy with a 0 ms latency fault (the filtering path);
- ``write``: an eFact ``postRequest`` through the proxy (SQLite + ledger on every request).

The operation is ``insurability.getInsurability`` with a valid token: safe XML parsing, token
check, NISS check, answer rendering. The goal is >= 5,000 operations/s through the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from garde import soap
from garde.soap import qn

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# -- the lab process --------------------------------------------------------------------------


def serve() -> None:
    """Run a lab on free ports; print its endpoints and internal ports as one JSON line."""
    import uvloop

    from garde.catalog import load_catalog
    from garde.lab import Lab, LabSettings

    async def main() -> None:
        lab = Lab(load_catalog("belgium", env={}), settings=LabSettings(efact_ack_delay=3600))
        async with lab:
            internal = {f"{s}/{d}": list(address) for (s, d), address in lab.internal.items()}
            print(
                json.dumps(
                    {"endpoints": lab.endpoints, "internal": internal, "control": lab.control_url}
                )
            )
            sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    profile = os.environ.get("BENCH_LAB_PROFILE")
    if not profile:
        uvloop.run(main())
        return
    import cProfile

    cProfile.runctx("uvloop.run(main())", globals(), {"uvloop": uvloop, "main": main}, profile)


# -- the load client ---------------------------------------------------------------------------


def wrk_binary() -> str:
    """wrk, installed with apt-get (Debian package ``wrk``) if it is missing."""
    found = shutil.which("wrk")
    if found is None:
        print("installing wrk with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc), to cost an operation in CPU."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _milliseconds(text: str) -> float:
    number = float(re.sub(r"[a-z]+$", "", text))
    unit = re.sub(r"^[0-9.]+", "", text)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0}.get(unit, 1.0)


def load(url: str, body: bytes, connections: int, seconds: float, lab_pid: int) -> dict[str, Any]:
    """POST ``body`` to ``url`` with wrk (1 thread, keep-alive) for ``seconds``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "text/xml; charset=utf-8"\n'
            f"wrk.body = [==[{body.decode()}]==]\n"
        )
    command = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        script.name,
        url,
    ]
    try:
        # Warm-up, not counted.
        subprocess.run([*command[:3], "-d1s", *command[4:]], check=True, capture_output=True)
        lab_cpu = cpu_seconds(lab_pid)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        lab_cpu = cpu_seconds(lab_pid) - lab_cpu
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    # The latency distribution lines ("     99%    3.21ms"), not the percentages of the stats.
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    per_op = lab_cpu / max(1, total - failed)
    return {
        "ops_per_s": round(rate),
        "failed": failed + (1 if errors else 0),
        "p50_ms": round(_milliseconds(p50.group(1)), 2) if p50 else None,
        "p99_ms": round(_milliseconds(p99.group(1)), 2) if p99 else None,
        "lab_cpu_us_per_op": round(per_op * 1e6, 1),
        "lab_capacity_per_core": round(1 / per_op) if per_op else 0,
    }


def _request(service: str, operation: str, fields: dict[str, str], token: str) -> bytes:
    """The envelope of ``service.operation`` with the catalog's body element."""
    from garde.catalog import load_catalog

    catalog_service, catalog_operation = load_catalog("belgium", env={}).operation(
        service, operation
    )
    name = catalog_service.body_element_of(catalog_operation)
    assert name is not None
    element = etree.Element(name)
    namespace = etree.QName(name).namespace or ""
    for field, value in fields.items():
        etree.SubElement(element, qn(namespace, field)).text = value
    return soap.build_envelope(element, header=[soap.security_header(token)])


def _insurability_request(token: str) -> bytes:
    return _request("insurability", "getInsurability", {"Ssin": "85073003328"}, token)


def _efact_request(token: str) -> bytes:
    fields = {"SenderNihii": "10012378004", "Batch": "aW52b2ljZSBiYXRjaA=="}
    return _request("efact", "postRequest", fields, token)


async def _token(sts_url: str) -> str:
    parts = urlsplit(sts_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    body = soap.token_request("bench")
    writer.write(
        f"POST {parts.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    data = await reader.read()
    writer.close()
    return soap.read_token_response(data.split(b"\r\n\r\n", 1)[1]).token


async def run(seconds: float, connections: int) -> list[dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.lab", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        info = json.loads(process.stdout.readline())
        endpoints = info["endpoints"]
        token = await _token(endpoints["sts"]["dc1"])
        read = _insurability_request(token)
        write = _efact_request(token)
        host, port = info["internal"]["insurability/dc1"]
        direct = f"http://{host}:{port}{urlsplit(endpoints['insurability']['dc1']).path}"
        results = []
        for name, url, body in (
            ("direct (no proxy)", direct, read),
            ("proxied, no fault", endpoints["insurability"]["dc1"], read),
            ("proxied, latency 0 ms", endpoints["insurability"]["dc2"], read),
            ("proxied write (eFact postRequest)", endpoints["efact"]["dc1"], write),
        ):
            if "latency" in name:
                await _set_fault(info["control"], "insurability", "dc2")
            measured = load(url, body, connections, seconds, process.pid)
            results.append({"scenario": name, **measured})
        return results
    finally:
        process.stdin.close()
        process.wait(timeout=30)


async def _set_fault(control: str, service: str, dc: str) -> None:
    parts = urlsplit(control)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    body = json.dumps({"service": service, "dc": dc, "kind": "latency", "latency": "0ms"}).encode()
    writer.write(
        f"POST /faults HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 201"), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    import uvloop

    results = uvloop.run(run(args.seconds, args.connections))
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()},"
        f" Python {platform.python_version()}, {date.today()}"
    )
    print(f"load: {args.connections} keep-alive connections, {args.seconds:g} s per scenario")
    load_average = os.getloadavg()[0]
    print(f"load average at the end: {load_average:.2f} (other processes share the 2 cores)")
    print(
        f"{'scenario':36} {'ops/s':>8} {'failed':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'lab CPU us/op':>14} {'ops/s per lab core':>19}"
    )
    for row in results:
        print(
            f"{row['scenario']:36} {row['ops_per_s']:>8} {row['failed']:>7}"
            f" {row['p50_ms']:>7} {row['p99_ms']:>7} {row['lab_cpu_us_per_op']:>14}"
            f" {row['lab_capacity_per_core']:>19}"
        )
    proxied = results[1]["ops_per_s"]
    verdict = "meets" if proxied >= 5000 else "MISSES"
    print(f"through the proxy: {proxied} ops/s, {verdict} the 5,000 ops/s goal")


if __name__ == "__main__":
    main()
