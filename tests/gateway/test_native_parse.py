"""The native plane's parsers against the Python ones they stand in for (differential tests).

The plane reads untrusted bytes in C. Its rule is to recognise the common case strictly and
to give everything else to Python, so the properties are one-sided: whatever the plane
accepts, httptools (the Python server's parser) must read the same way, and the Python
server's own checks must accept too; the plane may decline anything. It must never crash,
whatever the bytes. The same code runs in the plane (``read_request`` and friends only
expose it).
"""

from __future__ import annotations

import os

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from garde.errors import RequestRejected
from garde.gateway import native
from garde.gateway.wire import HOP_BY_HOP, RESPONSE_SKIP
from garde.soap import check_envelope, first_body_child

if not native.available():
    if os.environ.get("CI"):
        pytest.fail("the native data plane was not built: CI must build it (make .venv)")
    pytest.skip(
        "the native data plane is not built here (needs Linux and gcc)", allow_module_level=True
    )

from garde.gateway import _plane

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Read:
    """What httptools reads from the same bytes."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = 0
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self.keep_alive: bool | None = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1
        # Asked here, as the server and the transport do: after the message the parser
        # has moved on.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()


def _httptools_request(data: bytes) -> tuple[_Read, httptools.HttpRequestParser] | None:
    read = _Read()
    parser = read.parser = httptools.HttpRequestParser(read)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        return None
    return read, parser


# -- requests ------------------------------------------------------------------------------
TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
    min_size=1,
    max_size=12,
)
VALUE = st.text('abc xyz/;="0123456789', max_size=16).map(str.encode) | st.binary(max_size=20).map(
    lambda b: bytes(c for c in b if c not in b"\r\n")
)
BENIGN = ["Content-Type", "SOAPAction", "soapaction", "Host", "User-Agent", "X-Request-Id"]
RISKY = [
    "Connection",
    "Content-Length",
    "Transfer-Encoding",
    "Expect",
    "Garde-Identity",
    "Garde-Deadline",
    "Garde-Target-Group",
    "Keep-Alive",
    "TE",
    "Upgrade",
]
NAMES = st.sampled_from(BENIGN * 6 + RISKY) | TOKEN
HEADER = st.tuples(
    NAMES.map(str.encode), VALUE, st.sampled_from([b": ", b": ", b": ", b":", b" : ", b":\t"])
)
ENVELOPE = b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><x/></s:Body></s:Envelope>"


def _mostly(usual: object, *others: object) -> st.SearchStrategy[object]:
    """``usual`` four times in five: requests close to the common case reach deep paths."""
    return st.sampled_from([usual] * 4 + list(others)) if others else st.just(usual)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(_mostly(b"POST", b"GET", b"post", b"PUT", b"CONNECT"))
    target = draw(
        _mostly(b"/Recip-e/v4/Executor", b"/a?b=c", b"http://x/y", b"/a b", b"/", b"*", b"/%41#f")
    )
    version = draw(_mostly(b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"http/1.1"))
    body = draw(st.sampled_from([ENVELOPE, b"", b"x" * 3]) | st.binary(max_size=40))
    headers = draw(st.lists(HEADER, max_size=8))
    length = draw(
        _mostly(b"%d" % len(body), b"+%d" % len(body), b" %d " % len(body), b"1" * 20, None)
    )
    eol = draw(_mostly(b"\r\n", b"\n"))
    lines = [method + b" " + target + b" " + version]  # type: ignore[operator]
    lines += [name + sep + value for name, value, sep in headers]
    if length is not None:
        lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: " + length)  # type: ignore[operator]
    data = eol.join(lines) + eol + eol + body  # type: ignore[attr-defined]
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # cut short: more to come
    return data


@st.composite
def clean_requests(draw: st.DrawFn) -> bytes:
    """Requests of the common case, varied where callers vary: names' case, header order,
    values, repeated SOAPAction, Connection, a query string."""
    names = st.sampled_from([*BENIGN, "Accept", "Garde-Target-Group", "Connection"]).map(
        lambda n: draw(st.sampled_from([n, n.lower(), n.upper()]))
    )
    values = st.text('abcdefghijklmnopqrstuvwxyz0123456789 /;=:"-_.', max_size=24)
    headers: list[tuple[str, str]] = draw(st.lists(st.tuples(names, values), max_size=6))
    headers = [
        (
            n,
            draw(st.sampled_from(["close", "keep-alive", "Keep-Alive"]))
            if n.lower() == "connection"
            else v,
        )
        for n, v in headers
    ]
    body = draw(st.sampled_from([ENVELOPE, b"x", b""]))
    headers.insert(draw(st.integers(0, len(headers))), ("Content-Length", str(len(body))))
    target = draw(st.sampled_from(["/Recip-e/v4/Executor", "/a", "/a?b=c&d=%20"]))
    spaces = st.sampled_from(["", " ", "  ", "\t"])
    head = f"POST {target} HTTP/1.1\r\n" + "".join(
        f"{n}:{draw(spaces)}{v}{draw(st.sampled_from(['', ' ']))}\r\n" for n, v in headers
    )
    return head.encode() + b"\r\n" + body + draw(st.sampled_from([b"", b"POST /next"]))


def _python_accepts(read: _Read, allowed: frozenset[bytes] | None) -> bool:
    """The checks app.py's server makes before the gateway sees a request."""
    seen: dict[bytes, int] = {}
    for name, _ in read.headers:
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
    if any(seen.get(name, 0) > 1 for name in (b"content-length", b"host", b"transfer-encoding")):
        return False
    if b"content-length" in seen and b"transfer-encoding" in seen:
        return False
    return not (allowed is not None and b"host" in seen)


