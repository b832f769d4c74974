"""The caller's own WS-Security token: kept with a journaled write, renewed from its subject.

Most care software signs in itself and sends its STS token in ``wsse:Security`` (no
``Garde-Identity``). A write journaled during an outage must later be sent as its caller
would send it, so the journal keeps the caller's header (sealed with the payload). At replay
the header goes as it came while its token is valid; once it has expired, the freshest valid
token the gateway has seen since from the **same subject** (the identity inside the token,
not the connection) takes its place. With none, the entry waits in ``needs_token`` until
that subject's next call through the gateway brings one.

Only what can be delivered later is acknowledged: a header the gateway cannot read (no
subject or no validity it understands) or one that signs the message (a signature covers
the body and a timestamp that will have expired) is refused with the procedure instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from garde.errors import JournalError
from garde.journal import CallerToken, JournalStore
from garde.signals import Signal
from garde.soap import Envelope, SecurityHeader, security_of, utc_instant

log = logging.getLogger("garde.gateway")

SHELF_SIZE = 10_000
"""Subjects whose freshest token is kept in memory (one pharmacy has a handful; a hospital's
gateway some hundreds)."""

__all__ = ["SHELF_SIZE", "CallerTokens", "CannotJournal", "caller_token", "security_of", "sighted"]


class CannotJournal(Exception):
    """The caller's security header would not let the write be delivered later."""


def caller_token(envelope: Envelope) -> CallerToken | None:
    """The caller's own token, or None when the envelope carries no ``wsse:Security``.

    ``CannotJournal`` says why a header that is there cannot be used later.
    """
    security = security_of(envelope)
    if security is None:
        return None
    # A signature of the message is a child of wsse:Security; one inside a SAML assertion is
    # the STS's own (every assertion has one) and travels with the token unharmed.
    if security.signed:
        raise CannotJournal(
            "the message is signed by the calling software (ds:Signature): a signature covers"
            " the body and a timestamp, so it cannot be sent later once the service is back;"
            " send Garde-Identity to let the gateway authenticate at send time"
        )
    tokens = security.token_count()
    if tokens > 1:
        raise CannotJournal(
            f"the caller's wsse:Security holds {tokens} tokens: the gateway cannot tell whose"
            " identity the service will act on, so it cannot send the write later in that"
            " name; send one token (or Garde-Identity)"
        )
    found = _lab_token(security) or _saml_token(security)
    if found is None:
        raise CannotJournal(
            "the caller's wsse:Security holds no token whose subject and validity the gateway"
            " can read (a SAML assertion or an STS BinarySecurityToken), so it cannot tell"
            " whether the write could be sent later"
        )
    subject, until = found
    expires = security.expires
    if expires:
        moment = utc_instant(expires)
        if moment is None:
            raise CannotJournal(f"wsu:Timestamp/wsu:Expires {expires!r} is not a time")
        until = min(until, moment)
    return CallerToken(security.serialize(), subject, until)


def sighted(envelope: Envelope) -> CallerToken | None:
    """The caller's token if it could stand in for another entry of its subject, else None."""
    try:
        return caller_token(envelope)
    except CannotJournal:
        return None


