"""Care providers subscribe to their profession's incidents: what they may give as a channel,
the double opt-in, the one-click unsubscribe, and the limits that keep the form from
becoming a mail cannon.

A request (profession, channel, language) is checked entirely before anything is stored or
sent. A good one becomes a *pending* row and one confirmation message with a one-time link
(random token, only its SHA-256 stored, valid ``confirm_within``); only the link's owner
confirms, with a POST (a GET shows a button: mail scanners fetching links confirm nothing).
Confirmed rows receive the profession's incident notifications (``deliveries.py``); every
notification carries an unsubscribe link whose token is derived from the subscription's own
secret, so nothing more is stored for it. Unsubscribing deletes the row, and unsubscribing
twice answers the same.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from garde.catalog import Catalog
from garde.errors import UsageError
from garde.monitor.store.subscriptions import Pending, Subscription, SubscriptionRows


class ChannelKind(StrEnum):
    EMAIL = "email"
    APPRISE = "apprise"
    WEBHOOK = "webhook"


APPRISE_SCHEMES = frozenset(
    {
        "ntfy", "ntfys", "json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos",
        "matrix", "matrixs", "slack", "discord", "tgram", "gotify", "gotifys", "msteams",
        "rocket", "rockets", "mmost", "mmosts", "signal", "signals", "pover", "pushover",
    }
)  # fmt: skip
"""The apprise services a subscriber may name: messaging and mail. Not the ones that act
on the monitor's own machine (desktop notifications, D-Bus, files, commands)."""

MAX_CHANNEL = 512
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$"
)


class Refused(Exception):
    """A request refused: ``key`` names the words said (in the reader's language), with
    ``params``; ``status`` is the HTTP status of the answer."""

    def __init__(self, key: str, status: int = 400, **params: str) -> None:
        super().__init__(key)
        self.key = key
        self.status = status
        self.params = params


@dataclass(frozen=True, slots=True)
class Channel:
    kind: ChannelKind
    address: str


