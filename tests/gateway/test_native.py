"""The native data plane (``_plane.c`` behind ``native.py``) on real loopback sockets.

It must be indistinguishable from the Python fast path for callers and data centers alike,
hand everything else to Python whole, and feed failures, metrics and shutdown back into the
gateway as the Python paths do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import tests.gateway.test_server as server_tests
from garde.catalog import Catalog
from garde.errors import UsageError
from garde.gateway import native
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from tests.gateway.doubles import RECIPE, envelope
from tests.gateway.test_server import BODY, TOKEN, raw, run, soap_post
from tests.gateway.upstream import Upstream
from tests.polling import until

needs_plane = pytest.mark.skipif(
    not native.available(),
    reason="the native data plane (garde.gateway._plane) is not built here: build it with"
    " `pip install -e .` on Linux with a C compiler",
)

SERVICE = "recipe-executor"
LABEL = 'service="recipe-executor",operation="getPrescriptionForExecutor"'
AUTH = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
FAULT = (
    b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>"
    b"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>no such prescription"
    b"</faultstring></soap:Fault></soap:Body></soap:Envelope>"
)


class Recording(Upstream):
    """The loopback upstream, also keeping the bytes each connection sent, and able to
    answer late (``delay`` seconds after each read), echo the request target, or send its
    answers with a chunked body."""

    def __init__(self, **fields: Any) -> None:
        self.raw: list[bytearray] = []
        self.delay = 0.0
        self.echo = False
        self.chunked = False
        super().__init__(**fields)

    @property
    def body(self) -> bytes:
        if self.echo and self.requests:
            target = self.requests[-1][1]
            return b"<soap:Envelope><soap:Body><echo>%s</echo></soap:Body></soap:Envelope>" % target
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sink = bytearray()
        self.raw.append(sink)
        await super()._serve(_Tee(reader, self, sink), _Out(writer, self))  # type: ignore[arg-type]

    def sent(self) -> bytes:
        """Everything the gateway wrote to this data center, its own port made neutral."""
        data = b"".join(bytes(part) for part in self.raw)
        return data.replace(f"127.0.0.1:{self.port}".encode(), b"127.0.0.1:PORT")


class _Tee:
    def __init__(self, reader: asyncio.StreamReader, upstream: Recording, sink: bytearray) -> None:
        self.reader = reader
        self.upstream = upstream
        self.sink = sink

    async def read(self, n: int) -> bytes:
        data = await self.reader.read(n)
        self.sink += data
        if data and self.upstream.delay:
            await asyncio.sleep(self.upstream.delay)  # a slow data center, not a wait
        return data


class _Out:
    """The upstream's writer, turning its Content-Length answers into chunked ones on demand."""

    def __init__(self, writer: asyncio.StreamWriter, upstream: Recording) -> None:
        self.writer = writer
        self.upstream = upstream

    def write(self, data: bytes) -> None:
        if self.upstream.chunked:
            head, body = data.split(b"\r\n\r\n", 1)
            head = re.sub(rb"Content-Length: \d+", b"Transfer-Encoding: chunked", head)
            data = head + b"\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
def recording_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    """``test_server.stack`` builds its data centers from ``Upstream``: make them record."""
    monkeypatch.setattr(server_tests, "Upstream", Recording)


# -- helpers --------------------------------------------------------------------------------


async def response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One whole response (head, body) from ``reader``, delimited by its Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)\r\n", head)
    assert found is not None, head
    body = await asyncio.wait_for(reader.readexactly(int(found.group(1))), 5)
    return head, body


