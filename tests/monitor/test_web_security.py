"""What an outside probe of the monitor found, as regression tests on loopback: uploads
refused before they are read, security headers on every answer, an Atom feed whose ids and
links do not come from the request's Host header."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree
from starlette.testclient import TestClient

from garde.catalog import Catalog
from garde.monitor.alerts import Notifier
from garde.monitor.clock import ManualClock
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.web.app import MAX_BODY, create_app
from tests.monitor.running import monitor_in_thread

ATOM = {"a": "http://www.w3.org/2005/Atom"}
TOKEN = "ghent-token"
BIG = 48 << 20


@pytest.fixture
def monitor(belgium: Catalog, tmp_path: Path) -> Iterator[Monitor]:
    store = SqliteStore(tmp_path / "m.sqlite")
    mon = Monitor(
        belgium,
        store,
        notifier=Notifier(),
        probe_locally=False,
        push_tokens={"ghent": TOKEN},
    )
    store.open_incident("sts", "IAM Secure Token Service: outage", "major", time.time() - 60)
    yield mon
    store.close()


def _answer(sock: socket.socket, deadline: float = 5.0) -> tuple[int, bytes]:
    """Status and raw answer, read until the server closes or the answer is complete."""
    sock.settimeout(deadline)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    while length and len(rest) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split()[1]), rest


def _upload(url: str, headers: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.sendall(
        f"POST /api/v1/results HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\n{headers}\r\n".encode()
    )
    return sock


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (f"Content-Length: {BIG}\r\n", 401),
        (f"Content-Length: {BIG}\r\nAuthorization: Bearer wrong\r\n", 401),
        ("Transfer-Encoding: chunked\r\n", 401),
        (f"Content-Length: {BIG}\r\nAuthorization: Bearer {TOKEN}\r\n", 413),
    ],
    ids=["no-token", "wrong-token", "chunked-no-token", "declared-too-large"],
)
def test_a_large_upload_is_refused_before_its_body_is_sent(
    monitor: Monitor, headers: str, status: int
) -> None:
    """48 MiB announced, not one byte of body sent: the answer comes anyway, so the monitor
    decided from the headers alone (it used to read the whole body first)."""
    with monitor_in_thread(monitor) as url, _upload(url, headers) as sock:
        code, body = _answer(sock)
    assert code == status, body
    assert b'"error"' in body


def test_a_chunked_upload_is_cut_at_the_limit(monitor: Monitor) -> None:
    """An authenticated chunked body gets its 413 once over the limit, not at its end."""
    chunk = b"x" * (1 << 20)
    sent = 0
    with (
        monitor_in_thread(monitor) as url,
        _upload(url, f"Transfer-Encoding: chunked\r\nAuthorization: Bearer {TOKEN}\r\n") as sock,
    ):
        try:
            while sent < BIG:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass  # the monitor answered and closed: the rest is refused
        code, body = _answer(sock)
    assert code == 413, body
    assert b"over the limit" in body
    # What was sent past the limit sits in socket buffers (a few MiB on loopback at most).
    assert MAX_BODY <= sent <= MAX_BODY + (16 << 20), f"the monitor read {sent} bytes"


def test_every_answer_has_the_security_headers(monitor: Monitor) -> None:
    c = TestClient(create_app(monitor))
    for path in ("/", "/api/v1/status", "/feed.atom", "/metrics", "/nowhere"):
        response = c.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy, path
        assert "frame-ancestors 'none'" in policy, path
        assert "script-src" not in policy and "unsafe-inline" not in policy, path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
    refused = c.post("/api/v1/results", content=b"{}")
    assert refused.status_code == 401
    assert refused.headers["x-frame-options"] == "DENY"


def test_the_policy_allows_the_page_own_style_and_nothing_else(monitor: Monitor) -> None:
    """The hash in the policy is the one of the style the page carries: a browser applies it."""
    page = TestClient(create_app(monitor)).get("/")
    style = re.search(r"<style>(.*?)</style>", page.text, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and " style=" not in page.text


def _feed_urls(content: bytes) -> list[str]:
    root = etree.fromstring(content)
    ids = root.xpath("//a:id/text()", namespaces=ATOM)
    links = root.xpath("//a:link/@href", namespaces=ATOM)
    return [str(v) for v in [*ids, *links]]


def _get(url: str, path: str, host: str) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        code, body = _answer(sock)
    assert code == 200
    return body


def test_the_feed_ignores_the_host_header(monitor: Monitor) -> None:
    """Without --public-url: the address the monitor listens on, whatever Host says."""
    with monitor_in_thread(monitor) as url:
        urls = _feed_urls(_get(url, "/feed.atom", "evil.example"))
    assert len(urls) >= 4  # the feed's id, its two links, the incident's id and link
    assert all(u.startswith(url + "/") for u in urls), urls


def test_the_feed_uses_the_public_url(monitor: Monitor) -> None:
    public = "https://status.example.org/garde"
    with monitor_in_thread(monitor, public_url=public) as url:
        urls = _feed_urls(_get(url, "/feed.atom", "evil.example"))
    assert all(u.startswith(public + "/") for u in urls), urls
    assert public + "/feed.atom" in urls


def test_public_url_must_be_a_base_url(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from garde.cli import cli

    db = tmp_path / "m.sqlite"
    result = CliRunner().invoke(
        cli, ["monitor", "--db", f"sqlite:///{db}", "--public-url", "status.example.org"]
    )
    assert result.exit_code != 0
    assert "--public-url: expected an http(s) base URL" in str(result.exception)
    assert not db.exists()


def test_an_operator_write_is_bounded_too(belgium: Catalog, tmp_path: Path) -> None:
    mon = Monitor(
        belgium,
        SqliteStore(tmp_path / "m.sqlite"),
        clock=ManualClock(),
        notifier=Notifier(),
        probe_locally=False,
    )
    c = TestClient(create_app(mon, admin_token="admin"))
    auth = {"Authorization": "Bearer admin"}
    too_big = c.post("/api/v1/maintenance", content=b"x" * (65 << 10), headers=auth)
    assert too_big.status_code == 413
    assert c.post("/api/v1/maintenance", content=b"x" * (65 << 10)).status_code == 401
