"""What an outside probe of the gateway found (issue 14), kept found: every family it tried,
on both data planes (the native one refuses itself or hands over to Python, which refuses:
the caller sees the same either way)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import pytest

from garde.catalog import Catalog
from garde.errors import UsageError
from garde.gateway import native
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from tests.gateway.doubles import RECIPE, envelope
from tests.gateway.test_server import BODY, raw, run, soap_post
from tests.gateway.upstream import Upstream

PLANES = [
    pytest.param(
        "native",
        marks=pytest.mark.skipif(
            not native.available(), reason="the native data plane is not built here"
        ),
    ),
    "python",
]

Test = Callable[[RunningGateway, Upstream, Upstream], Awaitable[None]]


@pytest.fixture(params=PLANES)
def plane(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def serve(catalog: Catalog, plane: str, test: Test, **config: object) -> None:
    """Run ``test`` against a gateway whose fast path is ``plane`` (native or python)."""
    run(catalog, test, fast_path=plane, **config)


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def untouched(*dcs: Upstream) -> None:
    for dc in dcs:
        assert dc.requests == [], dc.requests


ACTION = b'"' + RECIPE.encode() + b':getPrescriptionForExecutor"'
WRITE_ACTION = b'"' + RECIPE.encode() + b':markAsDelivered"'


# -- trailers ---------------------------------------------------------------------------


def test_chunked_trailer_fields_never_become_request_headers(belgium: Catalog, plane: str) -> None:
    """A trailer's second SOAPAction and any other field stay behind: the data center gets
    the head's headers only."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        request = (
            b"POST /Recip-e/v4/Executor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            b"SOAPAction: " + ACTION + b"\r\nTransfer-Encoding: chunked\r\n"
            b"Trailer: SOAPAction, X-Smuggled\r\n\r\n"
            + b"%x\r\n" % len(BODY)
            + BODY
            + b"\r\n0\r\nSOAPAction: "
            + WRITE_ACTION
            + b"\r\nX-Smuggled: yes\r\n\r\n"
        )
        answer = await raw(gw.port, request)
        assert status(answer) == 200, answer[:300]
        (_, _, headers, body) = dc1.requests[-1]
        assert body == BODY
        assert b"x-smuggled" not in headers
        assert headers[b"soapaction"] == ACTION

    serve(belgium, plane, test)


# -- SOAPAction: repeated ------------------------------------------------------------------


@pytest.mark.parametrize("second", [WRITE_ACTION, ACTION], ids=["different", "same"])
def test_a_repeated_soapaction_is_refused_naming_both(
    belgium: Catalog, plane: str, second: bytes
) -> None:
    """The gateway reads the first SOAPAction, a service may read the last: two are refused
    (400), the message quoting both, and nothing is forwarded."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        answer = await raw(gw.port, soap_post(BODY, extra=b"SOAPAction: " + second + b"\r\n"))
        assert status(answer) == 400, answer[:300]
        assert b"more than once" in answer
        assert second.strip(b'"') in answer
        untouched(dc1, dc2)

    serve(belgium, plane, test)


# -- Host -----------------------------------------------------------------------------------


def test_http_1_1_without_host_is_refused(belgium: Catalog, plane: str) -> None:
    """RFC 9112: an HTTP/1.1 request without Host is answered 400 and not forwarded."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        request = soap_post(BODY).replace(b"Host: 127.0.0.1\r\n", b"", 1)
        answer = await raw(gw.port, request)
        assert status(answer) == 400, answer[:300]
        assert b"Host" in answer
        untouched(dc1, dc2)

    serve(belgium, plane, test)


def test_http_1_0_without_host_is_still_served(belgium: Catalog, plane: str) -> None:
    """HTTP/1.0 has no Host requirement: such a call is still forwarded."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        request = (
            soap_post(BODY)
            .replace(b"Host: 127.0.0.1\r\n", b"", 1)
            .replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
        )
        answer = await raw(gw.port, request)
        assert status(answer) == 200, answer[:300]

    serve(belgium, plane, test)


# -- path spellings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix",
    [
        b"/../../admin",
        b"/%2e%2e/%2e%2e/admin",
        b"/..\\..\\admin",
        b"\\..\\admin",
        b"/..;/..;/admin",
        b"/.;/admin",
        b"/%252e%252e/%252e%252e/admin",
        b"/%255c/admin",
    ],
    ids=[
        "dots",
        "encoded",
        "backslash",
        "backslash-only",
        "matrix",
        "matrix-dot",
        "double",
        "double-backslash",
    ],
)
def test_every_dot_segment_spelling_is_refused(belgium: Catalog, plane: str, suffix: bytes) -> None:
    """``..\\``, ``..;/`` and ``%252e`` are refused as ``..`` and ``%2e`` are: nothing of them
    reaches a data center."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        request = soap_post(BODY).replace(
            b"POST /Recip-e/v4/Executor ", b"POST /Recip-e/v4/Executor" + suffix + b" ", 1
        )
        answer = await raw(gw.port, request)
        assert status(answer) in (400, 404), answer[:300]
        untouched(dc1, dc2)

    serve(belgium, plane, test)


