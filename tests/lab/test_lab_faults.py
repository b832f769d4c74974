"""Each fault kind, as a client of the proxied endpoint sees it."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest

from garde import soap
from garde.errors import UsageError
from garde.lab import Lab, make_fault
from tests.lab.labkit import PATIENT, Client
from tests.polling import wait_for


@pytest.fixture(params=["asyncio", "uvloop", "asyncio-tcp"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _connection(lab: Lab, service: str = "insurability", dc: str = "dc1", timeout: float = 5.0):
    parts = urlsplit(lab.endpoints[service][dc])
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), parts.path


def _wsdl(lab: Lab, service: str = "insurability", dc: str = "dc1", timeout: float = 5.0) -> bytes:
    conn, path = _connection(lab, service, dc, timeout)
    try:
        conn.request("GET", path + "?wsdl")
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


def _refused(lab: Lab, service: str = "insurability", dc: str = "dc1") -> bool:
    try:
        _wsdl(lab, service, dc, timeout=1)
    except ConnectionRefusedError:
        return True
    except (OSError, http.client.HTTPException):
        return False  # e.g. cut by a flap going down mid-request: neither refused nor served
    return False


def _serves(lab: Lab, service: str = "insurability", dc: str = "dc1") -> bool:
    try:
        return bool(_wsdl(lab, service, dc, timeout=1))
    except (OSError, http.client.HTTPException):
        return False


def test_down_refuses_connections_in_that_dc_only(lab: Lab, client: Client) -> None:
    lab.faults.set("insurability", "dc1", "down")
    assert _refused(lab)
    assert client.call("insurability", "getInsurability", {"Ssin": PATIENT}, dc="dc2").ok
    assert lab.faults.heal("insurability", "dc1") == 1
    assert _wsdl(lab).startswith(b"<?xml")


def test_down_cuts_open_keep_alive_connections(lab: Lab) -> None:
    conn, path = _connection(lab)
    conn.request("GET", path + "?wsdl")
    conn.getresponse().read()
    lab.faults.set("insurability", "dc1", "down")

    def again() -> None:
        conn.request("GET", path + "?wsdl")
        conn.getresponse().read()

    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, OSError)):
        again()
    conn.close()


def test_blackhole_accepts_and_never_answers(lab: Lab) -> None:
    lab.faults.set("insurability", "dc1", "blackhole")
    with pytest.raises(TimeoutError):
        _wsdl(lab, timeout=0.3)
    lab.faults.heal()
    assert _wsdl(lab)


def test_latency_delays_each_request(lab: Lab) -> None:
    lab.faults.set("insurability", "dc1", "latency", latency="200ms", jitter="20ms")
    started = time.monotonic()
    _wsdl(lab)
    assert time.monotonic() - started >= 0.18


def test_errors_hit_roughly_the_set_share_of_requests(lab: Lab) -> None:
    lab.faults.set("insurability", "dc1", "errors", rate=0.3, status="503", seed=11)
    conn, path = _connection(lab)
    statuses = []
    for _ in range(300):
        conn.request("GET", path + "?wsdl")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    failed = statuses.count(503)
    assert set(statuses) == {200, 503}
    assert 60 <= failed <= 120, failed  # 30% of 300 is 90; the seed makes it reproducible


def test_errors_as_soap_server_faults(lab: Lab, client: Client) -> None:
    lab.faults.set("insurability", "dc1", "errors", rate=1, status="soap")
    answer = client.call("insurability", "getInsurability", {"Ssin": PATIENT})
    assert answer.status == 500
    assert answer.fault is not None
    assert answer.fault.is_server
    assert not answer.fault.is_business


def test_reset_cuts_the_answer_midway(lab: Lab) -> None:
    lab.faults.set("insurability", "dc1", "reset", after=40)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        _wsdl(lab)


def test_slow_limits_the_bandwidth(lab: Lab) -> None:
    size = len(_wsdl(lab))
    bandwidth = size * 2  # the answer should take about half a second
    lab.faults.set("insurability", "dc1", "slow", bandwidth=bandwidth)
    started = time.monotonic()
    assert len(_wsdl(lab)) == size
    assert time.monotonic() - started >= 0.4


def test_flap_alternates_down_and_up(lab: Lab) -> None:
    lab.faults.set("insurability", "dc1", "flap", period="300ms")
    wait_for(lambda: _refused(lab), 5, "the fault to apply")
    wait_for(lambda: _serves(lab), 5, "the data center to serve again")
    wait_for(lambda: _refused(lab), 5, "the fault to apply")


def test_a_timed_fault_heals_itself(lab: Lab) -> None:
    lab.faults.set("insurability", "dc1", "down", for_="1s")
    assert _refused(lab)
    wait_for(lambda: _serves(lab), 5, "the data center to serve again")
    assert lab.faults.active("insurability", "dc1") == []


def test_faults_are_listed_in_status(lab: Lab) -> None:
    lab.faults.set("recipe-executor", "dc2", "latency", latency="1s", for_="1m")
    entry = next(s for s in lab.status() if (s["service"], s["dc"]) == ("recipe-executor", "dc2"))
    assert entry["faults"] == [{"kind": "latency", "latency": "1s", "jitter": "0s", "for": "1m"}]
    assert entry["url"].endswith("/Recip-e/v4/Executor")


def test_heal_by_service_and_kind(lab: Lab) -> None:
    lab.faults.set("sts", "dc1", "down")
    lab.faults.set("sts", "dc2", "latency", latency="10ms")
    lab.faults.set("hub", "dc1", "down")
    assert lab.faults.heal("sts", kind="latency") == 1
    assert lab.faults.heal("sts") == 1
    assert lab.faults.heal() == 1


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("explode", {}, "unknown fault kind"),
        ("latency", {}, "latency needs latency"),
        ("latency", {"latency": "soon"}, "expected a number of seconds"),
        ("errors", {"rate": 2}, "between 0 and 1"),
        ("errors", {"status": "418"}, "status must be one of"),
        ("down", {"rate": 0.5}, "does not take rate"),
        ("slow", {}, "bandwidth"),
    ],
)
def test_bad_fault_requests_say_what_to_fix(
    kind: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        make_fault(kind, options)


def test_unknown_target_is_named(lab: Lab) -> None:
    with pytest.raises(UsageError, match="has no data center 'dc3'"):
        lab.faults.set("hub", "dc3", "down")
    with pytest.raises(UsageError, match="unknown service"):
        lab.faults.set("nope", "dc1", "down")


def test_no_fault_is_a_transparent_relay(lab: Lab) -> None:
    """Many requests on one keep-alive connection, byte-identical to the simulator's answer."""
    conn, path = _connection(lab)
    body = soap.build_envelope(None)
    for _ in range(50):
        conn.request("POST", path, body, {"Content-Type": soap.CONTENT_TYPE})
        response = conn.getresponse()
        assert response.status == 500
        assert b"unknown operation" in response.read()
    conn.close()
    # A raw socket sees the same: the proxy adds nothing.
    parts = urlsplit(lab.endpoints["insurability"]["dc1"])
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"GET {parts.path}?wsdl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_fault_set_on_an_open_connection_applies_from_its_next_request(lab: Lab) -> None:
    """Set and healed between the requests of one keep-alive connection, a fault hits exactly
    the requests sent while it is set."""
    parts = urlsplit(lab.endpoints["insurability"]["dc1"])
    request = f"GET {parts.path}?wsdl HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    def status(sock: socket.socket) -> int:
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        return response.status

    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        assert status(sock) == 200
        lab.faults.set("insurability", "dc1", "errors", rate=1, status="503")
        sock.sendall(request)
        assert status(sock) == 503
        sock.sendall(request)
        assert status(sock) == 503
        lab.faults.heal()
        sock.sendall(request)
        assert status(sock) == 200


class _Sink:
    """The client side of a proxied connection, as a transport that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def test_a_request_begun_before_a_fault_is_set_is_served() -> None:
    """A fault set while a request is half received applies from the next request on, also
    when the proxy leaves delimiting requests to its in-memory simulator."""
    from garde.lab.http import HttpServer, Response
    from garde.lab.proxy import ClientSide, LinkProxy

    async def scenario() -> list[bytes]:
        server = HttpServer(lambda request: Response(200, b"served"))
        target = LinkProxy("s", "dc1", "127.0.0.1", 0, ("127.0.0.1", 9), link=server.make_protocol)
        await target.start()
        sink = _Sink()
        client = ClientSide(target)
        client.connection_made(sink)  # type: ignore[arg-type]
        request = b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n"
        client.data_received(request)
        client.data_received(request[:-2])
        target.set(make_fault("errors", {"rate": 1, "status": "503"}))
        client.data_received(request[-2:])
        client.data_received(request)
        target.heal()
        client.data_received(request)
        client.connection_lost(None)
        await target.stop()
        return [answer.split(b" ", 2)[1] for answer in sink.sent]

    assert asyncio.run(scenario()) == [b"200", b"200", b"503", b"200"]