def mask(address: str) -> str:
    """What logs and pages show of an address: its kind of place, never who.

    ``j***@example.org``, ``ntfy://***``, ``https://hooks.example/***``."""
    if "://" not in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    parts = urlsplit(address)
    host = parts.hostname or ""
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{host}/***"
    return f"{parts.scheme}://***"


def non_global(host: str, resolve: bool) -> bool:
    """Whether ``host`` is (or resolves to) an address that is not on the public internet:
    loopback, private, link-local... A subscriber must not make the monitor call inside."""
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        pass
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    if not resolve:
        return False
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # does not resolve: nothing inside to reach (the send will fail)
    return any(not ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_global for info in found)


def parse_channel(text: str, *, mail: bool, private_hosts: bool, resolve: bool = True) -> Channel:
    """The channel a subscriber typed, checked; ``Refused`` says what is wrong and how to
    fix it. ``mail``: this monitor can send e-mail; ``private_hosts``: addresses inside the
    monitor's networks are allowed (labs and tests)."""
    value = text.strip()
    if not value:
        raise Refused("err_empty")
    if len(value) > MAX_CHANNEL:
        raise Refused("err_long", max=str(MAX_CHANNEL))
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise Refused("err_space")
    if "://" not in value:
        if not _EMAIL.match(value):
            raise Refused("err_email", given=value[:80])
        if not mail:
            raise Refused("err_no_mail")
        local, _, domain = value.partition("@")
        return Channel(ChannelKind.EMAIL, f"{local}@{domain.lower()}")
    scheme = value.partition("://")[0].lower()
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise Refused("err_url", given=value[:80]) from None
    if scheme in ("http", "https"):
        if not host:
            raise Refused("err_url", given=value[:80])
        if not private_hosts and non_global(host, resolve):
            raise Refused("err_private", host=host)
        return Channel(ChannelKind.WEBHOOK, value)
    if scheme not in APPRISE_SCHEMES:
        raise Refused("err_scheme", scheme=scheme[:20], known=", ".join(sorted(APPRISE_SCHEMES)))
    if host and not private_hosts and non_global(host, resolve):
        raise Refused("err_private", host=host)
    if not _apprise_understands(value):
        raise Refused("err_apprise", scheme=scheme)
    return Channel(ChannelKind.APPRISE, value)


def _apprise_understands(url: str) -> bool:
    from garde.monitor.deliveries import quiet_apprise

    with quiet_apprise() as apprise:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None


_CHECKING: list[ThreadPoolExecutor] = []


def _checks() -> ThreadPoolExecutor:
    """Two threads for checking channels (a name's DNS look-up): a flood of requests waits
    for them, not the monitor."""
    if not _CHECKING:
        _CHECKING.append(ThreadPoolExecutor(2, thread_name_prefix="garde-subscribe"))
    return _CHECKING[0]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def unsubscribe_token(subscription: Subscription) -> str:
    """``ID-MAC``: the MAC, by the subscription's own secret, of its id. Nothing stored."""
    mac = hmac.new(
        subscription.secret.encode(), f"unsubscribe:{subscription.id}".encode(), hashlib.sha256
    )
    return f"{subscription.id}-{mac.hexdigest()[:40]}"


class Window:
    """At most ``limit`` events per key within ``seconds`` (sliding), in memory: a restart
    forgets it, which costs an abuser one more window, no more."""

    def __init__(self, limit: int, seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self.seconds:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        if len(self._seen) > self.max_keys:  # a flood of keys: forget the idle ones
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.seconds}
        return True


@dataclass(frozen=True)
class SubscriptionRules:
    """The limits of the subscription form (settings ``subscribe_*``, docs/monitor.md)."""

    per_client: int = 5
    """Requests per client address per hour (behind a proxy, the proxy's address)."""
    per_address: int = 3
    """Confirmation messages per address (e-mail, URL) per day: however many clients ask."""
    pending_max: int = 1000
    """Unconfirmed requests at once; past it the form says to try later."""
    confirm_within: float = 48 * 3600.0
    private_hosts: bool = False
    """Allow channels on loopback and private networks (labs, tests): never on a public
    monitor, or subscribers make it call its own network."""
    mail: bool = False
    """An e-mail sender (``subscribe_mail``) is configured."""


ConfirmSender = Callable[[Subscription, str], Awaitable[None]]
"""Sends the confirmation message of a pending subscription with its confirm URL."""


@dataclass
class Confirmed:
    subscription: Subscription
    unsubscribe_url: str


@dataclass
class SubscriptionDesk:
    """Asking, confirming and leaving; the store holds the rows, ``send_confirmation`` the
    way out (``deliveries.Deliverer.send_confirmation``)."""

    catalog: Catalog
    store: SubscriptionRows
    send_confirmation: ConfirmSender
    rules: SubscriptionRules = field(default_factory=SubscriptionRules)
    now: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._clients = Window(self.rules.per_client, 3600.0)
        self._addresses = Window(self.rules.per_address, 86400.0)

    async def ask(
        self, group: str, channel_text: str, lang: str, client: str, base: str
    ) -> Pending:
        """Check and record a request; send its confirmation. ``Refused`` changes nothing."""
        if group not in self.catalog.target_groups:
            raise Refused(
                "err_group", status=404, known=", ".join(sorted(self.catalog.target_groups))
            )
        now = self.now()
        # Checked before the channel so a flood costs no DNS look-up.
        if not self._clients.allow(client, now):
            raise Refused("err_rate", status=429)
        # DNS look-ups may hang: on threads of their own, never the pool the store uses.
        channel = await asyncio.get_running_loop().run_in_executor(
            _checks(),
            functools.partial(
                parse_channel,
                channel_text,
                mail=self.rules.mail,
                private_hosts=self.rules.private_hosts,
            ),
        )
        await asyncio.to_thread(self.store.prune_pending, now)
        if await asyncio.to_thread(self.store.pending_count, now) >= self.rules.pending_max:
            raise Refused("err_busy", status=503)
        if not self._addresses.allow(channel.address, now):
            raise Refused("err_rate_address", status=429)
        token = secrets.token_urlsafe(32)
        outcome = await asyncio.to_thread(
            self.store.add_pending,
            group,
            channel.kind.value,
            channel.address,
            lang,
            secrets.token_hex(32),
            token_hash(token),
            now + self.rules.confirm_within,
            now,
        )
        if outcome is not Pending.ALREADY:
            pending = await asyncio.to_thread(self.store.pending_by_token, token_hash(token), now)
            if pending is not None:
                await self.send_confirmation(pending, f"{base}/subscriptions/confirm/{token}")
        return outcome

    async def pending(self, token: str) -> Subscription | None:
        return await asyncio.to_thread(self.store.pending_by_token, token_hash(token), self.now())

    async def confirm(self, token: str, base: str) -> Confirmed | None:
        found = await asyncio.to_thread(
            self.store.confirm_subscription, token_hash(token), self.now()
        )
        if found is None:
            return None
        return Confirmed(found, unsubscribe_url(base, found))

    async def find(self, token: str) -> Subscription | None:
        """The subscription an unsubscribe token names, if it (still) exists."""
        sid, _, _mac = token.partition("-")
        if not sid.isdigit() or len(sid) > 18:
            return None
        found = await asyncio.to_thread(self.store.subscription, int(sid))
        if found is None or not hmac.compare_digest(unsubscribe_token(found), token):
            return None
        return found

    async def leave(self, token: str) -> Subscription | None:
        """Delete the subscription of this token; None when there was none (already gone,
        or never was): the answer is the same, so leaving twice is harmless."""
        found = await self.find(token)
        if found is not None:
            await asyncio.to_thread(self.store.delete_subscription, found.id)
        return found


def unsubscribe_url(base: str, subscription: Subscription) -> str:
    return f"{base}/subscriptions/unsubscribe/{unsubscribe_token(subscription)}"


def subscription_rows(store: object) -> SubscriptionRows:
    if not isinstance(store, SubscriptionRows):
        raise UsageError("subscriptions need the SQL store (sqlite:// or postgresql://)")
    return store