@asynccontextmanager
async def connection(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> tuple[bytes, bytes]:
    writer.write(data)
    await writer.drain()
    return await response(reader)


def with_target(data: bytes, target: bytes) -> bytes:
    return data.replace(b"POST /Recip-e/v4/Executor ", b"POST " + target + b" ", 1)


def counters(gw: RunningGateway) -> dict[str, Any]:
    assert gw.server.native is not None, "the native plane is not serving this gateway"
    return gw.server.native.counters()


async def metrics(gw: RunningGateway) -> bytes:
    answer = await raw(gw.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return answer


def metric(text: bytes, series: str) -> float | None:
    """The value of one series in a Prometheus exposition, None if absent."""
    found = re.search(re.escape(series.encode()) + rb" ([0-9.]+)\n", text)
    return None if found is None else float(found.group(1))


# -- 0. the plane is there where it should be ----------------------------------------------


def test_the_native_plane_is_built_where_ci_runs() -> None:
    """CI builds ``_plane``: a CI run without it would silently skip everything below."""
    if native.available():
        return
    if os.environ.get("CI"):
        pytest.fail("CI is set but garde.gateway._plane is not built: the native tests would skip")
    pytest.skip("the native data plane is not built here (not CI)")


# -- 1. differential: native and python serve the same bytes -------------------------------

SEQUENCE = [
    soap_post(BODY),
    with_target(soap_post(BODY), b"/Recip-e/v4/Executor?trace=1&lang=nl"),
    soap_post(
        BODY,
        extra=b"X-Correlation-Id: 7d3c-41\r\nGarde-Target-Group: pharmacists\r\n"
        b"Accept-Language: nl-BE\r\nX-Repeated: one\r\nX-Repeated: two\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nX-Empty:\r\n",
    ),
    soap_post(BODY, extra=b"Connection: close\r\n"),
]


async def _sequence(gw: RunningGateway, dc1: Recording, dc2: Recording) -> dict[str, object]:
    answers: list[bytes] = []
    async with connection(gw.port) as (reader, writer):
        for data in SEQUENCE:
            head, body = await exchange(reader, writer, data)
            answers.append(head + body)
        eof = await asyncio.wait_for(reader.read(1), 5)  # Connection: close was honoured
    dc1.status, dc1.body = 500, FAULT
    async with connection(gw.port) as (reader, writer):
        head, body = await exchange(reader, writer, soap_post(BODY))
        answers.append(head + body)
    gw.admin.snapshot()  # drains the plane
    return {
        "answers": answers,
        "eof": eof,
        "sent": dc1.sent(),
        "requests": [
            (m, u, [(k, v) for k, v in h.items() if k != b"host"], b) for m, u, h, b in dc1.requests
        ],
        "dc2": dc2.sent(),
        "attempts": dict(gw.gateway.metrics.attempts),
        "requests_total": dict(gw.gateway.metrics.requests),
        "native": None if gw.server.native is None else counters(gw),
    }


@needs_plane
def test_native_and_python_fast_paths_are_byte_identical(catalog: Catalog) -> None:
    """The same calls (plain, with a query, with end-to-end and garde headers, with
    Connection: close, answered by a SOAP Fault in HTTP 500) give the caller the same bytes
    and the data center the same bytes, whichever fast path serves them."""
    seen: dict[str, dict[str, object]] = {}

    for mode in ("native", "python"):

        async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream, mode: str = mode) -> None:
            assert isinstance(dc1, Recording) and isinstance(dc2, Recording)
            seen[mode] = await _sequence(gw, dc1, dc2)

        run(catalog, test, fast_path=mode)

    native_run, python_run = seen["native"], seen["python"]
    assert native_run["native"] is not None
    assert native_run["native"]["served"] == 5  # type: ignore[index]
    assert native_run["native"]["handed_over"] == 0  # type: ignore[index]
    assert python_run["native"] is None

    answers = native_run["answers"]
    assert isinstance(answers, list)
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 4 + [
        b"HTTP/1.1 500 Internal Server Error"
    ]
    assert b"Connection: close\r\n" in answers[3]
    assert answers[4].endswith(FAULT)
    assert native_run["eof"] == b""
    for i, (mine, theirs) in enumerate(
        zip(native_run["answers"], python_run["answers"], strict=True)  # type: ignore[call-overload]
    ):
        assert mine == theirs, f"answer {i} differs:\nnative {mine!r}\npython {theirs!r}"

    sent = native_run["sent"]
    assert isinstance(sent, bytes)
    for hop in (b"garde-target-group", b"keep-alive", b"proxy-authorization", b"connection"):
        assert hop not in sent.lower(), hop
    assert b"\r\nX-Empty: \r\n" in sent
    assert b"POST /Recip-e/v4/Executor?trace=1&lang=nl HTTP/1.1\r\n" in sent
    assert sent.count(b"X-Repeated: ") == 2
    assert native_run["requests"] == python_run["requests"]
    assert native_run["sent"] == python_run["sent"]
    assert native_run["dc2"] == python_run["dc2"] == b""

    # The Fault counts as the service answering: five good attempts, nothing failed.
    assert native_run["attempts"] == python_run["attempts"] == {(SERVICE, "dc1", "ok"): 5}
    assert native_run["requests_total"] == python_run["requests_total"]


@needs_plane
def test_header_values_reach_the_data_center_alike(catalog: Catalog) -> None:
    """Header values with surrounding blanks are forwarded byte for byte as the Python fast
    path forwards them (whatever the two agree on, they must agree)."""
    seen: dict[str, bytes] = {}
    request = soap_post(BODY, extra=b"X-Padded:   padded value  \r\nX-Tab:\tx\t\r\n")

    for mode in ("native", "python"):

        async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream, mode: str = mode) -> None:
            assert isinstance(dc1, Recording)
            async with connection(gw.port) as (reader, writer):
                for _ in range(2):  # the second one on Python's fast path too (idle connection)
                    head, _ = await exchange(reader, writer, request)
                    assert head.startswith(b"HTTP/1.1 200"), head
            seen[mode] = dc1.sent()

        run(catalog, test, fast_path=mode)

    padded = [re.findall(rb"X-Padded:[^\r]*\r\n", seen[m]) for m in ("native", "python")]
    assert padded[0] == padded[1], f"native sent {padded[0]!r}, python sent {padded[1]!r}"
    assert seen["native"] == seen["python"]


