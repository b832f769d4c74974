"""Several gateway workers: one set of counters and modes, one SQLite journal, one replayer."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from garde.catalog import Catalog
from garde.cli.common import FAILED
from garde.errors import UsageError
from garde.gateway.board import WorkerBoard, worst_mode
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.metrics import Metrics
from garde.gateway.workers import JournalChoice, Workers, run_gateway
from tests.gateway.doubles import RECIPE, FakeTransport, caller_security, envelope
from tests.gateway.test_cli_process import call
from tests.gateway.upstream import Upstream

EXECUTOR = "/Recip-e/v4/Executor"


def _gateway(catalog: Catalog, board: WorkerBoard) -> Gateway:
    config = GatewayConfig(health_checks=False)
    return Gateway(catalog, FakeTransport(), config, None, admin=True, board=board)


def test_board_gathers_live_workers_own_first_and_skips_gone_ones(tmp_path: Path) -> None:
    one, two, gone = (WorkerBoard(tmp_path, i) for i in (1, 0, 7))
    two.publish({"n": 2})
    gone.publish({"n": 7})
    stale = json.loads(gone.path.read_text())
    stale["written"] = time.time() - 60  # a worker that stopped a minute ago
    gone.path.write_text(json.dumps(stale))
    seen = one.gather({"n": 1})
    assert [s["worker"] for s in seen] == [1, 0]
    assert [s["n"] for s in seen] == [1, 2]
    assert all(s["pid"] == os.getpid() for s in seen)
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


def test_metrics_snapshot_adds_up() -> None:
    a, b = Metrics(), Metrics()
    a.requests[("recipe-executor.getPrescriptionForExecutor", "forwarded")] += 3
    b.requests[("recipe-executor.getPrescriptionForExecutor", "forwarded")] += 4
    b.attempts[("recipe-executor", "dc2", "ok")] += 4
    a.rejected[413] += 1
    a.observe("recipe-executor", 0.002)
    b.observe("recipe-executor", 0.002)
    b.retries = 2
    total = Metrics()
    for part in (a, b):
        total.add(json.loads(json.dumps(part.snapshot())))  # as it crosses the board
    text = total.render()
    assert 'operation="getPrescriptionForExecutor",outcome="forwarded"} 7' in text
    assert 'data_center="dc2",result="ok"} 4' in text
    assert 'garde_gateway_rejected_total{status="413"} 1' in text
    assert 'garde_gateway_request_seconds_count{service="recipe-executor"} 2' in text
    assert "garde_gateway_retries_total 2" in text


def test_worst_mode_wins() -> None:
    assert worst_mode(["normal", "degraded"]) == "degraded"
    assert worst_mode(["normal", "offline", "degraded"]) == "offline"
    assert worst_mode([]) == "normal"


def test_each_worker_answers_for_all(catalog: Catalog, tmp_path: Path) -> None:
    first = _gateway(catalog, WorkerBoard(tmp_path, 0))
    second = _gateway(catalog, WorkerBoard(tmp_path, 1))
    first.metrics.requests[("recipe-executor.getPrescriptionForExecutor", "forwarded")] += 5
    second.metrics.requests[("recipe-executor.getPrescriptionForExecutor", "forwarded")] += 6
    # The second worker sees Recipe's executor side offline; the first does not (yet).
    upstreams = second.upstreams["recipe-executor"]
    for link in upstreams.links:
        link.healthy = False
        link.ejected_until = time.monotonic() + 60
    upstreams.refresh()
    assert second.admin is not None and first.admin is not None
    second.board.publish(second.admin.snapshot())  # type: ignore[union-attr,attr-defined]

    text = first.admin.metrics().render()  # type: ignore[attr-defined]
    assert 'operation="getPrescriptionForExecutor",outcome="forwarded"} 11' in text
    assert "garde_gateway_workers 2.0" in text
    assert 'garde_gateway_service_mode{service="recipe-executor",mode="offline"} 1.0' in text
    assert 'garde_gateway_breaker_open{service="recipe-executor",data_center="dc1"} 1.0' in text

    status = asyncio.run(first.admin.status())  # type: ignore[attr-defined]
    assert status["services"]["recipe-executor"]["mode"] == "offline"
    assert status["services"]["insurability"]["mode"] == "normal"
    workers = status["gateway"]["workers"]
    assert [w["worker"] for w in workers] == [0, 1]
    assert workers[0]["modes"]["recipe-executor"] == "normal"
    assert workers[1]["modes"]["recipe-executor"] == "offline"


# -- real processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _deliver(rid: str) -> bytes:
    body = envelope("MarkAsDeliveredRequest", RECIPE, f"<x:Rid>{rid}</x:Rid>", caller_security())
    return (
        b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
        b'SOAPAction: "' + RECIPE.encode() + b':markAsDelivered"\r\nPrefer: respond-async\r\n'
        b"Idempotency-Key: " + rid.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


def _status(raw: bytes) -> dict[str, object]:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


@pytest.mark.e2e
def test_two_workers_share_a_sqlite_journal_and_one_view(catalog: Catalog, tmp_path: Path) -> None:
    """Writes journaled by either worker during an outage are delivered once, by worker 0;
    /metrics and /_garde/status count both workers whichever answers; a worker that dies
    stops the gateway."""

    async def main() -> None:
        upstream = Upstream(port=_free_port())  # not started: the service is down
        endpoints = {"recipe-executor": {"dc1": f"http://127.0.0.1:{upstream.port}{EXECUTOR}"}}
        data = catalog.with_endpoints(endpoints).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(data))
        (tmp_path / "gateway.yaml").write_text("health_interval: 200ms\n")
        port = _free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "garde", "gateway", "--catalog", str(tmp_path / "catalog.yaml"),
            "--config", str(tmp_path / "gateway.yaml"), "--workers", "2", "--port", str(port),
            "--journal", f"sqlite:///{tmp_path / 'journal.db'}", "--journal-no-encryption",
            "--target-group", "pharmacist",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        assert process.stdout is not None
        output = bytearray()

        async def drain() -> None:  # a full pipe would block the workers' logging
            assert process.stdout is not None
            while line := await process.stdout.readline():
                output.extend(line)

        draining = asyncio.create_task(drain())
        try:
            async with asyncio.timeout(60):
                while b"/Recip-e/v4/Executor" not in output:
                    assert process.returncode is None, f"gateway exited: {output.decode()}"
                    await asyncio.sleep(0.1)
                # Both workers listening: the status names two of them.
                while True:
                    try:
                        raw = await call(
                            port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                        )
                        if len(_status(raw)["gateway"]["workers"]) == 2:  # type: ignore[index]
                            break
                    except (OSError, EOFError):
                        pass  # not listening yet
                    await asyncio.sleep(0.2)

            rids = [f"BEP0WORKER{n:04d}" for n in range(24)]
            answers = await asyncio.gather(*(call(port, _deliver(rid)) for rid in rids))
            assert all(a.startswith(b"HTTP/1.1 202") for a in answers), answers[0][:300]

            await upstream.start()  # the service is back: worker 0 drains the journal
            async with asyncio.timeout(60):
                while len({r[2].get(b"idempotency-key") for r in upstream.requests}) < 24:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # time for a second, wrong delivery to show up
            keys = [r[2].get(b"idempotency-key") for r in upstream.requests if r[0] == b"POST"]
            assert sorted(k for k in keys if k is not None) == sorted(r.encode() for r in rids)

            # Whichever worker answers, the counters are the whole gateway's.
            for _ in range(4):
                raw = await call(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                text = raw.split(b"\r\n\r\n", 1)[1].decode()
                assert "garde_gateway_workers 2.0" in text
                journaled = re.search(
                    r'operation="markAsDelivered",outcome="journaled"} (\d+)', text
                )
                assert journaled is not None and int(journaled.group(1)) == 24, text

            # A worker killed: the parent stops the other and reports the failure.
            raw = await call(port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            pids = [w["pid"] for w in _status(raw)["gateway"]["workers"]]  # type: ignore[index]
            assert len(pids) == 2, raw
            os.kill(pids[1], signal.SIGKILL)
            try:
                code = await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                pytest.fail(f"the gateway did not stop after a worker died:\n{output.decode()}")
            assert code == FAILED  # docs/cli.md, "Exit codes": garde failed
            await asyncio.wait_for(draining, 10)
            assert b"ended" in output and b"stopping the others" in output, output.decode()
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 25)
                except TimeoutError:
                    process.kill()  # its workers follow within a second (_watch_parent)
                    await process.wait()
            if upstream.server is not None:
                await upstream.stop()

    asyncio.run(main())


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.e2e
def test_workers_stop_when_their_supervisor_is_killed(catalog: Catalog, tmp_path: Path) -> None:
    async def main() -> None:
        port = _free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "garde", "gateway", "--workers", "2", "--port", str(port),
            "--journal", "none",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with asyncio.timeout(60):
                while True:
                    try:
                        raw = await call(
                            port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                        )
                        workers = _status(raw)["gateway"]["workers"]  # type: ignore[index]
                        if len(workers) == 2:
                            break
                    except (OSError, EOFError):
                        pass
                    await asyncio.sleep(0.2)
            pids = [w["pid"] for w in workers]
            process.kill()  # SIGKILL: the supervisor cannot stop its workers itself
            await process.wait()
            async with asyncio.timeout(20):
                while any(_running(pid) for pid in pids):
                    await asyncio.sleep(0.2)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    asyncio.run(main())


# -- the process model as a library caller sees it -------------------------------------------


def _worker_pids(port: int, deadline: float) -> list[int]:
    """The pids the gateway on ``port`` reports, once both of its workers answer."""
    while time.monotonic() < deadline:
        try:
            raw = asyncio.run(call(port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
            workers = _status(raw)["gateway"]["workers"]  # type: ignore[index]
            if len(workers) == 2:
                return [int(w["pid"]) for w in workers]
        except (OSError, EOFError):
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail("the workers did not both answer within 60 s")


@pytest.mark.e2e
def test_a_library_caller_runs_workers_and_stops_them() -> None:
    """``Workers`` from Python, no command line: two processes on one loopback port answer
    for each other; ``wait`` returns when woken or when a worker dies; leaving the block
    stops the rest and removes the board."""
    port = _free_port()
    said: list[str] = []
    config = GatewayConfig(port=port, health_checks=False)
    with Workers("belgium", config, JournalChoice("none"), 2, say=said.append) as workers:
        pids = _worker_pids(port, time.monotonic() + 60)
        assert sorted(pids) == sorted(p.pid for p in workers.processes)  # type: ignore[misc]
        board = workers.board
        assert board is not None and Path(board).is_dir()

        threading.Timer(0.1, workers.wake).start()
        assert workers.wait(timeout=30) is None  # woken: nobody ended

        os.kill(pids[1], signal.SIGKILL)
        ended = workers.wait(timeout=30)
        assert ended is not None and ended.pid == pids[1] and ended.exitcode == -signal.SIGKILL
    assert not any(p.is_alive() for p in workers.processes)
    survivor = next(p for p in workers.processes if p.pid == pids[0])
    assert survivor.exitcode == 0  # stopped cleanly by SIGTERM
    assert workers.board is None and not Path(board).exists()
    assert said == [f"garde gateway: 2 workers share port {port}"]


def test_run_gateway_checks_before_it_starts_anything(tmp_path: Path) -> None:
    """The journal's key, its URL, a shared port and the target group are checked first:
    one clear error, no worker started, no journal created."""
    fixed = GatewayConfig(port=_free_port(), health_checks=False)
    journal = JournalChoice(f"sqlite:///{tmp_path / 'j.db'}")
    with pytest.raises(UsageError, match="needs a key: give --journal-key-file"):
        run_gateway("belgium", fixed, journal, 2)
    with pytest.raises(UsageError, match="unknown scheme mysql://"):
        run_gateway("belgium", fixed, JournalChoice("mysql://h/db", no_encryption=True), 2)
    with pytest.raises(UsageError, match="--workers needs a fixed --port"):
        run_gateway("belgium", GatewayConfig(port=0), JournalChoice("none"), 2)
    with pytest.raises(UsageError, match="--target-group nobody: unknown"):
        run_gateway("belgium", GatewayConfig(target_group="nobody"), JournalChoice("none"), 2)
    assert list(tmp_path.iterdir()) == []


def test_only_a_postgres_journal_is_replayed_by_every_worker() -> None:
    assert JournalChoice("postgresql://h/db").leased
    assert not JournalChoice("sqlite:///j.db").leased
    assert not JournalChoice("j.db").leased
    assert not JournalChoice("none").leased
