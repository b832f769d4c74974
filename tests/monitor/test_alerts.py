"""Alert channels: HMAC-signed webhooks and apprise, against loopback receivers."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from garde.monitor.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AppriseChannel,
    Notifier,
    WebhookChannel,
    sign,
    verify,
)
from garde.monitor.incidents import Event, EventKind
from garde.monitor.store.base import Incident, IncidentState
from tests.monitor.loopback import serve

INCIDENT = Incident(
    7,
    "sts",
    "IAM Secure Token Service: outage",
    "major",
    IncidentState.OPEN,
    1_800_000_000.0,
    None,
    ("recipe-executor",),
    ("pharmacist",),
)


def event(kind: EventKind = EventKind.OPENED, muted: bool = False) -> Event:
    return Event(kind, INCIDENT, INCIDENT.title, 1_800_000_010.0, muted=muted)


def test_signature_round_trip_and_tamper() -> None:
    signature = sign("k", "123", b"{}")
    assert signature.startswith("sha256=")
    assert verify("k", "123", b"{}", signature)
    assert not verify("k", "124", b"{}", signature)
    assert not verify("other", "123", b"{}", signature)


def test_webhook_is_signed_and_carries_the_incident() -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def main() -> Notifier:
        async with serve({"/hook": hook}) as base:
            notifier = Notifier([WebhookChannel(base + "/hook", "secret")])
            await notifier.dispatch([event(), event(EventKind.RESOLVED)])
            return notifier

    notifier = asyncio.run(main())
    assert notifier.sent == 2
    headers, body = received[0]
    assert verify("secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["event"] == "incident.opened"
    assert payload["incident"]["impacted"] == ["recipe-executor"]
    assert json.loads(received[1][1])["event"] == "incident.resolved"


def test_muted_events_are_counted_not_sent() -> None:
    calls: list[Event] = []

    class Recorder:
        name = "rec"

        async def send(self, e: Event) -> None:
            calls.append(e)

    notifier = Notifier([Recorder()])
    asyncio.run(notifier.dispatch([event(muted=True)]))
    assert calls == []
    assert notifier.muted == 1


def test_a_failing_channel_is_retried_then_counted() -> None:
    attempts = 0

    async def broken(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        return web.Response(status=500)

    async def main() -> Notifier:
        async with serve({"/hook": broken}) as base:
            notifier = Notifier([WebhookChannel(base + "/hook", "s")], retries=2)
            await notifier.dispatch([event()])
            return notifier

    notifier = asyncio.run(main())
    assert attempts == 2
    assert notifier.failed == 1
    assert notifier.sent == 0


def test_apprise_channel_delivers_to_a_json_endpoint() -> None:
    """apprise's json:// notifier posts to a loopback receiver (any apprise URL works)."""
    received: list[dict[str, str]] = []

    async def receiver(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    async def main() -> Notifier:
        async with serve({"/notify": receiver}) as base:
            url = base.replace("http://", "json://") + "/notify"
            notifier = Notifier([AppriseChannel([url])])
            await notifier.dispatch([event()])
            return notifier

    notifier = asyncio.run(main())
    assert notifier.sent == 1
    assert received[0]["title"] == "[garde] IAM Secure Token Service: outage"
    assert "incident.opened" in received[0]["message"]
