"""Every JSON answer gives its times in RFC 3339 UTC: the monitor's API, the gateway's admin
endpoints and the lab's control API, walked route by route with something in them (an open
and a resolved incident, a maintenance window, a journaled write, a ledger effect). A time-like
field that is a bare number fails, unless it is the deprecated ``<field>_unix`` sibling of an
RFC 3339 field (kept one release, CHANGELOG.md)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from starlette.testclient import TestClient

from garde.catalog import Catalog
from garde.cli import cli
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from garde.gateway.wire import Request
from garde.journal.factory import open_journal
from garde.journal.sealing import Keyring
from garde.lab import lab_in_thread
from garde.monitor.alerts import Notifier
from garde.monitor.clock import ManualClock
from garde.monitor.openapi import OPENAPI
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.web.app import create_app
from tests.gateway.doubles import EXECUTOR, RECIPE, caller_security, soap_request
from tests.lab.labkit import Client
from tests.lab.test_lab_recipe import prescription

TIME_KEY = re.compile(r"(^|_)(at|since|until|start|end|started|deadline|time|when)$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
UNIX = "_unix"


def bad_times(data: Any, where: str, seen: set[str]) -> list[str]:
    """What is wrong with the times in ``data`` (``seen`` collects the RFC 3339 names)."""
    found: list[str] = []
    if isinstance(data, list):
        for index, item in enumerate(data):
            found += bad_times(item, f"{where}[{index}]", seen)
    elif isinstance(data, dict):
        for key, value in data.items():
            at = f"{where}.{key}"
            name = str(key)
            if name.endswith(UNIX) and TIME_KEY.search(name.removesuffix(UNIX)):
                base = name.removesuffix(UNIX)
                sibling = data.get(base, "missing")
                if not (isinstance(sibling, str) and RFC3339.match(sibling)) and not (
                    sibling is None and value is None
                ):
                    found.append(f"{at}: no RFC 3339 {base} beside it (got {sibling!r})")
            elif TIME_KEY.search(name):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    found.append(f"{at}: a bare number ({value}), not RFC 3339")
                elif isinstance(value, str):
                    if not RFC3339.match(value):
                        found.append(f"{at}: {value!r} is not RFC 3339")
                    seen.add(name)
            found += bad_times(value, at, seen)
    return found


def test_the_walker_finds_what_it_must() -> None:
    """The check itself can fail: a float time, a lone _unix, a local time are caught."""
    seen: set[str] = set()
    assert bad_times({"since": 1.5}, "x", seen)
    assert bad_times({"items": [{"started_at_unix": 1.5}]}, "x", seen)
    assert bad_times({"at": "2026-12-03 08:00"}, "x", seen)
    assert not bad_times({"at": "2026-12-03T08:00:00.250Z", "at_unix": 1.0, "uptime": 3}, "x", seen)
    assert not bad_times({"resolved_at": None, "resolved_at_unix": None}, "x", seen)


def _monitor(belgium: Catalog, tmp_path: Path) -> Monitor:
    clock = ManualClock(datetime.now(UTC).timestamp() - 3600)
    monitor = Monitor(
        belgium,
        SqliteStore(tmp_path / "m.sqlite"),
        clock=clock,
        notifier=Notifier(),
        probe_locally=False,
        settle_factor=1.0,
    )
    # Recip-e fails and heals (a resolved incident), then eTarif fails (an open one).
    for failing in ("recipe-executor@", "", "etarif@"):
        for _ in range(5):
            for target in monitor.tracker.targets:
                up = not (failing and target.startswith(failing))
                monitor.ingest(ProbeResult(target, clock.now(), up, 0.04))
            asyncio.run(monitor.tick())
            clock.advance(60)
    asyncio.run(monitor.flush())
    return monitor


def test_every_monitor_route_gives_rfc3339_times(belgium: Catalog, tmp_path: Path) -> None:
    monitor = _monitor(belgium, tmp_path)
    client = TestClient(create_app(monitor, admin_token="t"))
    planned = client.post(
        "/api/v1/maintenance",
        headers={"Authorization": "Bearer t"},
        json={
            "title": "Recip-e upgrade",
            "scope": ["recipe-executor"],
            "starts_at": "2027-01-10T06:00:00Z",
            "ends_at": "2027-01-10T07:00:00Z",
            "rrule": "FREQ=WEEKLY",
            "until": "2027-03-01T00:00:00Z",
        },
    )
    assert planned.status_code == 201, planned.text
    updated = client.post(
        "/api/v1/incidents/1/updates",
        headers={"Authorization": "Bearer t"},
        json={"message": "the vendor is on it"},
    )
    assert updated.status_code == 201, updated.text
    month = datetime.fromtimestamp(monitor.clock.now(), UTC).strftime("%Y-%m")
    fill = {"{target}": "recipe-executor@dc1", "{month}": month, "{id}": "1"}
    answers = {"POST /api/v1/maintenance": planned.json(), "POST .../updates": updated.json()}
    routes = [p for p, ops in OPENAPI["paths"].items() if "get" in ops]
    routes += ["/healthz", "/api/v1/history/service:recipe-executor"]
    for route in routes:
        path = route
        for key, value in fill.items():
            path = path.replace(key, value)
        if route == "/sla/{month}":
            path += ".json"
        answer = client.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
        if answer.headers["content-type"].startswith("application/json"):
            answers[f"GET {path}"] = answer.json()
    seen: set[str] = set()
    problems = [p for where, body in answers.items() for p in bad_times(body, where, seen)]
    assert not problems, "\n".join(problems)
    # Something was walked: incidents, their updates, windows, buckets and the state's times.
    assert {"started_at", "resolved_at", "at", "starts_at", "until", "start", "since"} <= seen
    assert answers["GET /api/v1/incidents"]["incidents"][-1]["resolved_at"] is not None
    # The command line's --json gives the same shapes.
    db = f"sqlite:///{tmp_path / 'm.sqlite'}"
    for line in (
        ["incident", "list", "--json"],
        ["incident", "show", "1", "--json"],
        ["maintenance", "list", "--json"],
        ["sla", "--month", month, "--json"],
    ):
        answers[" ".join(line)] = _cli([*line, "--db", db])
    # And the OpenAPI description says each of them is a date-time.
    described = set(re.findall(r'"(\w+)": \{"type": [^{}]*"format": "date-time"', _spec()))
    assert seen <= described, f"describe in monitor/openapi.py: {seen - described}"


def _spec() -> str:
    return json.dumps(OPENAPI)


def test_the_gateway_and_the_lab_give_rfc3339_times(belgium: Catalog, tmp_path: Path) -> None:
    with lab_in_thread(belgium, base_port=0) as lab:
        wired = belgium.with_endpoints(lab.endpoints)
        for dc in ("dc1", "dc2", "dc3"):
            _lab(lab.control_url, "POST", "/faults", {"service": "recipe-executor", "dc": dc,
                                                      "kind": "down"})  # fmt: skip
        answers = asyncio.run(_gateway(wired, tmp_path))
        # An effect in the ledger: a prescription made through the lab's own service.
        prescription(Client(lab))
        for path in ("/status", "/ledger", "/ledger/duplicates", "/health"):
            answers[f"lab {path}"] = _lab(lab.control_url, "GET", path)
        lab_spec = json.dumps(_lab(lab.control_url, "GET", "/openapi.json"))
        answers["garde lab ledger --json"] = _cli(
            ["lab", "ledger", "--json", "--control", lab.control_url]
        )
    journal = ["--journal", f"sqlite:///{tmp_path / 'journal.db'}", "--journal-no-encryption"]
    listed = _cli(["journal", "ls", "--json", *journal])
    answers["garde journal ls --json"] = listed
    entry = listed["entries"][0]["id"]
    answers["garde journal show --json"] = _cli(["journal", "show", entry, "--json", *journal])
    _cli(["journal", "retry", entry, *journal], as_json=False)  # something for the audit log
    answers["garde journal audit --json"] = _cli(["journal", "audit", "--json", *journal])
    seen: set[str] = set()
    problems = [p for where, body in answers.items() for p in bad_times(body, where, seen)]
    assert not problems, "\n".join(problems)
    assert {"started", "since", "created_at", "updated_at", "at"} <= seen, seen
    assert answers["garde journal audit --json"], "the audit log has the retry"
    lab_described = set(re.findall(r'"(\w+)": \{"type": [^{}]*"format": "date-time"', lab_spec))
    assert "at" in lab_described, "the lab's OpenAPI describes the ledger's time"


def _cli(line: list[str], *, as_json: bool = True) -> Any:
    done = CliRunner().invoke(cli, line)
    assert done.exit_code == 0, f"garde {' '.join(line)}: {done.output}"
    return json.loads(done.output) if as_json else None


def _lab(base: str, method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


async def _gateway(catalog: Catalog, tmp_path: Path) -> dict[str, Any]:
    journal = await open_journal(str(tmp_path / "journal.db"), Keyring.clear())
    config = GatewayConfig(port=0, health_checks=False)
    answers: dict[str, Any] = {}
    async with RunningGateway(catalog, config, journal) as running:
        gateway = running.gateway
        write = soap_request(
            EXECUTOR,
            "markAsDelivered",
            RECIPE,
            "<x:Rid>BEP0ABCDEFGH</x:Rid>",
            extra=[(b"Idempotency-Key", b"times-1")],
            header=caller_security(),
        )
        reply = await gateway.handle(write)
        assert reply.status == 202, reply.body
        receipt = reply.header(b"garde-receipt")
        assert receipt is not None
        for path in ("/_garde/status", f"/_garde/receipts/{receipt.decode()}"):
            answer = await gateway.handle(Request(b"GET", path.encode(), []))
            assert answer.status == 200, answer.body
            answers[path] = json.loads(answer.body)
        events = await gateway.handle(Request(b"GET", b"/_garde/events", []))
        assert events.stream is not None
        text = b""
        deadline = time.monotonic() + 10
        async for chunk in events.stream:
            text += chunk
            if text.count(b"data:") >= len(catalog.services) or time.monotonic() > deadline:
                break
        answers["/_garde/events"] = [
            json.loads(line[5:]) for line in text.decode().splitlines() if line.startswith("data:")
        ]
        assert answers["/_garde/events"]
    return answers