# -- Expect ---------------------------------------------------------------------------------


async def _head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def _whole(reader: asyncio.StreamReader) -> bytes:
    head = await _head(reader)
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)\r\n", head)
    assert found is not None, head
    return head + await asyncio.wait_for(reader.readexactly(int(found.group(1))), 5)


def test_expect_100_continue_is_answered_before_the_body(belgium: Catalog, plane: str) -> None:
    """A caller that waits for 100 Continue gets it at once (not after its own timeout),
    then its answer; and again on the same connection."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        request = soap_post(BODY, extra=b"Expect: 100-continue\r\n")
        head, body = request.split(b"\r\n\r\n", 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        try:
            for _ in range(2):
                writer.write(head + b"\r\n\r\n")
                assert await _head(reader) == b"HTTP/1.1 100 Continue\r\n\r\n"
                writer.write(body)
                answer = await _whole(reader)
                assert status(answer) == 200, answer[:300]
        finally:
            writer.close()
        assert len(dc1.requests) == 2
        assert b"expect" not in dc1.requests[-1][2]

    serve(belgium, plane, test)


def test_expect_with_the_body_sent_at_once_is_answered(belgium: Catalog, plane: str) -> None:
    """A caller that does not wait for 100 Continue gets its answer (after an interim 100)."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        try:
            writer.write(soap_post(BODY, extra=b"Expect: 100-continue\r\n"))
            head = await _head(reader)
            if head == b"HTTP/1.1 100 Continue\r\n\r\n":
                head = await _head(reader)
            assert status(head) == 200, head
        finally:
            writer.close()

    serve(belgium, plane, test)


def test_expect_on_a_refused_request_gets_the_refusal_not_100(belgium: Catalog, plane: str) -> None:
    """A body the gateway will refuse by its declared length is not asked for."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        big = soap_post(b"x" * 5000, extra=b"Expect: 100-continue\r\n").split(b"\r\n\r\n")[0]
        answer = await raw(gw.port, big + b"\r\n\r\n")
        assert status(answer) == 413, answer[:300]

    serve(belgium, plane, test, max_body=1000)


# -- encodings ------------------------------------------------------------------------------

DTD = (
    '<!DOCTYPE lolz [<!ENTITY x SYSTEM "file:///etc/passwd">'
    '<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
)
ENVELOPE = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    f'<x:GetPrescriptionForExecutorRequest xmlns:x="{RECIPE}"><x:Rid>&x;&lol2;</x:Rid>'
    "</x:GetPrescriptionForExecutorRequest></soap:Body></soap:Envelope>"
)


def _utf7(text: str) -> bytes:
    """UTF-7 with every "<" and "!" encoded, as the probe sent it (past a bytes check)."""
    return text.replace("<!", "+ADwAIQ-").encode("utf-7")


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="UTF-7"?>' + _utf7(DTD + ENVELOPE),
        b'<?xml version="1.0" encoding="UTF-7"?>' + _utf7(ENVELOPE),
        ('<?xml version="1.0" encoding="UTF-16"?>' + DTD + ENVELOPE).encode("utf-16"),
        ("\ufeff" + DTD + ENVELOPE).encode("utf-16-le"),
        (DTD + ENVELOPE).encode("utf-16-be"),
        ('<?xml version="1.0"?>' + DTD + ENVELOPE).encode("utf-32"),
        b"<?xml version='1.0' encoding='iso-8859-1'?>" + ENVELOPE.encode(),
        b'<?xml version="1.0" encoding = "ebcdic-cp-us"?>' + ENVELOPE.encode(),
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-7"?>' + _utf7(ENVELOPE),
        b'  <?xml version="1.0" encoding="utf-7"?>' + _utf7(ENVELOPE),
    ],
    ids=[
        "utf7-dtd",
        "utf7",
        "utf16-declared",
        "utf16-bom",
        "utf16-no-bom",
        "utf32",
        "latin1",
        "ebcdic",
        "bom-then-utf7",
        "space-then-utf7",
    ],
)
def test_a_body_in_another_encoding_than_utf8_is_refused(
    belgium: Catalog, plane: str, body: bytes
) -> None:
    """A DTD hidden by its encoding never reaches a data center: bodies not in UTF-8 are
    refused (415 naming the encoding and the fix) whatever operation they call."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        for request in (
            soap_post(body),  # identified by its SOAPAction: the fast paths' case
            soap_post(body).replace(ACTION, b'""'),  # by its body: parsed
        ):
            answer = await raw(gw.port, request)
            assert status(answer) in (400, 415), answer[:300]
            if status(answer) == 415:
                assert b"UTF-8" in answer
        untouched(dc1, dc2)

    serve(belgium, plane, test)