def _lab_token(security: SecurityHeader) -> tuple[str, float] | None:
    """An STS token as the lab issues it: ``base64url(JSON claims).signature``."""
    for text in security.binary_tokens():
        claims_part, dot, _ = text.partition(".")
        if not dot:
            continue
        try:
            claims = json.loads(
                base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4))
            )
            return str(claims["sub"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            continue
    return None


def _saml_token(security: SecurityHeader) -> tuple[str, float] | None:
    """A SAML 1.1 or 2.0 assertion: ``Conditions/@NotOnOrAfter`` and the subject's name."""
    for subject, not_on_or_after in security.assertions():
        until = utc_instant(not_on_or_after)
        if until is not None:
            return subject, until
    return None


class CallerTokens:
    """The freshest valid token per subject, and the subjects the journal waits for.

    ``wanted`` is true while some entry waits in ``needs_token``: the gateway then reads the
    token of every call (the fast paths step aside, see ``wanted_changed``), so that the
    subject's next call releases its entries.
    """

    def __init__(
        self,
        journal: JournalStore | None,
        *,
        clock: Callable[[], float] = time.time,
        capacity: int = SHELF_SIZE,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.capacity = capacity
        self._shelf: OrderedDict[str, CallerToken] = OrderedDict()
        self._refused: OrderedDict[bytes, None] = OrderedDict()
        """Digests of headers a service refused: never offered again."""
        self.waiting: set[str] = set()
        """Subject keys with entries in ``needs_token`` (as of the last ``refresh``)."""
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self.wanted_changed: Signal[[]] = Signal("tokens wanted changed")
        """Fired when ``wanted`` changes (the native data plane republishes its table)."""
        self.entries_released: Signal[[int]] = Signal("entries released")
        """Fired with the number of entries a sighting released (the replayer looks now)."""
        self.released = 0

    @property
    def wanted(self) -> bool:
        return bool(self.waiting)

    def sight(self, token: CallerToken) -> None:
        """A call carried ``token``: keep it if it is the freshest valid one of its subject,
        and release the subject's waiting entries with it."""
        now = self.clock()
        if not token.usable(now) or _digest(token.security) in self._refused:
            return
        subject = token.subject
        current = self._shelf.get(subject)
        if current is None or token.not_on_or_after > current.not_on_or_after:
            self._shelf[subject] = token
            self._shelf.move_to_end(subject)
            while len(self._shelf) > self.capacity:
                self._shelf.popitem(last=False)
        if (
            self.waiting
            and self.journal is not None
            and subject not in self._releasing
            and self.journal.subject_key(subject) in self.waiting
        ):
            task = asyncio.get_running_loop().create_task(self._release(subject, token))
            self._releasing[subject] = task

    def for_replay(self, own: CallerToken) -> CallerToken | None:
        """The token to send an entry with: its own while valid, else the freshest valid one
        of its subject, else None (the entry must wait for one)."""
        now = self.clock()
        if own.usable(now) and _digest(own.security) not in self._refused:
            return own
        newer = self._shelf.get(own.subject)
        if newer is not None and newer.usable(now):
            return newer
        return None

    def refused(self, token: CallerToken) -> None:
        """The service refused ``token``: forget it, and never offer it again."""
        self._refused[_digest(token.security)] = None
        while len(self._refused) > self.capacity:
            self._refused.popitem(last=False)
        if self._shelf.get(token.subject) == token:
            del self._shelf[token.subject]

    async def refresh(self) -> None:
        """Read which subjects the journal waits for (``needs_token`` entries)."""
        if self.journal is None:
            return
        try:
            waiting = await self.journal.waiting_subjects()
        except JournalError as exc:
            log.warning("journal unavailable while reading entries waiting for a token: %s", exc)
            return
        was = self.wanted
        if len(waiting) > len(self.waiting):
            log.warning(
                "journaled writes of %d callers wait for a newer token of their own (their"
                " token expired): each caller's next call releases its writes; see"
                " `garde journal ls --state needs_token`",
                len(waiting),
            )
        self.waiting = waiting
        if self.wanted != was:
            self.wanted_changed.emit()
        if waiting:
            # A token seen before its entries went to needs_token releases them now.
            now = self.clock()
            for subject, token in list(self._shelf.items()):
                if (
                    token.usable(now)
                    and subject not in self._releasing
                    and self.journal.subject_key(subject) in waiting
                ):
                    task = asyncio.get_running_loop().create_task(self._release(subject, token))
                    self._releasing[subject] = task

    async def _release(self, subject: str, token: CallerToken) -> None:
        assert self.journal is not None
        try:
            receipts = await self.journal.release(subject, token)
        except JournalError as exc:
            log.warning("journal unavailable while releasing entries waiting for a token: %s", exc)
            return
        finally:
            self._releasing.pop(subject, None)
        if receipts:
            self.released += len(receipts)
            log.info("%d journaled writes waiting for a token were released", len(receipts))
            self.waiting.discard(self.journal.subject_key(subject))
            if not self.waiting:
                self.wanted_changed.emit()
            self.entries_released.emit(len(receipts))


def _digest(security: bytes) -> bytes:
    return hashlib.sha256(security).digest()
