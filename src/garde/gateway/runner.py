"""Assemble and run a gateway: the parts wired together, started and stopped as one.

``async with RunningGateway(catalog, config, journal) as running:`` serves on
``running.url`` (bind port 0 in tests and read it back) until the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from garde.catalog import Catalog
from garde.gateway.app import GatewayServer
from garde.gateway.backlog import RPO_CHECK_INTERVAL, RpoWatch
from garde.gateway.board import WorkerBoard
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from garde.gateway.health import HealthChecker
from garde.gateway.modefeed import ModeFeedFollower
from garde.gateway.replay import journal_replayer
from garde.gateway.transport import HttpTransport, Transport
from garde.gateway.upstreams import Mode, ServiceUpstreams
from garde.journal import Journal, JournalStore, Replayer, ReplayPolicy

log = logging.getLogger("garde.gateway")

TOKEN_WATCH_INTERVAL = 1.0
"""Seconds between reads of the subjects whose journaled writes wait for a token."""


class RunningGateway:
    def __init__(
        self,
        catalog: Catalog,
        config: GatewayConfig | None = None,
        journal: Journal | None = None,
        *,
        transport: Transport | None = None,
        reuse_port: bool = False,
        replay: ReplayPolicy | None = None,
        replays: bool = True,
        board: WorkerBoard | None = None,
    ) -> None:
        self.config = config or GatewayConfig()
        self.gateway = Gateway(
            catalog, transport or HttpTransport(), self.config, journal, admin=True, board=board
        )
        assert self.gateway.admin is not None
        self.admin = self.gateway.admin
        self._publishing: asyncio.Task[None] | None = None
        self.server = GatewayServer(self.gateway)
        self.health = HealthChecker(
            self.gateway.upstreams,
            self.gateway.transport,
            interval=self.config.health_interval,
            timeout=self.config.health_timeout,
        )
        self.feed = (
            ModeFeedFollower(
                self.gateway.upstreams, self.config.monitor_feed, timeout=self.config.health_timeout
            )
            if self.config.monitor_feed
            else None
        )
        self.reuse_port = reuse_port
        self.port = 0
        self._token_check = asyncio.Event()
        self.replayer: Replayer | None = None
        self._replaying: asyncio.Task[None] | None = None
        if isinstance(journal, JournalStore) and replays:
            # The journal is drained by this gateway's own upstream side (replay.py).
            self.replayer = journal_replayer(
                self.gateway, journal, policy=replay, on_needs_token=self._token_check.set
            )
            self.gateway.events.changed.connect(self._mode_changed)
            self.gateway.policy.entry_journaled.connect(self.replayer.journaled)
            self.gateway.callers.entries_released.connect(lambda _count: self._poke())
        self._watching: asyncio.Task[None] | None = None
        self._rpo: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def start(self) -> RunningGateway:
        self.config.check()
        self.port = await self.server.start(
            self.config.host, self.config.port, reuse_port=self.reuse_port
        )
        if self.config.health_checks:
            self.health.start()
        if self.replayer is not None:
            self._replaying = asyncio.get_running_loop().create_task(self.replayer.run())
        if self.gateway.callers.journal is not None:
            self._watching = asyncio.get_running_loop().create_task(self._watch_tokens())
        if self.replayer is not None:  # one alert per replaying gateway, not per worker
            watch = RpoWatch(self.replayer.journal, self.gateway.catalog)
            self._rpo = asyncio.get_running_loop().create_task(self._watch_rpo(watch))
        if self.feed is not None:
            self.feed.start()
        if self.gateway.board is not None:
            self._publishing = asyncio.get_running_loop().create_task(self._publish())
        return self

    async def _publish(self) -> None:
        """Keep this worker's snapshot fresh on the board (see ``board.py``)."""
        board = self.gateway.board
        assert board is not None
        while True:
            try:
                board.publish(self.admin.snapshot())
            except OSError as exc:  # the folder went away: the gateway is stopping
                log.warning("cannot publish this worker's snapshot: %s", exc)
            await asyncio.sleep(1.0)

    async def _watch_tokens(self) -> None:
        """Keep the subjects the journal waits a token for up to date (every worker and
        every gateway sharing the journal reads them: any of them may see the token)."""
        callers = self.gateway.callers
        while True:
            await callers.refresh()
            self._token_check.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TOKEN_WATCH_INTERVAL):
                    await self._token_check.wait()

    async def _watch_rpo(self, watch: RpoWatch) -> None:
        while True:
            await watch.check()
            await asyncio.sleep(RPO_CHECK_INTERVAL)

    def _poke(self) -> None:
        if self.replayer is not None:
            self.replayer.poke()

    def _mode_changed(self, upstreams: ServiceUpstreams) -> None:
        if upstreams.mode is not Mode.OFFLINE and self.replayer is not None:
            self.replayer.poke()  # a service came back: its journaled writes may go now

    async def stop(self) -> None:
        for task in (self._watching, self._rpo):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
        if self.replayer is not None and self._replaying is not None:
            self.replayer.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await self._replaying
        if self.feed is not None:
            await self.feed.close()
        await self.health.close()
        await self.server.close()
        await self.gateway.close()

    async def __aenter__(self) -> RunningGateway:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