@pytest.mark.parametrize("charset", [b"utf-7", b'"UTF-16"', b"iso-8859-1", b""])
def test_a_content_type_naming_another_charset_is_refused(
    belgium: Catalog, plane: str, charset: bytes
) -> None:
    """A data center may decode the body by the Content-Type's charset: other than UTF-8,
    it is refused (415) before anything is forwarded."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        request = soap_post(BODY).replace(
            b"Content-Type: text/xml\r\n", b"Content-Type: text/xml; charset=" + charset + b"\r\n"
        )
        answer = await raw(gw.port, request)
        assert status(answer) == 415, answer[:300]
        assert b"charset" in answer
        untouched(dc1, dc2)

    serve(belgium, plane, test)


@pytest.mark.parametrize(
    ("declaration", "content_type"),
    [
        (b'<?xml version="1.0" encoding="UTF-8"?>', b"text/xml; charset=utf-8"),
        (b"<?xml version='1.0' encoding='utf-8'?>", b'text/xml; charset="UTF-8"'),
        (b'\xef\xbb\xbf<?xml version="1.0"?>', b"text/xml;charset=us-ascii"),
        (b"", b"application/soap+xml; charset=utf-8; action=x"),
    ],
    ids=["declared", "quoted", "bom", "none"],
)
def test_utf8_bodies_however_declared_are_forwarded(
    belgium: Catalog, plane: str, declaration: bytes, content_type: bytes
) -> None:
    """UTF-8 however it is said (or not said) is served as before."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        body = declaration + BODY.split(b"?>", 1)[1]
        request = soap_post(body).replace(
            b"Content-Type: text/xml\r\n", b"Content-Type: " + content_type + b"\r\n"
        )
        answer = await raw(gw.port, request)
        assert status(answer) == 200, answer[:300]
        assert dc1.requests[-1][3] == body

    serve(belgium, plane, test)


# -- SOAPAction against the body ------------------------------------------------------------

WRITE_BODY = envelope("MarkAsDeliveredRequest", RECIPE, "<x:Rid>BEP0ABCDEFGH</x:Rid>")


@pytest.mark.parametrize(
    ("action", "body", "named", "found"),
    [
        (ACTION, WRITE_BODY, b"getPrescriptionForExecutor", b"markAsDelivered"),
        (WRITE_ACTION, BODY, b"markAsDelivered", b"getPrescriptionForExecutor"),
        (
            ACTION.strip(b'"'),
            WRITE_BODY.replace(
                b"<soap:Header></soap:Header>", b"<soap:Header><!-- x --></soap:Header>"
            ),
            b"getPrescriptionForExecutor",
            b"markAsDelivered",
        ),
        (
            ACTION,
            WRITE_BODY.replace(
                b"<soap:Header></soap:Header>",
                b"<soap:Header><soap:Body><y:GetPrescriptionForExecutorRequest xmlns:y='"
                + RECIPE.encode()
                + b"'/></soap:Body></soap:Header>",
            ),
            b"getPrescriptionForExecutor",
            b"markAsDelivered",
        ),
    ],
    ids=["write-under-read", "read-under-write", "behind-a-comment", "decoy-in-header"],
)
def test_a_body_of_another_operation_than_the_soapaction_s_is_refused(
    belgium: Catalog, plane: str, action: bytes, body: bytes, named: bytes, found: bytes
) -> None:
    """A markAsDelivered body under getPrescriptionForExecutor's SOAPAction was retried as a
    read, and applied twice: now a 400 that says which operation each one names."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        answer = await raw(gw.port, soap_post(body).replace(ACTION, action, 1))
        assert status(answer) == 400, answer[:400]
        assert b"SOAPAction names " + named in answer
        assert b"is " + found in answer
        untouched(dc1, dc2)

    serve(belgium, plane, test)


@pytest.mark.parametrize(
    "body",
    [
        BODY,
        BODY.replace(b"<soap:Body>", b"<soap:Body><!-- the read -->"),
        BODY.replace(b"x:GetPrescriptionForExecutorRequest", b"x:SomethingTheCatalogLacks"),
    ],
    ids=["plain", "comment", "unknown-element"],
)
def test_a_body_that_agrees_with_its_soapaction_is_served(
    belgium: Catalog, plane: str, body: bytes
) -> None:
    """The action's own body, or an element the catalog does not know (the service's parser
    has the last word on it), is forwarded as before."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        answer = await raw(gw.port, soap_post(body))
        assert status(answer) == 200, answer[:400]
        assert dc1.requests[-1][3] == body

    serve(belgium, plane, test)


