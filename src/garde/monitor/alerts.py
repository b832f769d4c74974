"""Where incident events go: HMAC-signed webhooks and any channel ``apprise`` knows (mail,
chat tools...). Muted events (maintenance) are counted, not sent; a failing channel is
retried a few times and logged, and never blocks the monitor."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from garde.monitor.incidents import Event

log = logging.getLogger("garde.monitor.alerts")

SIGNATURE_HEADER = "Garde-Signature"
TIMESTAMP_HEADER = "Garde-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp + "." + body``.

    The timestamp is signed too so a receiver can refuse replays older than a few minutes.
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Channel(Protocol):
    name: str

    async def send(self, event: Event) -> None: ...


@dataclass
class WebhookChannel:
    url: str
    secret: str
    timeout: float = 5.0
    name: str = "webhook"

    async def send(self, event: Event) -> None:
        body = json.dumps(event.as_json(), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(self.url, data=body, headers=headers) as response,
        ):
            if response.status >= 300:
                raise OSError(f"webhook answered HTTP {response.status}")


@dataclass
class AppriseChannel:
    """Any apprise URL: ``mailto://``, ``slack://``, ``matrix://``, ``json://``..."""

    urls: Sequence[str]
    name: str = "apprise"

    async def send(self, event: Event) -> None:
        with warnings.catch_warnings():
            # apprise loads its plugins on first use, one of which imports the deprecated
            # imghdr module: not ours to fix, and not an error.
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise  # heavy: imported when a channel is configured

            notifier = apprise.Apprise()
            for url in self.urls:
                if not notifier.add(url):
                    raise OSError("apprise does not understand one of the configured URLs")
        title = f"[garde] {event.incident.title}"
        body = f"{event.kind.value}: {event.message}"
        ok = await asyncio.to_thread(notifier.notify, body=body, title=title)
        if not ok:
            raise OSError("apprise could not deliver the notification")


@dataclass
class Notifier:
    channels: list[Channel] = field(default_factory=list)
    retries: int = 3
    sent: int = 0
    muted: int = 0
    failed: int = 0

    async def dispatch(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.muted:
                self.muted += 1
                continue
            await asyncio.gather(*(self._send(ch, event) for ch in self.channels))

    async def _send(self, channel: Channel, event: Event) -> None:
        for attempt in range(self.retries):
            try:
                await channel.send(event)
                self.sent += 1
                return
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "alert channel %s failed (attempt %d): %s", channel.name, attempt + 1, exc
                )
                await asyncio.sleep(0.2 * (2**attempt))
        self.failed += 1