@needs_plane
def test_a_data_center_answering_chunked_is_asked_once_per_call(catalog: Catalog) -> None:
    """Answers with a chunked body are not relayed by the plane itself; still, each call
    reaches the data center once, as with the Python fast path (not once natively and again
    from Python)."""
    seen: dict[str, tuple[int, list[bytes]]] = {}

    for mode in ("native", "python"):

        async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream, mode: str = mode) -> None:
            assert isinstance(dc1, Recording)
            dc1.chunked = True
            answers = [await raw(gw.port, soap_post(BODY)) for _ in range(3)]  # 3 callers
            seen[mode] = (len(dc1.requests), answers)

        run(catalog, test, fast_path=mode)

    assert seen["native"][1] == seen["python"][1]
    assert all(a.startswith(b"HTTP/1.1 200") for a in seen["native"][1])
    calls = {mode: hits for mode, (hits, _) in seen.items()}
    assert calls == {"native": 3, "python": 3}, f"requests the data center received: {calls}"


# -- 2. hand-over: what the plane does not serve, Python does, on the same connection -------

CHUNKED = (
    b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
    b'SOAPAction: "' + RECIPE.encode() + b':getPrescriptionForExecutor"\r\n'
    b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"
)

ODD: dict[str, tuple[bytes, bytes, bool]] = {
    # case: (request, answer's status line starts with, whether it reaches the data center)
    "admin status": (
        b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"\r\n",
        b"HTTP/1.1 200",
        False,
    ),
    "unknown path": (with_target(soap_post(BODY), b"/Nowhere/v1"), b"HTTP/1.1 404", False),
    "malformed envelope": (
        soap_post(b"<not-an-envelope>hello</not-an-envelope>"),
        b"HTTP/1.1 400",
        False,
    ),
    "doctype": (
        soap_post(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>'
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soap:Body>&e;</soap:Body></soap:Envelope>"
        ),
        b"HTTP/1.1 400",
        False,
    ),
    "get": (
        b"GET /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"HTTP/1.1 405",
        False,
    ),
    "chunked": (CHUNKED, b"HTTP/1.1 200", True),
    "deadline": (soap_post(BODY, extra=b"Garde-Deadline: 5\r\n"), b"HTTP/1.1 200", True),
    "expect": (soap_post(BODY, extra=b"Expect: 100-continue\r\n"), b"HTTP/1.1 200", True),
}


@needs_plane
@pytest.mark.parametrize("case", list(ODD))
def test_what_the_plane_does_not_serve_is_handed_over_mid_connection(
    catalog: Catalog, case: str
) -> None:
    """A keep-alive connection first served natively, then sent something the plane does
    not serve, gets Python's answer to it, and Python goes on serving that connection."""
    odd, expected, reaches = ODD[case]

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert gw.server.native is not None  # fast_path: auto picks the plane
        async with connection(gw.port) as (reader, writer):
            head, _ = await exchange(reader, writer, soap_post(BODY))
            assert head.startswith(b"HTTP/1.1 200"), head
            before = counters(gw)
            assert before["served"] == 1
            head, body = await exchange(reader, writer, odd)
            assert head.startswith(expected), (head, body[:300])
            after = counters(gw)
            assert after["served"] == 1
            assert after["handed_over"] == before["handed_over"] + 1
            assert after["adopted"] == before["adopted"] + 1
            assert len(dc1.requests) == 1 + reaches
            if reaches:
                assert dc1.requests[-1][3] == BODY
            if case == "admin status":
                data = json.loads(body)
                assert data["services"][SERVICE]["data_center"] == "dc1"
            if case in ("malformed envelope", "doctype"):
                assert b"soap:Fault" in body
                return  # refused input: whether the connection stays open is Python's call
            # Python serves this connection from now on (the plane does not get it back).
            head, _ = await exchange(reader, writer, soap_post(BODY))
            assert head.startswith(b"HTTP/1.1 200"), head
            assert counters(gw)["served"] == 1
            assert len(dc1.requests) == 2 + reaches

    run(catalog, test)