def test_an_empty_or_absent_soapaction_still_routes_by_the_body(
    belgium: Catalog, plane: str
) -> None:
    """Operations found by their body element alone (SOAPAction "" or none) are served."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        for request in (
            soap_post(BODY).replace(ACTION, b'""'),
            soap_post(BODY).replace(b"SOAPAction: " + ACTION + b"\r\n", b""),
        ):
            answer = await raw(gw.port, request)
            assert status(answer) == 200, answer[:400]
        assert len(dc1.requests) == 2

    serve(belgium, plane, test)


# -- slow and idle clients, and the cap on connections ------------------------------------

QUICK = {"client_header_timeout": 0.3, "client_idle_timeout": 0.3}


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the gateway sends before it closes the connection; fails after ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


def test_an_idle_connection_is_closed(belgium: Catalog, plane: str) -> None:
    """A connection that never sends a request, or goes quiet after its answers, is closed
    after client_idle_timeout."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        assert await _closed_within(reader, 5) == b""
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(soap_post(BODY))
        assert status(await _whole(reader)) == 200
        assert await _closed_within(reader, 5) == b""
        writer.close()

    serve(belgium, plane, test, **QUICK)


@pytest.mark.parametrize("stop_after", [b"POST /Recip-e/v4/Exec", b"\r\n\r\n<?xml"])
def test_a_request_that_stops_arriving_is_closed(
    belgium: Catalog, plane: str, stop_after: bytes
) -> None:
    """Slowloris: a head that never ends is closed after client_header_timeout (the idle
    timeout is long here), and a body that stops arriving after client_idle_timeout."""
    request = soap_post(BODY)
    partial = request[: request.index(stop_after) + len(stop_after)]
    config = (
        {"client_header_timeout": 0.3, "client_idle_timeout": 60.0}
        if stop_after.startswith(b"POST")
        else {"client_header_timeout": 60.0, "client_idle_timeout": 0.3}
    )

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(partial)
        assert await _closed_within(reader, 5) == b""
        writer.close()
        untouched(dc1, dc2)

    serve(belgium, plane, test, **config)


def test_a_request_is_served_while_max_clients_are_held(
    belgium: Catalog, plane: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At max_clients, a new caller is still served: the connection waiting longest for its
    caller makes room, and the log says the cap was reached."""

    async def test(gw: RunningGateway, dc1: Upstream, dc2: Upstream) -> None:
        held = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(4)]
        for attempt in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(soap_post(BODY))
            assert status(await _whole(reader)) == 200, attempt
            held.append((reader, writer))
        closed = 0
        for reader, _ in held[:3]:
            closed += await _closed_within(reader, 5) == b""
        assert closed == 3
        async with asyncio.timeout(5):
            while "max_clients (4) reached" not in caplog.text:
                await asyncio.sleep(0.01)
        for _, writer in held:
            writer.close()

    with caplog.at_level(logging.WARNING, logger="garde.gateway"):
        serve(belgium, plane, test, max_clients=4)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("client_header_timeout", 0), ("client_idle_timeout", -1), ("max_clients", 0)],
)
def test_client_limits_that_cannot_work_are_refused(setting: str, value: object) -> None:
    with pytest.raises(UsageError, match=setting):
        GatewayConfig(**{setting: value}).check()  # type: ignore[arg-type]