@SETTINGS
@given(requests() | clean_requests())
@example(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
@example(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
@example(b"POST /a HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n")
@example(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc")
@example(b"POST /a HTTP/1.1\r\n Folded: x\r\nContent-Length: 0\r\n\r\n")
def test_what_the_plane_serves_httptools_reads_the_same(data: bytes) -> None:
    got = _plane.read_request(data)
    if got is None:
        # More bytes needed: the request is not complete for httptools either.
        parsed = _httptools_request(data)
        assert parsed is None or parsed[0].complete == 0
        return
    if got is False:
        return  # Python's to answer: always allowed
    parsed = _httptools_request(data[: got["length"]])
    assert parsed is not None, "the plane accepted what httptools refuses"
    read, parser = parsed
    assert read.complete == 1
    assert parser.get_method() == b"POST"
    assert read.url == got["target"]
    assert read.body == got["body"]
    assert read.keep_alive == got["keep_alive"]
    assert _python_accepts(read, None)
    forward = [
        (name, value)
        for name, value in read.headers
        if name.lower() not in HOP_BY_HOP and not name.lower().startswith(b"garde-")
    ]
    assert got["forward"] == forward
    actions = [value for name, value in read.headers if name.lower() == b"soapaction"]
    assert got["action"] == (actions[0] if actions else None)
    lowered = {name.lower() for name, _ in read.headers}
    assert not lowered & {
        b"transfer-encoding",
        b"expect",
        b"upgrade",
        b"garde-identity",
        b"garde-deadline",
    }


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_declined_without_harm(data: bytes) -> None:
    assert _plane.read_request(data) in (None, False) or isinstance(_plane.read_request(data), dict)
    assert _plane.read_response(data) in (None, False) or isinstance(
        _plane.read_response(data), dict
    )
    assert isinstance(_plane.envelope_refused(data), bool)


def test_limits_send_requests_to_python_which_refuses_them() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    assert _plane.read_request(head + b"A: b\r\nC: d\r\n\r\nabc", max_headers=2) is False
    assert (
        _plane.read_request(head + b"A: " + b"b" * 40 + b"\r\n\r\nabc", max_header_bytes=30)
        is False
    )
    assert _plane.read_request(head + b"\r\nabc", max_body=2) is False
    assert isinstance(_plane.read_request(head + b"\r\nabc", max_body=3), dict)
    # Headers that never end go to Python (which answers 431) rather than filling memory.
    assert (
        _plane.read_request(b"POST /a HTTP/1.1\r\nA: " + b"b" * 30000, max_header_bytes=16384)
        is False
    )
    assert (
        _plane.read_request(b"POST /a HTTP/1.1\r\nA: " + b"b" * 3000, max_header_bytes=16384)
        is None
    )


@pytest.mark.parametrize(
    ("host", "served"),
    [
        (b"127.0.0.1", True),
        (b"127.0.0.1:8480", True),
        (b"LOCALHOST:1", True),
        (b"[::1]:8480", True),
        (b"evil.example", False),
        (b"evil.example:80", False),
        (b"[::2]:80", False),
        (b"::1", True),
    ],
)
def test_only_allowed_hosts_are_served(host: bytes, served: bool) -> None:
    allowed = (b"127.0.0.1", b"localhost", b"[::1]", b"::1")
    data = b"POST /a HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 0\r\n\r\n"
    got = _plane.read_request(data, allowed_hosts=allowed)
    assert isinstance(got, dict) is served
    assert isinstance(_plane.read_request(data, allowed_hosts=None), dict)


# -- responses -----------------------------------------------------------------------------
@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bool]:
    """An answer as a data center may send it, and whether the connection closes after it."""
    status = draw(st.sampled_from([200] * 12 + [500, 503, 404, 100, 204, 304, 599, 0, 999]))
    body = draw(st.sampled_from([ENVELOPE, b"<soap:Fault>x</soap:Fault>", b"oops", b""]))
    plain = st.tuples(
        st.sampled_from([b"Content-Type", b"X-Id", b"Date", b"Server", b"Connection"]),
        st.sampled_from([b"text/xml", b"keep-alive", b"close", b"v "]),
        st.just(b": "),
    )
    headers = draw(st.lists(HEADER, max_size=6) | st.lists(plain, max_size=4))
    framing = draw(st.sampled_from(["length", "chunked", "close", "bad length", "both"]))
    lines = [draw(_mostly(b"HTTP/1.1 %d OK" % status, b"HTTP/1.1 %d" % status, b"HTTP/1.0 200 OK"))]
    lines += [name + sep + value for name, value, sep in headers]  # type: ignore[operator]
    if framing in ("length", "both"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing == "bad length":
        lines.append(b"Content-Length: x")
    if framing in ("chunked", "both"):
        lines.append(draw(_mostly(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip")))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        ext = draw(_mostly(b"", b";x=1", b" "))
        body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces if p)
        body += b"0\r\n" + draw(_mostly(b"", b"X-Trailer: 1\r\n")) + b"\r\n"
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body  # type: ignore[operator]
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data, draw(st.booleans())


@SETTINGS
@given(responses())
def test_what_the_plane_relays_httptools_reads_the_same(answer: tuple[bytes, bool]) -> None:
    data, eof = answer
    got = _plane.read_response(data, eof=eof)
    if not isinstance(got, dict):
        return  # more bytes needed, or Python's transport asks again
    assert isinstance(got["length"], int)
    read = _Read()
    parser = read.parser = httptools.HttpResponseParser(read)
    # Raises if the plane accepted what httptools refuses. The answer's own bytes only: what
    # follows is the next answer's (or, delimited by the close, nothing).
    parser.feed_data(data[: got["length"]])
    assert parser.get_status_code() == got["status"]
    assert read.body == got["body"]
    if read.complete:
        assert read.keep_alive == got["keep_alive"]
    else:
        # Delimited by the close: complete when the connection ends (the Python transport
        # takes the body then, in connection_lost), and never kept.
        assert eof
        assert got["keep_alive"] is False
    kept = [(n, v) for n, v in read.headers if n.lower() not in RESPONSE_SKIP]
    assert got["headers"] == kept


def test_chunked_and_close_delimited_answers_are_put_together() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    got = _plane.read_response(chunked + b"HTTP/1.1 200")
    assert isinstance(got, dict)
    assert (got["body"], got["length"], got["keep_alive"]) == (b"abcde", len(chunked), True)
    assert _plane.read_response(chunked[:-2]) is None
    trailers = chunked[:-2] + b"X-T: 1\r\n\r\n"
    assert _plane.read_response(trailers) is False  # httptools reports trailers as headers
    closed = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<a/>"
    assert _plane.read_response(closed) is None
    got = _plane.read_response(closed, eof=True)
    assert isinstance(got, dict)
    assert (got["body"], got["keep_alive"]) == (b"<a/>", False)


def test_server_failures_are_told_from_soap_faults() -> None:
    def answer(status: int, body: bytes) -> dict[str, object]:
        got = _plane.read_response(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
        )
        assert isinstance(got, dict)
        return got

    assert answer(500, b"<soap:Fault>no</soap:Fault>")["server_failure"] is False
    assert answer(500, b"internal error")["server_failure"] is True
    assert answer(503, b"<soap:Fault>no</soap:Fault>")["server_failure"] is True
    assert answer(404, b"nope")["server_failure"] is False


# -- envelopes -----------------------------------------------------------------------------
def _python_refuses(body: bytes) -> bool:
    try:
        check_envelope(body)
    except RequestRejected:
        return True
    return False


@SETTINGS
@given(
    st.binary(max_size=200)
    | st.builds(
        lambda a, d, b, c: a + d + b + c,
        st.sampled_from([b"", b" \n", b"\xef\xbb\xbf", b"<!DOCTYPE x>", b"x", b"\x00"]),
        st.sampled_from(
            [b"", b'<?xml version="1.0"?>', b"<?xml encoding='utf-7'?>", b"<?xml encoding=?>"]
            + [b'<?xml version="1.0" encoding="%s"?>' % e for e in (b"UTF-8", b"utf-16", b"x")]
        ),
        st.sampled_from([ENVELOPE, b"<Envelope>", b"<a>Body</a>", b"<!ENTITY e 'x'>" + ENVELOPE]),
        st.sampled_from([b"", b"  \r\n", b"<x/>", b"!" * 200]),
    )
)
def test_the_envelope_check_is_python_s(body: bytes) -> None:
    assert _plane.envelope_refused(body) is _python_refuses(body)


@pytest.mark.parametrize(
    "data",
    [
        b"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: h\r\nSOAPAction: a\r\nSOAPAction: b\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: text/xml; charset=utf-7\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: text/xml;charset\r\n"
        b"Content-Length: 0\r\n\r\n",
    ],
    ids=["no-host", "two-soapactions", "charset-utf7", "charset-without-value"],
)
def test_what_python_refuses_is_never_served_natively(data: bytes) -> None:
    """No Host, a repeated SOAPAction, a charset other than UTF-8: Python's to refuse."""
    assert _plane.read_request(data) is False


@pytest.mark.parametrize(
    ("declaration", "refused"),
    [
        (b'<?xml version="1.0"?>', False),
        (b'<?xml version="1.0" encoding="UTF-8"?>', False),
        (b"<?xml version='1.0' encoding = 'us-ascii'?>", False),
        (b'\xef\xbb\xbf<?xml version="1.0" encoding="utf8"?>', False),
        (b'<?xml version="1.0" encoding="UTF-7"?>', True),
        (b'<?xml version="1.0" encoding="utf-16"?>', True),
        (b'<?xml version="1.0" encoding=utf-8?>', True),
        (b'<?xml version="1.0" encoding="utf-8"', True),
        (b"\x00<\x00?", True),
    ],
)
def test_the_plane_checks_the_declared_encoding_as_python_does(
    declaration: bytes, refused: bool
) -> None:
    body = declaration + b"<s:Envelope><s:Body><a/></s:Body></s:Envelope>"
    assert _plane.envelope_refused(body) is refused
    try:
        check_envelope(body)
    except RequestRejected:
        assert refused
    else:
        assert not refused


_PIECES = [
    b"",
    b" ",
    b"\xef\xbb\xbf",
    b'<?xml version="1.0"?>',
    b"<?xml>",
    b"<s:Envelope xmlns:s='x'>",
    b"<Envelope>",
    b"<a:b:Envelope>",
    b"<s:Header>",
    b"</s:Header>",
    b"<s:Header/>",
    b"<s:Body>",
    b"<Body>",
    b"<s:Body/>",
    b'<s:Body a="x>y">',
    b"<s:Body a='1",
    b"<s:BodyX>",
    b"<s:Body\n>",
    b"<!-- c -->",
    b"<x:Get xmlns:x='u'>",
    b"<Get/>",
    b"<a:b:c>",
    b"</x:Get>",
    b"</s:Body>",
    b"</s:Envelope>",
    b"text",
]


@SETTINGS
@given(st.lists(st.sampled_from(_PIECES), max_size=10).map(b"".join) | st.binary(max_size=120))
@example(b"<s:Envelope><s:Body><x:Get/></s:Body></s:Envelope>")
@example(b"<s:Envelope><s:Header><s:Body><A/></s:Body></s:Header><s:Body><B/></s:Body>")
def test_the_body_s_first_element_is_read_as_python_reads_it(body: bytes) -> None:
    """The plane and the Python fast path take the same body for the same operation's."""
    assert _plane.first_body_child(body) == first_body_child(body)