@needs_plane
def test_pipelined_requests_across_a_hand_over_stay_in_order(catalog: Catalog) -> None:
    """Served natively, then a GET handed over with the request behind it already read:
    Python answers both, in order, after the plane's answer."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert isinstance(dc1, Recording)
        dc1.echo = True
        get = b"GET /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        async with connection(gw.port) as (reader, writer):
            writer.write(
                with_target(soap_post(BODY), b"/Recip-e/v4/Executor?n=1")
                + get
                + with_target(soap_post(BODY), b"/Recip-e/v4/Executor?n=3")
            )
            first, second, third = [await response(reader) for _ in range(3)]
        assert first[0].startswith(b"HTTP/1.1 200") and b"?n=1" in first[1]
        assert second[0].startswith(b"HTTP/1.1 405"), second
        assert third[0].startswith(b"HTTP/1.1 200") and b"?n=3" in third[1], third
        assert [u for _, u, _, _ in dc1.requests] == [
            b"/Recip-e/v4/Executor?n=1",
            b"/Recip-e/v4/Executor?n=3",
        ]
        assert counters(gw)["served"] == 1
        assert counters(gw)["handed_over"] == 1

    run(catalog, test)


# -- 3. failover: failures counted, handed to the general path, ejection republished --------


@needs_plane
def test_a_failing_data_center_is_left_and_then_ejected(catalog: Catalog) -> None:
    """dc1 answering 503: callers get dc2's answer; dc1's failures are in /metrics; once
    dc1 is ejected the plane itself sends the calls to dc2."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        dc1.status = 503
        upstreams = gw.gateway.upstreams[SERVICE]
        answers = 0
        async with connection(gw.port) as (reader, writer):
            head, _ = await exchange(reader, writer, soap_post(BODY))
            answers += 1
            assert head.startswith(b"HTTP/1.1 200"), head
            assert b"Garde-Data-Center: dc2\r\n" in head
        assert counters(gw)["handed_over"] == 1  # the failed attempt went to the general path
        text = await metrics(gw)
        failures = metric(
            text,
            f'garde_gateway_upstream_attempts_total{{service="{SERVICE}",'
            f'data_center="dc1",result="http_503"}}',
        )
        assert failures is not None and failures >= 1, text.decode()
        assert failures == len(dc1.requests)

        # Until dc1 is ejected (5 consecutive failures), every caller still gets dc2's answer.
        while upstreams.plan()[0].dc != "dc2":
            assert answers < 10, "dc1 was never ejected"
            answer = await raw(gw.port, soap_post(BODY))
            answers += 1
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
            assert b"Garde-Data-Center: dc2\r\n" in answer
        assert len(dc1.requests) >= 5
        text = await metrics(gw)
        assert metric(
            text,
            f'garde_gateway_upstream_attempts_total{{service="{SERVICE}",'
            f'data_center="dc1",result="http_503"}}',
        ) == len(dc1.requests)
        assert (
            metric(text, f'garde_gateway_breaker_open{{service="{SERVICE}",data_center="dc1"}}')
            == 1
        )

        # The new plan reaches the plane: it serves dc2 itself, dc1 hears nothing more.
        plane = gw.server.native
        assert plane is not None
        await until(lambda: not plane._publish_scheduled)
        before, dc1_before = counters(gw), len(dc1.requests)
        async with connection(gw.port) as (reader, writer):
            for _ in range(3):
                head, _ = await exchange(reader, writer, soap_post(BODY))
                assert head.startswith(b"HTTP/1.1 200"), head
                assert b"Garde-Data-Center: dc2\r\n" in head
        after = counters(gw)
        assert after["served"] == before["served"] + 3
        assert after["handed_over"] == before["handed_over"]
        assert len(dc1.requests) == dc1_before

    run(catalog, test)


