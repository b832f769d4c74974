"""Sending to subscribers: the confirmation message, and each incident event to the
confirmed subscribers of the professions it concerns, in their language.

The monitor's ``incident_events`` signal hands the events over; sending happens in tasks of
its own, a few at a time, each retried with a growing pause a bounded number of times, so
neither a slow channel nor a dead one ever holds the probes. Failures are logged with the
address masked. What each kind of channel gets:

- ``email`` (through the operator's apprise mail URL, ``subscribe_mail``): a text mail with
  the ``List-Unsubscribe: <URL>`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
  headers (RFC 8058), and the link in the text;
- ``apprise`` URLs: the message with the link in its text; the HTTP ones (``json://``,
  ``xml://``, ``form://``) carry the two headers too;
- ``webhook``: the JSON body below, signed, with the two headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from garde.catalog import Catalog
from garde.locales import rfc3339
from garde.monitor.incidents import Event, EventKind
from garde.monitor.store.subscriptions import Subscription, SubscriptionRows
from garde.monitor.subscription_words import words
from garde.monitor.subscriptions import ChannelKind, mask, non_global, unsubscribe_url

log = logging.getLogger("garde.monitor.subscriptions")

SIGNATURE_HEADER = "Garde-Signature"
HTTP_APPRISE = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


_ADDRESS = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+|\b[a-z][a-z0-9+.-]*://\S+", re.I
)


class MaskAddresses(logging.Filter):
    """apprise logs whom it sent to ("Sent Email to alice@..."): on the ``apprise`` logger,
    every e-mail address and URL is masked before any handler sees the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _ADDRESS.sub(lambda m: mask(m.group(0)), text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_MASKING = MaskAddresses()


@contextmanager
def quiet_apprise() -> Iterator[ModuleType]:
    """apprise, in a block where its plugins may load: they load on first use, and one of
    them imports the deprecated imghdr module (not ours to fix, and not an error)."""
    logger = logging.getLogger("apprise")
    if _MASKING not in logger.filters:
        logger.addFilter(_MASKING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        yield apprise


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body with the subscription's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    unsubscribe: str | None
    """The one-click unsubscribe URL (none for a confirmation request)."""
    body: dict[str, Any]
    """What a webhook receives."""


def _headers(unsubscribe: str | None) -> dict[str, str]:
    if unsubscribe is None:
        return {}
    return {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class Deliverer:
    catalog: Catalog
    store: SubscriptionRows
    base_url: str | None = None
    """Where links point; the web side sets it to the socket's address if it is None."""
    mailer: str | None = None
    """An apprise ``mailto://``/``mailtos://`` URL of the account that sends e-mail."""
    attempts: int = 5
    backoff: float = 2.0
    """First pause between attempts, doubled each time (2, 4, 8, 16 s by default)."""
    timeout: float = 10.0
    concurrency: int = 8
    private_hosts: bool = False
    """Webhooks to loopback and private networks allowed (labs, tests)."""
    now: Callable[[], float] = time.time
    sent: int = 0
    failed: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _gate: asyncio.Semaphore | None = None
    _pool: ThreadPoolExecutor | None = None
    """apprise sends block: they get threads of their own, so that slow channels never take
    the default pool the monitor's store writes (and so its ticks) wait for."""

    # -- what the monitor hands over -------------------------------------------------------

    def on_events(self, events: Sequence[Event]) -> None:
        """The monitor's ``incident_events`` subscriber: returns at once, sends later."""
        wanted = [e for e in events if not e.muted and e.incident.groups]
        if wanted:
            self._spawn(self._fan_out(wanted))

    async def drain(self) -> None:
        """Wait for every send under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fan_out(self, events: Sequence[Event]) -> None:
        for event in events:
            try:
                found = await asyncio.to_thread(self.store.subscribers, list(event.incident.groups))
            except Exception:
                # The database is away: these subscribers miss this event; the monitor goes on.
                log.exception("subscribers of incident #%d not read", event.incident.id)
                continue
            for subscription in found:
                self._spawn(self._deliver(subscription, self.incident_message(subscription, event)))

    # -- messages --------------------------------------------------------------------------

    def _base(self) -> str:
        return (self.base_url or "http://127.0.0.1:8490").rstrip("/")

    def confirmation_message(self, subscription: Subscription, url: str, hours: int) -> Message:
        w = words(subscription.lang)
        group = self._group_name(subscription)
        text = w["msg_confirm_body"].format(group=group, url=url, hours=hours)
        body = {
            "event": "subscription.confirm",
            "group": subscription.group,
            "confirm_url": url,
            "sent_at": rfc3339(self.now()),
        }
        subject = w["msg_confirm_subject"].format(group=group)
        return Message(subject, text, None, body)

    def incident_message(self, subscription: Subscription, event: Event) -> Message:
        from garde.monitor.web.views import incident_page

        w = words(subscription.lang)
        incident = event.incident
        group = self._group_name(subscription)
        link = f"{self._base()}/incidents/{incident.id}?lang={subscription.lang}"
        leave = unsubscribe_url(self._base(), subscription)
        lines = [f"{event.message}", ""]
        procedures: list[dict[str, str]] = []
        if event.kind is EventKind.RESOLVED:
            lines.append(w["msg_over"])
        else:
            page = incident_page(self.catalog, incident, subscription.lang, self.now())
            for row in page["affected"]:
                if row.id != subscription.group:
                    continue
                lines.append(w["msg_for_you"].format(group=group))
                for line in row.lines:
                    text = f"- {line['operation']}: {line['action']}"
                    if line.get("procedure"):
                        text += f": {line['procedure']}"
                    if line.get("link"):
                        text += f" ({line['link']})"
                    lines.append(text)
                    procedures.append({k: str(v) for k, v in line.items()})
        lines += ["", f"{w['msg_follow']} {link}", f"{w['msg_unsubscribe']} {leave}"]
        subject = f"[garde] {group} – {w[event.kind.value]}: {incident.title}"
        body = {
            "event": event.kind.value,
            "at": rfc3339(event.at),
            "sent_at": rfc3339(self.now()),
            "delivery": secrets.token_hex(8),
            "group": subscription.group,
            "language": subscription.lang,
            "message": event.message,
            "incident": {
                "id": incident.id,
                "url": link,
                "service": incident.service,
                "title": incident.title,
                "severity": incident.severity,
                "state": incident.state.value,
                "started_at": rfc3339(incident.started_at),
                "resolved_at": None
                if incident.resolved_at is None
                else rfc3339(incident.resolved_at),
                "impacted": list(incident.impacted),
            },
            "procedures": procedures,
            "unsubscribe_url": leave,
        }
        return Message(subject, "\n".join(lines), leave, body)

    def _group_name(self, subscription: Subscription) -> str:
        group = self.catalog.target_groups.get(subscription.group)
        if group is None:
            return subscription.group
        return str(group.names.get(subscription.lang) or group.names.get("en") or group)

    # -- sending ---------------------------------------------------------------------------

    async def send_confirmation(self, subscription: Subscription, url: str, hours: int) -> None:
        """Sent in the background: the form answers at once, whatever the channel does."""
        self._spawn(
            self._deliver(subscription, self.confirmation_message(subscription, url, hours))
        )

    async def _deliver(self, subscription: Subscription, message: Message) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrency)
        pause = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._gate:
                    await self.send(subscription, message)
                self.sent += 1
                return
            except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning(
                    "subscription #%d (%s, %s) not delivered, attempt %d of %d: %s",
                    subscription.id,
                    subscription.kind,
                    mask(subscription.address),
                    attempt,
                    self.attempts,
                    str(exc).replace(subscription.address, mask(subscription.address)),
                )
            if attempt < self.attempts:
                await asyncio.sleep(pause)
                pause *= 2
        self.failed += 1

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="garde-deliver")
        return self._pool

    async def send(self, subscription: Subscription, message: Message) -> None:
        """One attempt; raises on failure."""
        kind = ChannelKind(subscription.kind)
        if kind is ChannelKind.WEBHOOK:
            await self._post(subscription, message)
            return
        if kind is ChannelKind.EMAIL:
            if self.mailer is None:
                raise OSError("no e-mail sender (subscribe_mail) is configured")
            url = _with_query(self.mailer, {"to": subscription.address})
            headers = True
        else:
            url = subscription.address
            headers = url.partition("://")[0].lower() in HTTP_APPRISE
        loop = asyncio.get_running_loop()
        sending = loop.run_in_executor(self._threads(), _apprise_send, url, message, headers)
        await asyncio.wait_for(sending, self.timeout * 2)

    async def _post(self, subscription: Subscription, message: Message) -> None:
        host = urlsplit(subscription.address).hostname or ""
        # Checked again at each send: a name may resolve elsewhere than when it was given.
        if not self.private_hosts and await asyncio.get_running_loop().run_in_executor(
            self._threads(), non_global, host, True
        ):
            raise OSError("the webhook's host now resolves to a private or local address")
        body = json.dumps(message.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(subscription.secret, body),
            **_headers(message.unsubscribe),
        }
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
            # No redirects: a public URL must not lead the monitor into its own network.
            session.post(
                subscription.address, data=body, headers=headers, allow_redirects=False
            ) as response,
        ):
            if response.status >= 300:
                raise OSError(f"webhook answered HTTP {response.status}")


def _apprise_send(url: str, message: Message, with_headers: bool) -> None:
    with quiet_apprise() as apprise:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            raise ValueError("apprise does not understand the channel's URL")
        extra = getattr(plugin, "headers", None)
        if with_headers and isinstance(extra, dict):
            extra.update(_headers(message.unsubscribe))
        notifier = apprise.Apprise()
        notifier.add(plugin)
        if not notifier.notify(body=message.text, title=message.subject):
            raise OSError("apprise could not deliver the message")


@dataclass
class Subscriptions:
    """What the web side needs to take subscriptions, and what sends to subscribers."""

    desk: Any
    """``subscriptions.SubscriptionDesk``."""
    deliverer: Deliverer
    rules: Any
    """``subscriptions.SubscriptionRules``."""


def open_subscriptions(
    monitor: Any, *, rules: Any = None, mailer: str | None = None, public_url: str | None = None
) -> Subscriptions:
    """Subscriptions on ``monitor``: its store keeps them, its ``incident_events`` feed them."""
    from garde.monitor.subscriptions import (
        SubscriptionDesk,
        SubscriptionRules,
        subscription_rows,
    )

    rules = rules or SubscriptionRules(mail=mailer is not None)
    rows = subscription_rows(monitor.store)
    deliverer = Deliverer(
        monitor.catalog, rows, base_url=public_url, mailer=mailer, private_hosts=rules.private_hosts
    )
    hours = round(rules.confirm_within / 3600)

    async def confirm(subscription: Subscription, url: str) -> None:
        await deliverer.send_confirmation(subscription, url, hours)

    desk = SubscriptionDesk(monitor.catalog, rows, confirm, rules, now=monitor.clock.now)
    monitor.incident_events.connect(deliverer.on_events)
    return Subscriptions(desk, deliverer, rules)
