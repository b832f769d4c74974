"""The replayer: drains the journal into services that are healthy again.

It leases only the head entry of each ordering key (the journal guarantees that), so order
per key holds by construction; keys run in parallel up to ``concurrency``. It paces each
service with a token bucket, waits a random moment before starting on a service that just
came back (thousands of sites recover together; they should not all hit it in the same
second), honours ``Retry-After``, sends with the entry's idempotency key (the ``Sender``
puts it on the wire), and moves entries past their deadline to ``expired`` with the
fallback procedure. A conflict holds its key until an operator decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

from garde.catalog import Catalog
from garde.errors import JournalError
from garde.journal.base import (
    Delivery,
    Describe,
    JournalStore,
    Leased,
    Outcome,
    Receipt,
    Sender,
    ServiceReady,
)
from garde.masking import mask_text

log = logging.getLogger("garde.journal.replay")

PROGRESS_EVERY = 10.0
"""Seconds between two log lines of replay progress (none while nothing is sent)."""


@dataclass(frozen=True, slots=True)
class ReplayPolicy:
    """How the replayer paces itself. The defaults are here; where the gateway runs they are
    tuned by ``GARDE_REPLAY_*`` (read by ``garde.journal.settings``, never by the replayer)."""

    concurrency: int = 32
    """Entries in flight at once (each from a different ordering key)."""
    rate: float | None = None
    """Deliveries per second per service; None: as fast as the service answers."""
    burst: float = 20.0
    start_jitter: float = 0.0
    """Seconds: a service that comes back is replayed after a random delay up to this."""
    lease_seconds: float = 60.0
    send_timeout: float = 30.0
    """Must stay well under ``lease_seconds``: a lease must not run out while sending."""
    backoff: float = 1.0
    backoff_max: float = 300.0
    probe_max: float = 5.0
    """Longest hold of a service that answers nothing before one entry tries it again: the
    most a recovery waits to be noticed when no health check tells."""
    poll_interval: float = 1.0
    batch: int = 256
    honour_backoff: bool = True
    """False for an operator's ``replay --now``: entries waiting out a back-off go too
    (a ``Retry-After`` met during the run still pauses the service)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReplayPolicy:
        """Deprecated: ``load_journal_settings(env).policy`` (the journal's one table)."""
        warnings.warn(
            "ReplayPolicy.from_env is deprecated: use load_journal_settings(env).policy",
            DeprecationWarning,
            stacklevel=2,
        )
        from garde.journal.settings import load_journal_settings

        return load_journal_settings(env).policy


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` whole tokens now; how many were taken."""
        self._refill()
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted

    def wait_time(self) -> float:
        """Seconds until one token is there."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass(slots=True)
class ReplayStats:
    delivered: int = 0
    conflicts: int = 0
    retried: int = 0
    expired: int = 0
    lost_leases: int = 0
    needs_token: int = 0
    """Entries set aside until a newer token of their caller's subject is seen."""
    errors: list[str] = field(default_factory=list)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


class Replayer:
    def __init__(
        self,
        journal: JournalStore,
        sender: Sender,
        ready: ServiceReady,
        describe: Describe,
        *,
        policy: ReplayPolicy | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_settled: Callable[[Receipt], None] | None = None,
    ) -> None:
        self.journal = journal
        self.sender = sender
        self.ready = ready
        self.describe = describe
        self.policy = policy or ReplayPolicy()
        self.owner = owner or default_owner()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self.on_settled = on_settled
        self.stats = ReplayStats()
        self._buckets: dict[str, TokenBucket] = {}
        self._throttled: dict[str, TokenBucket] = {}
        """Services that answered Retry-After: paced, slower each time (``_overloaded``)."""
        self._throttle_cut: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self._down_until: dict[str, float] = {}
        """Services that answered nothing at all: held until this time, or until the health
        view says they are back (whichever comes first); then one entry goes as a trial."""
        self._down_rounds: dict[str, int] = {}
        """Trials in a row that a held service left unanswered (its hold grows with them)."""
        self._trials: set[str] = set()
        """Held services whose trial entry is being sent now."""
        self._was_ready: dict[str, bool] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._sending: dict[asyncio.Task[None], float] = {}
        """Deliveries sending now, with the loop time by which they must be done."""
        self._too_long: set[asyncio.Task[None]] = set()
        """Deliveries cancelled by the send guard (``_check_sends``), not from outside."""
        self._send_check: asyncio.TimerHandle | None = None
        policy = self.policy
        self._check_every = max(
            0.001,
            min(1.0, policy.send_timeout / 10, (policy.lease_seconds - policy.send_timeout) / 2),
        )
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._freed = asyncio.Event()
        """Set when an entry in flight is settled: a slot is free."""
        self._next_sweep = 0.0
        self._settled_count = 0
        self._reported: tuple[int, ...] = (0, 0, 0, 0, 0)
        self._reported_at = time.monotonic()
        self._pending: list[str] = []
        self._pending_at = -1.0

    # -- which services may be sent to now ----------------------------------------------------

    def _open_services(self, pending: list[str]) -> list[str]:
        now = self.clock()
        open_now = []
        for service in pending:
            ready = self.ready(service)
            if ready and not self._was_ready.get(service, True):
                # The health view says it is back: what waited goes now, not when the hold
                # that its silence earned runs out.
                self._down_until.pop(service, None)
                self._down_rounds.pop(service, None)
                if self.policy.start_jitter:
                    # Wait a random moment, so that recovering sites spread out.
                    delay = self.rng.uniform(0, self.policy.start_jitter)
                    until = max(self._paused_until.get(service, 0), now + delay)
                    self._paused_until[service] = until
            self._was_ready[service] = ready
            if (
                ready
                and self._paused_until.get(service, 0.0) <= now
                and self._down_until.get(service, 0.0) <= now
                and service not in self._trials
            ):
                open_now.append(service)
        return open_now

    def _bucket(self, service: str) -> TokenBucket | None:
        throttled = self._throttled.get(service)
        if throttled is not None:
            return throttled
        if self.policy.rate is None:
            return None
        bucket = self._buckets.get(service)
        if bucket is None:
            bucket = self._buckets[service] = TokenBucket(self.policy.rate, self.policy.burst)
        return bucket

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Replay until ``stop()``; the gateway runs this as a background task."""
        await self._pump(until_idle=False)

    async def drain(self) -> ReplayStats:
        """Replay what can be delivered now, then return (``garde journal replay --now``)."""
        await self._pump(until_idle=True)
        return self.stats

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._freed.set()

    def poke(self) -> None:
        """Something changed (a service came back, an entry was accepted): look now.

        The expiry sweep keeps its own pace (``poll_interval``): nothing new is due because
        an entry arrived, and a sweep per accepted write would be a query per write."""
        self._pending_at = -1.0
        self._wake.set()

    def journaled(self, service: str) -> None:
        """An entry of ``service`` was accepted (the gateway calls this once per write).

        A service already known to have work needs no new look at which services do: the
        loop only wakes to see whether it may send. During an outage that look was a journal
        read (and a thread hop) per accepted write."""
        if service in self._pending:
            self._wake.set()
        else:
            self.poke()

    async def _pump(self, until_idle: bool) -> None:
        try:
            half = self.policy.concurrency // 2
            while not self._stop.is_set():
                await self._expire()
                settled_before = self._settled_count
                free = self.policy.concurrency - len(self._in_flight)
                leased = await self._lease_some()
                for entry in leased:
                    task = asyncio.create_task(self._deliver(entry))
                    self._in_flight.add(task)
                    task.add_done_callback(self._done)
                if leased and len(self._in_flight) <= half:
                    continue
                # A lease that filled every free slot: the next one waits until half the
                # slots are free, so each lease (a transaction) takes many entries and the
                # settles in between commit together. A lease that found less than it
                # wanted: any settle may free the next entry of its key, so look again then.
                refill = half if leased and len(leased) >= free else self.policy.concurrency - 1
                while len(self._in_flight) > refill and not self._stop.is_set():
                    # Woken by ``_done`` (or a poke): cheaper than ``asyncio.wait`` on every
                    # task in flight, which adds and removes a callback on each of them.
                    self._freed.clear()
                    await self._freed.wait()
                if self._in_flight or leased:
                    continue
                if self._settled_count != settled_before:
                    # An entry was settled while we leased (PostgreSQL runs both at once):
                    # the lease may not have seen its successor yet. Look again.
                    continue
                if until_idle:
                    return
                await self._idle()
        finally:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))

    # -- the send guard -------------------------------------------------------------------------
    # One timer for every send in flight, checking each ``check_every`` seconds, rather than a
    # timer per send (``asyncio.timeout``): 9 µs of interpreter time per entry, a dict entry
    # now. A send is cancelled at most ``check_every`` after its ``send_timeout``, which is
    # kept short enough that this still falls before the lease runs out.

    def _guard_send(self, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        self._sending[task] = loop.time() + self.policy.send_timeout
        if self._send_check is None:
            self._send_check = loop.call_later(self._check_every, self._check_sends)

    def _check_sends(self) -> None:
        self._send_check = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, deadline in list(self._sending.items()):
            if deadline <= now:
                del self._sending[task]
                self._too_long.add(task)
                task.cancel()
        if self._sending:
            self._send_check = loop.call_later(self._check_every, self._check_sends)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._settled_count += 1
        now = time.monotonic()
        if now - self._reported_at >= PROGRESS_EVERY:
            self._report_progress(now)
        self._wake.set()
        self._freed.set()

    def _report_progress(self, now: float) -> None:
        """One log line every ``PROGRESS_EVERY`` seconds while entries are being sent."""
        stats = self.stats
        totals = (stats.delivered, stats.conflicts, stats.retried, stats.expired, stats.needs_token)
        if totals == self._reported:
            return
        was = self._reported
        self._reported, self._reported_at = totals, now
        log.info(
            "replay: %d delivered, %d conflicts, %d to retry, %d expired, %d waiting for a"
            " token since the start (%+d delivered in the last %.0f s); %d being sent",
            *totals,
            totals[0] - was[0],
            PROGRESS_EVERY,
            len(self._in_flight),
        )

    async def _idle(self) -> None:
        self._wake.clear()
        waits = [self.policy.poll_interval]
        now = self.clock()
        waits += [until - now for until in self._paused_until.values() if until > now]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.01, min(waits))):
                await self._wake.wait()

    async def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.policy.poll_interval
        try:
            expired = await self.journal.expire(self.describe)
        except JournalError as exc:
            log.warning("journal unavailable while expiring entries: %s", exc)
            return
        self.stats.expired += len(expired)
        for receipt in expired:
            self._settled(receipt)

    async def _lease_some(self) -> list[Leased]:
        free = self.policy.concurrency - len(self._in_flight)
        if free <= 0:
            return []
        try:
            now = time.monotonic()
            if now - self._pending_at >= self.policy.poll_interval:
                # Which services have work changes slowly; asking on every lease would scan.
                self._pending = await self.journal.pending_services()
                self._pending_at = now
            services = self._open_services(self._pending)
            taken: list[Leased] = []
            for service in services:
                wanted = min(free - len(taken), self.policy.batch)
                if wanted <= 0:
                    break
                if self._down_rounds.get(service):
                    # Held for its silence: one entry tries whether it answers again.
                    wanted = 1
                bucket = self._bucket(service)
                if bucket is not None:
                    wanted = bucket.take(wanted)
                    if wanted == 0:
                        self._paused_until[service] = self.clock() + bucket.wait_time()
                        continue
                got = await self.journal.lease(
                    self.owner,
                    [service],
                    wanted,
                    self.policy.lease_seconds,
                    backoff=self.policy.honour_backoff,
                )
                if bucket is not None and len(got) < wanted:
                    bucket.tokens += wanted - len(got)  # unused tokens go back
                if got and self._down_rounds.get(service):
                    self._trials.add(service)
                taken += got
            return taken
        except JournalError as exc:
            log.warning("journal unavailable while leasing: %s", exc)
            return []

    async def _deliver(self, entry: Leased) -> None:
        try:
            await self._deliver_one(entry)
        finally:
            self._trials.discard(entry.submission.service)

    async def _deliver_one(self, entry: Leased) -> None:
        service = entry.submission.service
        deadline = entry.submission.deadline
        if deadline is not None and self.clock() > deadline:
            self._next_sweep = 0.0  # the next pass expires it, with its procedure
            await self._settle(entry, Delivery(Outcome.RETRY_LATER, reason="deadline passed"), 0)
            return
        # The send must end before the lease does, or another replayer could take the entry
        # while this one still sends it: ``_check_sends`` cancels a send that runs too long.
        task = cast("asyncio.Task[None]", asyncio.current_task())  # _pump made it
        self._guard_send(task)
        try:
            delivery = await self.sender.send(entry.submission)
        except asyncio.CancelledError:
            if task not in self._too_long:
                raise  # stopped from outside: not ours to absorb
            self._too_long.discard(task)
            task.uncancel()
            delivery = Delivery(Outcome.RETRY_LATER, reason="no answer in time")
        except Exception as exc:  # the sender's bug or an unexpected failure: try again later
            delivery = Delivery(Outcome.RETRY_LATER, reason=f"send failed: {exc!r}")
        finally:
            self._sending.pop(task, None)
            if self._too_long and task in self._too_long:  # fired, but the sender ate the cancel
                self._too_long.discard(task)
                task.uncancel()
        answered = delivery.answer is not None or delivery.outcome in (
            Outcome.DELIVERED,
            Outcome.CONFLICT,
        )
        if answered and self._down_rounds.pop(service, 0):
            self._down_until.pop(service, 0.0)  # it answers again: all that is due goes now
            self.poke()
        if delivery.outcome is Outcome.DELIVERED and service in self._throttled:
            self._recovering(service)
        retry_at = None
        if delivery.outcome is Outcome.RETRY_LATER:
            now = self.clock()
            if delivery.unreachable:
                # Nobody answered: the service is down, not this entry. Hold the service
                # (longer each round it stays silent) instead of backing the entry off, so
                # that when the service is back every waiting entry is due at once.
                if self._down_until.get(service, 0.0) <= now:
                    rounds = self._down_rounds.get(service, 0) + 1
                    self._down_rounds[service] = rounds
                    hold = min(self.policy.probe_max, self.policy.backoff * 2 ** (rounds - 1))
                    self._down_until[service] = now + hold * self.rng.uniform(0.75, 1.25)
                await self._settle(entry, delivery, now + self.policy.backoff)
                return
            if delivery.retry_after is not None:
                wait = delivery.retry_after
                # The service asked for room: give it to the whole service, not just this key,
                # and come back paced and spread out (``_overloaded``).
                until = now + wait * self.rng.uniform(1.0, 1.5)
                self._paused_until[service] = max(self._paused_until.get(service, 0), until)
                self._overloaded(service)
            else:
                wait = min(self.policy.backoff_max, self.policy.backoff * 2 ** (entry.attempts - 1))
                wait *= self.rng.uniform(0.5, 1.5)
                if not self.policy.honour_backoff:
                    # Replaying "now" ignores stored back-offs, so hold the service in memory
                    # instead: a failing service is not hammered in a loop.
                    until = now + wait
                    self._paused_until[service] = max(self._paused_until.get(service, 0), until)
            retry_at = now + wait
        await self._settle(entry, delivery, retry_at)

    # A service that answers 503/429 with Retry-After is overloaded, and every replayer of
    # every site that recovers with it hears the same: all pausing for the same Retry-After
    # and coming back at full concurrency would hit it together again. So each replayer
    # paces it (AIMD, as TCP does): a Retry-After halves its pace (the first to one entry
    # per second), each delivery adds back about one per second per second, and past the
    # replayer's own limits the pace is lifted. The pause itself is spread (1-1.5 x).
    THROTTLE_FLOOR = 0.25
    """Entries per second a throttled service is still sent (it must be seen to recover)."""

    def _overloaded(self, service: str) -> None:
        bucket = self._throttled.get(service)
        now = self.clock()
        if bucket is not None and now - self._throttle_cut.get(service, 0.0) < 1.0:
            return  # the answers to one burst are one signal: halve once a second at most
        self._throttle_cut[service] = now
        rate = 1.0 if bucket is None else max(self.THROTTLE_FLOOR, bucket.rate / 2)
        # On the replayer's clock, as its pauses are (``_lease_some`` pauses on the bucket).
        self._throttled[service] = TokenBucket(rate, 1.0, self.clock)

    def _recovering(self, service: str) -> None:
        bucket = self._throttled[service]
        bucket.rate += 1.0 / bucket.rate
        if bucket.rate >= min(self.policy.rate or self.policy.concurrency, self.policy.concurrency):
            del self._throttled[service]

    async def _settle(self, entry: Leased, delivery: Delivery, retry_at: float | None) -> None:
        try:
            receipt = await self.journal.settle(entry, delivery, retry_at)
        except JournalError as exc:
            # Sent but not recorded: the lease runs out and the entry is sent again with the
            # same idempotency key, which the service answers without applying it twice.
            log.error("could not record the outcome of %s: %s", entry.id, exc)
            self.stats.errors.append(str(exc))
            return
        if receipt is None:
            self.stats.lost_leases += 1
            log.warning("lease on %s was lost before its outcome was recorded", entry.id)
            return
        if delivery.outcome is Outcome.DELIVERED:
            self.stats.delivered += 1
        elif delivery.outcome is Outcome.CONFLICT:
            self.stats.conflicts += 1
            log.warning(
                "journal entry %s (%s.%s) conflicts and holds its key: %s",
                entry.id,
                entry.submission.service,
                entry.submission.operation,
                mask_text(delivery.reason or ""),
            )
        elif delivery.outcome is Outcome.NEEDS_TOKEN:
            self.stats.needs_token += 1
            # One line per entry would flood the log after a long outage: the gateway says
            # once how many callers' writes wait (``CallerTokens.refresh``).
            log.debug(
                "journal entry %s (%s.%s) waits for a newer token of its caller: %s",
                entry.id,
                entry.submission.service,
                entry.submission.operation,
                mask_text(delivery.reason or ""),
            )
        else:
            self.stats.retried += 1
        self._settled(receipt)

    def _settled(self, receipt: Receipt) -> None:
        if self.on_settled is not None:
            self.on_settled(receipt)


def describer(catalog: Catalog, language: str = "en") -> Describe:
    """What an expired entry's receipt says: the deadline passed, and the procedure to follow
    for the caller's target group (any group's, when the caller gave none)."""

    def describe(service: str, operation: str, target_group: str | None) -> str:
        procedure = catalog.procedure_for(service, operation, target_group)
        text = None if procedure is None else procedure.text.get(language)
        head = f"its deadline passed before {service} could take it"
        if text is None:
            return f"{head}; the catalog names no fallback procedure: ask the service's helpdesk"
        return f"{head}. {text}"

    return describe