@needs_plane
def test_a_data_center_refusing_connections_is_left_for_the_next(catalog: Catalog) -> None:
    """dc1 stopped (connection refused, or its idle connections reset): 200 from dc2,
    every time, with the refusals counted."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert (await raw(gw.port, soap_post(BODY))).startswith(b"HTTP/1.1 200")
        await dc1.stop()
        for _ in range(4):
            answer = await raw(gw.port, soap_post(BODY))
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
            assert b"Garde-Data-Center: dc2\r\n" in answer
        text = await metrics(gw)
        failed = sum(
            metric(
                text,
                f'garde_gateway_upstream_attempts_total{{service="{SERVICE}",'
                f'data_center="dc1",result="{result}"}}',
            )
            or 0
            for result in ("refused", "reset", "connect_error")
        )
        assert failed >= 1, text.decode()
        assert len(dc1.requests) == 1

    run(catalog, test)


@needs_plane
def test_a_server_error_that_is_not_a_fault_is_a_failure(catalog: Catalog) -> None:
    """HTTP 500 without a SOAP Fault in it: dc1 failed, the caller gets dc2's answer."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        dc1.status, dc1.body = 500, b"<html>Internal Server Error</html>"
        answer = await raw(gw.port, soap_post(BODY))
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b"Garde-Data-Center: dc2\r\n" in answer
        assert counters(gw)["served"] == 0
        assert counters(gw)["handed_over"] == 1
        text = await metrics(gw)
        failed = metric(
            text,
            f'garde_gateway_upstream_attempts_total{{service="{SERVICE}",'
            f'data_center="dc1",result="http_500"}}',
        )
        assert failed is not None and failed == len(dc1.requests) >= 1, text.decode()

    run(catalog, test)


@needs_plane
def test_a_data_center_too_slow_for_its_usual_pace_is_left(catalog: Catalog) -> None:
    """Once dc1 answered fast, an answer ten times slower is not waited for (0.25 s at
    least, ``min_try_timeout``): the plane gives up, counts a timeout, and dc2 answers."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert isinstance(dc1, Recording)
        assert (await raw(gw.port, soap_post(BODY))).startswith(b"HTTP/1.1 200")
        dc1.delay = 2.0
        started = asyncio.get_running_loop().time()
        answer = await raw(gw.port, soap_post(BODY))
        elapsed = asyncio.get_running_loop().time() - started
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b"Garde-Data-Center: dc2\r\n" in answer
        assert elapsed < 1.5, elapsed
        gw.admin.snapshot()
        attempts = gw.gateway.metrics.attempts
        assert attempts[(SERVICE, "dc1", "timeout")] >= 1, dict(attempts)
        assert attempts[(SERVICE, "dc2", "ok")] == 1

    run(catalog, test)


# -- 4. the wire: pipelining, partial reads, large bodies ------------------------------------


@needs_plane
def test_three_pipelined_requests_get_three_answers_in_order(catalog: Catalog) -> None:
    """Three calls in one write: the plane answers each, in order (the data center echoes
    the target), without handing anything over."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert isinstance(dc1, Recording)
        dc1.echo = True
        async with connection(gw.port) as (reader, writer):
            writer.write(
                b"".join(
                    with_target(soap_post(BODY), b"/Recip-e/v4/Executor?n=%d" % n)
                    for n in (1, 2, 3)
                )
            )
            bodies = [(await response(reader))[1] for _ in range(3)]
        assert [re.search(rb"\?n=(\d)", b).group(1) for b in bodies] == [b"1", b"2", b"3"]  # type: ignore[union-attr]
        assert counters(gw)["served"] == 3
        assert counters(gw)["handed_over"] == 0

    run(catalog, test)


