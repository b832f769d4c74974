"""The journal drained through the gateway's upstream side, wired once.

A running gateway replays in the background (``RunningGateway``); an operator's ``garde
journal replay --now`` drains what waits and returns (``ReplayNow``). Both get their replayer
from ``journal_replayer``: fresh tokens for each entry's identity, the same data-center
choice, breakers and answer classification as live traffic (``GatewaySender``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from garde.catalog import Catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.sender import GatewaySender
from garde.gateway.transport import HttpTransport, Transport
from garde.journal import (
    FINAL,
    JournalStore,
    Receipt,
    Replayer,
    ReplayPolicy,
    ServiceReady,
    State,
    describer,
)

RECHECK = 0.5
"""Seconds ``ReplayNow`` waits before looking again at what is left (a back-off, or a
service's Retry-After, being waited out)."""


def journal_replayer(
    gateway: Gateway,
    journal: JournalStore,
    *,
    ready: ServiceReady | None = None,
    policy: ReplayPolicy | None = None,
    on_settled: Callable[[Receipt], None] | None = None,
    on_needs_token: Callable[[], None] | None = None,
) -> Replayer:
    """A replayer that sends ``journal``'s entries through ``gateway``'s upstream side.

    ``ready`` says which services may be replayed now: by default the gateway's health view
    (a service with a live data center).
    """
    sender = GatewaySender(gateway, on_needs_token=on_needs_token)
    return Replayer(
        journal,
        sender,
        sender.ready if ready is None else ready,
        describer(gateway.catalog),
        policy=policy,
        on_settled=on_settled,
    )


@dataclass
class ReplayResult:
    """What one ``ReplayNow.run`` settled, and what still waits."""

    delivered: int = 0
    conflict: int = 0
    expired: int = 0
    waiting: int = 0


class ReplayNow:
    """Deliver what waits in ``journal`` for ``services`` now, without a gateway serving:
    back-offs are not honoured (the operator asked for now), a ``Retry-After`` still is.

    ``on_settled`` is told of each entry that reached an end (delivered, expired, discarded)
    or a conflict: a progress bar advances on it.
    """

    def __init__(
        self,
        catalog: Catalog,
        config: GatewayConfig,
        journal: JournalStore,
        services: Collection[str] = (),
        *,
        concurrency: int = 32,
        rate: float | None = None,
        on_settled: Callable[[Receipt], None] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.journal = journal
        self.services = set(services) or set(catalog.services)
        self.result = ReplayResult()
        self._on_settled = on_settled
        self.gateway = Gateway(catalog, transport or HttpTransport(), config, None)
        self.replayer = journal_replayer(
            self.gateway,
            journal,
            ready=lambda service: service in self.services,
            policy=ReplayPolicy(
                concurrency=concurrency, rate=rate, poll_interval=0.2, honour_backoff=False
            ),
            on_settled=self._settled,
        )

    def _settled(self, receipt: Receipt) -> None:
        if receipt.state in FINAL or receipt.state is State.CONFLICT:
            if receipt.state is State.CONFLICT:
                self.result.conflict += 1
            elif receipt.state is State.EXPIRED:
                self.result.expired += 1
            else:
                self.result.delivered += 1
            if self._on_settled is not None:
                self._on_settled(receipt)

    async def waiting(self) -> int:
        """Entries of the chosen services that still wait."""
        return sum([await self.journal.depth(s) for s in self.services])

    async def run(self, timeout: float) -> ReplayResult:
        """Drain until nothing waits or ``timeout`` seconds have passed; then close the
        gateway side (the journal stays open: it is the caller's)."""
        give_up = time.monotonic() + timeout
        # As the gateway does once started: what setup made (modules, catalog, gateway) lives
        # as long as the command, so the collector stops walking it (the collector's share
        # of a lab replay's CPU: 4.8-5.6 % -> 3.3-3.5 %, perf, docs/benchmarks.md).
        gc.freeze()
        try:
            while time.monotonic() < give_up:
                await self.replayer.drain()
                if await self.waiting() == 0:
                    break
                await asyncio.sleep(RECHECK)
        finally:
            await self.gateway.close()
        self.result.waiting = await self.waiting()
        return self.result