@needs_plane
def test_a_request_arriving_in_pieces_is_served_natively(catalog: Catalog) -> None:
    """Head split mid-line, body in five writes with pauses: the plane waits for it all."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        data = soap_post(BODY)
        split = data.index(b"SOAPAction") + 4
        pieces = [data[:split]]
        rest = data[split:]
        step = len(rest) // 5 + 1
        pieces += [rest[i : i + step] for i in range(0, len(rest), step)]
        async with connection(gw.port) as (reader, writer):
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.02)  # let the plane read each piece on its own
            head, body = await response(reader)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert body == dc1.body
        assert [r[3] for r in dc1.requests] == [BODY]
        assert counters(gw)["served"] == 1
        assert counters(gw)["handed_over"] == 0

    run(catalog, test)


@needs_plane
def test_a_one_mebibyte_envelope_round_trips(catalog: Catalog) -> None:
    """1 MiB each way, natively, twice on one connection."""
    big = envelope(
        "GetPrescriptionForExecutorRequest", RECIPE, "<x:Rid>" + "A" * (1 << 20) + "</x:Rid>"
    )
    answer = (
        b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body><r>"
        + b"B" * (1 << 20)
        + b"</r></soap:Body></soap:Envelope>"
    )

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        dc1.body = answer
        async with connection(gw.port) as (reader, writer):
            for _ in range(2):  # and the connection is still good afterwards
                head, body = await exchange(reader, writer, soap_post(big))
                assert head.startswith(b"HTTP/1.1 200"), head
                assert b"Content-Length: %d\r\n" % len(answer) in head
                assert body == answer
        assert [r[3] for r in dc1.requests] == [big, big]
        assert counters(gw)["served"] == 2
        assert counters(gw)["handed_over"] == 0

    run(catalog, test)


# -- 5. a caller hanging up while its call is in flight --------------------------------------


@needs_plane
def test_a_caller_hanging_up_mid_call_harms_no_one(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer for a caller that left is counted and dropped; other callers, before and
    after, are served; nothing is logged as an error."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert isinstance(dc1, Recording)
        dc1.delay = 0.3
        _, gone = await asyncio.open_connection("127.0.0.1", gw.port)
        gone.write(soap_post(BODY))
        await gone.drain()
        await until(lambda: sum(len(r) for r in dc1.raw) >= len(BODY))
        gone.close()  # before dc1 answers
        await until(lambda: gw.server.native is not None and gw.server.native.plane.clients == 0)
        async with connection(gw.port) as (reader, writer):
            head, _ = await exchange(reader, writer, soap_post(BODY))
            assert head.startswith(b"HTTP/1.1 200"), head
            dc1.delay = 0.0
            head, _ = await exchange(reader, writer, soap_post(BODY))
            assert head.startswith(b"HTTP/1.1 200"), head
        assert len(dc1.requests) == 3
        await until(lambda: counters(gw)["served"] == 3)  # the one nobody read is counted
        assert counters(gw)["handed_over"] == 0
        gw.admin.snapshot()
        assert dict(gw.gateway.metrics.attempts) == {(SERVICE, "dc1", "ok"): 3}
        assert gw.gateway.upstreams[SERVICE].plan()[0].dc == "dc1"
        # Before the stack's teardown (which cancels the data centers' handlers).
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []

    with caplog.at_level(logging.WARNING):
        run(catalog, test)


# -- 6. metrics and status agree with what the plane served ----------------------------------


@needs_plane
def test_metrics_count_every_request_the_plane_served(catalog: Catalog) -> None:
    """After N calls served natively, /metrics and /_garde/status count exactly N."""
    n = 7

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        async with connection(gw.port) as (reader, writer):
            for _ in range(n):
                head, _ = await exchange(reader, writer, soap_post(BODY))
                assert head.startswith(b"HTTP/1.1 200"), head
        assert counters(gw)["served"] == n
        # No waiting for the periodic drain: the admin endpoint drains before it reports.
        text = await metrics(gw)
        assert metric(text, f'garde_gateway_requests_total{{{LABEL},outcome="forwarded"}}') == n
        assert (
            metric(
                text,
                f'garde_gateway_upstream_attempts_total{{service="{SERVICE}",'
                f'data_center="dc1",result="ok"}}',
            )
            == n
        )
        assert metric(text, f'garde_gateway_request_seconds_count{{service="{SERVICE}"}}') == n
        status = await raw(
            gw.port, b"GET /_garde/status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"\r\n"
        )
        data = json.loads(status.split(b"\r\n\r\n", 1)[1])
        assert data["gateway"]["retry_budget"]["requests_in_window"] == n
        assert data["services"][SERVICE]["data_center"] == "dc1"

    run(catalog, test)


# -- 7. stopping ----------------------------------------------------------------------------


@needs_plane
def test_stop_closes_idle_native_and_adopted_connections_promptly(catalog: Catalog) -> None:
    """Stopping with keep-alive callers connected, two held by the plane and one adopted
    by Python, takes well under two seconds and hangs up on all three."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        clients = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(3)]
        for reader, writer in clients:
            head, _ = await exchange(reader, writer, soap_post(BODY))
            assert head.startswith(b"HTTP/1.1 200"), head
        adopted = clients[0]  # served natively, then handed over: Python holds it now
        head, _ = await exchange(
            *adopted, b"GET /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        assert head.startswith(b"HTTP/1.1 405"), head
        before = counters(gw)
        assert {k: before[k] for k in ("accepted", "served", "handed_over", "adopted")} == {
            "accepted": 3,
            "served": 3,
            "handed_over": 1,
            "adopted": 1,
        }
        plane = gw.server.native
        assert plane is not None
        assert plane.plane.clients == 2  # the two the plane still holds, idle
        async with asyncio.timeout(2):
            await gw.stop()
        assert plane.plane.clients == 0
        for reader, writer in clients:
            assert await asyncio.wait_for(reader.read(1), 2) == b""
            writer.close()
        refused = await asyncio.gather(
            asyncio.open_connection("127.0.0.1", gw.port), return_exceptions=True
        )
        assert isinstance(refused[0], ConnectionRefusedError), refused

    run(catalog, test)


# -- 8. configuration ------------------------------------------------------------------------


def test_an_unknown_fast_path_is_refused_with_the_choices() -> None:
    with pytest.raises(UsageError) as refused:
        GatewayConfig(fast_path="bogus").check()
    message = str(refused.value)
    assert "auto, native, python, off" in message
    assert "'bogus'" in message


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_headers", 0), ("max_body", -1), ("max_header_bytes", "16k"), ("connect_timeout", 0)],
)
def test_limits_that_cannot_work_are_refused_with_the_fix(setting: str, value: object) -> None:
    with pytest.raises(UsageError, match=setting):
        GatewayConfig(**{setting: value}).check()  # type: ignore[arg-type]


def test_fast_path_booleans_mean_auto_and_off() -> None:
    assert GatewayConfig(fast_path=True).fast_path_mode() == "auto"
    assert GatewayConfig(fast_path=False).fast_path_mode() == "off"
    assert GatewayConfig().fast_path_mode() == "auto"
    GatewayConfig(fast_path=True).check()
    GatewayConfig(fast_path=False).check()


def test_native_with_full_validation_is_refused_and_auto_falls_back(catalog: Catalog) -> None:
    with pytest.raises(UsageError, match="xml_validation"):
        GatewayConfig(fast_path="native", xml_validation="full").check()
    GatewayConfig(fast_path="auto", xml_validation="full").check()

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        assert gw.server.native is None  # only Python parses every body
        assert (await raw(gw.port, soap_post(BODY))).startswith(b"HTTP/1.1 200")

    run(catalog, test, xml_validation="full")


@needs_plane
@pytest.mark.parametrize(("count", "native_serves"), [(20, True), (70, False)])
def test_many_allowed_hosts_are_checked_natively_up_to_the_plane_s_limit(
    catalog: Catalog, count: int, native_serves: bool
) -> None:
    """Up to ``MAX_ALLOWED_HOSTS`` (64) Host names the plane checks itself; beyond, ``auto``
    leaves the gateway to Python rather than failing to start."""
    hosts = ("127.0.0.1", *(f"workstation-{i}.pharmacy.local" for i in range(count - 1)))

    async def test(gw: RunningGateway, dc1: Recording, dc2: Recording) -> None:
        assert (gw.server.native is not None) is native_serves
        ok = await raw(gw.port, soap_post(BODY))
        assert ok.startswith(b"HTTP/1.1 200"), ok[:100]
        refused = await raw(gw.port, soap_post(BODY, host=b"evil.example"))
        assert refused.startswith(b"HTTP/1.1 421"), refused[:100]

    run(catalog, test, allowed_hosts=hosts)


# -- 9. found by review (ASan, valgrind, socket fuzzing): regressions -------------------------


class Hooked:
    """A data center that calls ``hook`` in the instant it writes each answer, so that the
    test's next move reaches the gateway in the same batch of events as that answer."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.hook: Any = None
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Hooked:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):  # 3.11's server.close() leaves connections open
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        pending = b""
        try:
            while data := await reader.read(65536):
                pending += data
                while b"\r\n\r\n" in pending:
                    head, rest = pending.split(b"\r\n\r\n", 1)
                    found = re.search(rb"(?i)content-length: *(\d+)", head)
                    length = int(found.group(1)) if found else 0
                    if len(rest) < length:
                        break
                    pending = rest[length:]
                    writer.write(self.answer)
                    if self.hook is not None:
                        self.hook()
        except ConnectionError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


@asynccontextmanager
async def gateway_for(
    catalog: Catalog, endpoints: dict[str, dict[str, str]], **config: Any
) -> AsyncIterator[RunningGateway]:
    """A gateway on loopback in front of ``endpoints`` (no health checks), stopped after."""
    settings = GatewayConfig(port=0, health_checks=False, **config)
    running = await RunningGateway(catalog.with_endpoints(endpoints), settings).start()
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def hooked_stack(
    catalog: Catalog, answer: bytes
) -> AsyncIterator[tuple[RunningGateway, Hooked]]:
    """dc1 is a ``Hooked`` data center, dc2 an ordinary one (where retries go)."""
    dc1 = await Hooked(answer).start()
    dc2 = await Upstream().start()
    endpoints = {
        SERVICE: {
            "dc1": f"http://127.0.0.1:{dc1.port}/Recip-e/v4/Executor",
            "dc2": f"http://127.0.0.1:{dc2.port}/Recip-e/v4/Executor",
        }
    }
    try:
        async with gateway_for(catalog, endpoints, fast_path="native") as running:
            yield running, dc1
    finally:
        await dc1.stop()
        await dc2.stop()


@needs_plane
@pytest.mark.parametrize(
    ("answer", "close"),
    [
        (b"HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\n", False),  # failed: handed over
        (b"HTTP/1.1 200 X\r\nContent-Length: 4\r\n\r\n<a/>", True),  # answered, closed
    ],
    ids=["failure-and-more-bytes", "close-and-more-bytes"],
)
def test_a_connection_ended_while_its_next_bytes_arrive_is_not_used_again(
    catalog: Catalog, answer: bytes, close: bool
) -> None:
    """The caller's next bytes arrive in the same batch of events as the answer that ends
    the plane's hold on its connection (a hand-over, or ``Connection: close``). Freed at
    once, the connection was read again after it was gone: a second close of a descriptor
    Python then owned, a client count gone negative, a caller never answered."""

    async def main() -> None:
        async with hooked_stack(catalog, answer) as (gw, dc1):
            request = soap_post(BODY, extra=b"Connection: close\r\n" if close else b"")
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
                dc1.hook = lambda writer=writer: writer.write(b"POST /Recipe")
                writer.write(request)
                try:
                    head, _ = await response(reader)
                except ConnectionResetError:
                    # Closing with the caller's next bytes unread resets the connection,
                    # which may overtake the answer (Python's server does the same).
                    assert close
                else:
                    assert head.startswith(b"HTTP/1.1 200"), head
                dc1.hook = None
                writer.close()
            await until(lambda: counters(gw)["clients"] == 0)
            assert counters(gw)["clients"] == 0
            dc1.answer = b"HTTP/1.1 200 X\r\nContent-Length: 4\r\n\r\n<a/>"
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            head, _ = await exchange(reader, writer, soap_post(BODY))
            assert head.startswith(b"HTTP/1.1 200"), head  # from dc2 if dc1 was ejected
            writer.close()

    asyncio.run(main())


@needs_plane
@pytest.mark.parametrize(
    "data",
    [
        b"POST /Recip-e/v4/Executor HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 1\n\nx",
        b"GET /_garde/health HTTP/1.1\nHost: 127.0.0.1\n\n",
        b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\n",
        b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\rX: y\r\n\r\n",
    ],
    ids=["bare-lf", "bare-lf-get", "bare-lf-blank-line", "bare-cr"],
)
def test_a_head_that_cannot_be_served_natively_is_answered_at_once(
    catalog: Catalog, data: bytes
) -> None:
    """A head with a bare LF or CR never ends the way the plane looks for: it goes to Python
    (which answers it) at once, instead of the caller waiting for an end that never comes."""

    async def test(gw: RunningGateway, dc1: Recording, dc2: Recording) -> None:
        answer = await raw(gw.port, data)
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]
        assert counters(gw)["handed_over"] >= 1

    run(catalog, test, fast_path="native")


@needs_plane
def test_trailing_whitespace_counts_against_the_header_limit(catalog: Catalog) -> None:
    """httptools gives a value with its trailing whitespace, and the Python server counts it
    against ``max_header_bytes``: so does the plane (it once counted the trimmed value and
    forwarded 60 KB of spaces)."""

    async def test(gw: RunningGateway, dc1: Recording, dc2: Recording) -> None:
        padded = soap_post(BODY, extra=b"X-Pad: a" + b" " * 20_000 + b"\r\n")
        answer = await raw(gw.port, padded)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert dc1.requests == []

    run(catalog, test, fast_path="native")
