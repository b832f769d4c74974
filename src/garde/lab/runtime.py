"""The lab as one object: every simulated service in every data center, behind fault proxies.

``async with Lab(catalog, base_port=0) as lab`` starts, in the running event loop, one
simulator listener per (service, data center) on an internal port, one fault proxy at the
catalog's endpoint (shifted by ``base_port - 18000``, or on free ports with ``base_port=0``)
and the control API. ``lab_in_thread`` runs the same in a background thread for synchronous
tests and tools.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from garde.catalog import Catalog
from garde.errors import UsageError
from garde.lab.capacity import Capacity, make_capacity
from garde.lab.faults import Fault, FaultKind, make_fault
from garde.lab.http import HttpServer
from garde.lab.ledger import Ledger
from garde.lab.proxy import LinkProxy
from garde.lab.services.base import LabContext, LabSettings, SimulatedService
from garde.lab.services.registry import SIMULATORS
from garde.lab.store import Database, Idempotency
from garde.lab.tokens import TokenAuthority
from garde.ports import listen_problem

CATALOG_BASE_PORT = 18000
"""The catalog's lab endpoints are written for a lab whose control API is on this port."""

T = TypeVar("T")


class FaultControl:
    """Set and heal faults; callable from the lab's event loop or from any other thread."""

    def __init__(self, targets: dict[tuple[str, str], LinkProxy], runner: Callable[..., Any]):
        self._targets = targets
        self._run = runner

    def _target(self, service: str, dc: str) -> LinkProxy:
        target = self._targets.get((service, dc))
        if target is None:
            services = sorted({s for s, _ in self._targets})
            if service not in services:
                raise UsageError(f"unknown service {service!r}; the lab serves {services}")
            dcs = sorted(d for s, d in self._targets if s == service)
            raise UsageError(f"{service} has no data center {dc!r}; it has {dcs}")
        return target

    def set(self, service: str, dc: str, kind: str, **options: Any) -> Fault:
        """Inject a fault; options as in ``garde.lab.faults`` (``for_`` for ``for``)."""
        if "for_" in options:
            options["for"] = options.pop("for_")
        target = self._target(service, dc)
        fault = make_fault(kind, options)
        self._run(target.set, fault)
        return fault

    def heal(
        self, service: str | None = None, dc: str | None = None, kind: str | None = None
    ) -> int:
        """Remove faults: all, of one service, of one (service, dc), optionally of one kind."""
        fault_kind = None
        if kind is not None:
            try:
                fault_kind = FaultKind(kind)
            except ValueError:
                raise UsageError(f"unknown fault kind {kind!r}") from None
        return sum(self._run(t.heal, fault_kind) for t in self._scope(service, dc))

    def active(self, service: str, dc: str) -> list[dict[str, Any]]:
        return [f.as_json() for f in self._target(service, dc).faults.values()]

    def _scope(self, service: str | None, dc: str | None) -> list[LinkProxy]:
        if service is not None and dc is not None:
            return [self._target(service, dc)]
        if service is not None:
            targets = [t for (s, _), t in self._targets.items() if s == service]
            if not targets:
                self._target(service, "")
            return targets
        return list(self._targets.values())

    def set_capacity(
        self,
        service: str,
        dc: str | None = None,
        options: dict[str, Any] | None = None,
        **more: Any,
    ) -> Capacity:
        """Give ``service`` (in ``dc``, or each of its data centers) a capacity; options as
        in ``garde.lab.capacity`` (``rate``, ``retry_after``), as a mapping or keywords."""
        capacity = make_capacity({**(options or {}), **more})
        for target in self._scope(service, dc):
            self._run(target.set_capacity, capacity)
        return capacity

    def clear_capacity(self, service: str | None = None, dc: str | None = None) -> int:
        """Remove capacity limits (the load is still metered); the number removed."""
        targets = [t for t in self._scope(service, dc) if t.capacity is not None]
        for target in targets:
            self._run(target.set_capacity, None)
        return len(targets)

    def capacity(self, service: str, dc: str) -> dict[str, Any] | None:
        capacity = self._target(service, dc).capacity
        return None if capacity is None else capacity.as_json()

    def load(self) -> list[dict[str, Any]]:
        """The load each metered (service, dc) was offered: ``{"service", "dc", "capacity",
        "peak_offered", "peak_admitted", "offered_total", "refused_total", "offered": [[second,
        n]], "refused": [[second, n]]}``, seconds since the epoch."""

        def read() -> list[dict[str, Any]]:
            return [
                {
                    "service": service,
                    "dc": dc,
                    "capacity": None if t.capacity is None else t.capacity.as_json(),
                    **t.meter.as_json(),
                }
                for (service, dc), t in self._targets.items()
                if t.meter is not None
            ]

        found: list[dict[str, Any]] = self._run(read)
        return found


class Lab:
    """The simulated chain. See the module docstring; ``endpoints`` once started."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        host: str = "127.0.0.1",
        base_port: int = 0,
        token_validity: float | None = None,
        settings: LabSettings | None = None,
        clock: Callable[[], float] = time.time,
        database: str | Path = ":memory:",
        memory_link: bool = True,
    ) -> None:
        self.catalog = catalog
        self.host = host
        self.base_port = base_port
        validity = token_validity
        if validity is None:
            validity = catalog.token_service.validity if catalog.token_service else 3600.0
        base = settings or LabSettings()
        self.settings = LabSettings(
            token_validity=validity,
            efact_ack_delay=base.efact_ack_delay,
            chapter4_decision_delay=base.chapter4_decision_delay,
            timezone=base.timezone,
            max_body=base.max_body,
        )
        self.clock = clock
        self.memory_link = memory_link
        """Proxies reach their simulator in memory (True) or over its TCP port (False)."""
        self.db = Database(database)
        self.ledger = Ledger(self.db, clock)
        self.tokens = TokenAuthority(validity, clock)
        self.context = LabContext(
            self.db, self.ledger, Idempotency(self.db), self.tokens, clock, self.settings
        )
        self.simulators: dict[str, SimulatedService] = {}
        self.targets: dict[tuple[str, str], LinkProxy] = {}
        self._servers: list[HttpServer] = []
        self._control: HttpServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.faults = FaultControl(self.targets, self._on_loop)
        self.endpoints: dict[str, dict[str, str]] = {}
        self.internal: dict[tuple[str, str], tuple[str, int]] = {}
        """(service, dc) -> the simulator's own TCP address, behind the proxy (no faults)."""
        self.control_url = ""

    # -- lifecycle -----------------------------------------------------------------------

    def _port(self, catalog_port: int) -> int:
        if self.base_port == 0:
            return 0
        return catalog_port + self.base_port - CATALOG_BASE_PORT

    async def start(self) -> None:
        from garde.lab.control import ControlApi

        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            for sid, service in self.catalog.services.items():
                simulator_class = SIMULATORS.get(sid)
                if simulator_class is None:
                    continue
                simulator = simulator_class(self.context, service)
                self.simulators[sid] = simulator
                for dc, url in service.endpoints.items():
                    await self._serve(simulator, dc, url)
            self._control = HttpServer(ControlApi(self).handle)
            await self._bind(self._control, self.base_port, "the control API")
            self.control_url = f"http://{self._url_host()}:{self._control.port}"
        except BaseException:
            await self.stop()
            raise

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def _serve(self, simulator: SimulatedService, dc: str, url: str) -> None:
        parts = urlsplit(url)
        server = HttpServer(
            lambda request, dc=dc: simulator.handle(request, dc),  # type: ignore[misc]
            max_body=self.settings.max_body,
        )
        await self._bind(server, 0, f"{simulator.id}/{dc} simulator")
        self.internal[(simulator.id, dc)] = (self.host, server.port)
        target = LinkProxy(
            simulator.id,
            dc,
            self.host,
            self._port(parts.port or 80),
            (self.host, server.port),
            link=server.make_protocol if self.memory_link else None,
        )
        try:
            await target.start()
        except OSError as exc:
            # A port in use is the user's to change, as for the gateway and the monitor.
            raise UsageError(
                f"{listen_problem(self.host, target.port, exc, '--base-port')}"
                f" (for {simulator.id}/{dc}; is another lab running?)"
            ) from None
        self.targets[(simulator.id, dc)] = target
        self.endpoints.setdefault(simulator.id, {})[dc] = (
            f"http://{self._url_host()}:{target.port}{parts.path}"
        )

    async def _bind(self, server: HttpServer, port: int, what: str) -> None:
        try:
            await server.start(self.host, port)
        except OSError as exc:
            raise UsageError(
                f"{listen_problem(self.host, port, exc, '--base-port')}"
                f" (for {what}; is another lab running?)"
            ) from None
        self._servers.append(server)

    async def stop(self) -> None:
        for target in self.targets.values():
            await target.stop()
        servers = list(self._servers)
        for server in servers:
            await server.stop()
        self._servers.clear()
        # Closed transports finish closing on the next loop iterations; let them, and close
        # what was accepted meanwhile, so that the loop is not closed under them.
        await asyncio.sleep(0.01)
        for target in self.targets.values():
            await target.sweep()
        for server in servers:
            await server.sweep()

    async def __aenter__(self) -> Lab:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self.db.close()

    # -- queries -------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One entry per (service, dc): ``{"service", "dc", "url", "faults", "capacity"}``."""
        return [
            {
                "service": service,
                "dc": dc,
                "url": self.endpoints[service][dc],
                "faults": self._on_loop(self.faults.active, service, dc),
                "capacity": self.faults.capacity(service, dc),
            }
            for (service, dc) in self.targets
        ]

    def _on_loop(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the lab's event loop thread (directly if already there)."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            return function(*args)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return future.result(timeout=30)


@contextmanager
def lab_in_thread(catalog: Catalog, *, uvloop: bool = False, **options: Any) -> Iterator[Lab]:
    """A started ``Lab`` whose event loop runs in a background thread; stopped on exit.

    ``uvloop=True`` runs it on uvloop, as ``garde lab up`` does.
    """
    lab = Lab(catalog, **options)
    loop: asyncio.AbstractEventLoop
    if uvloop:
        import uvloop as uv

        loop = uv.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[None] = concurrent.futures.Future()
    stopping = asyncio.Event()

    async def main() -> None:
        try:
            await lab.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        await stopping.wait()
        await lab.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        started.result(timeout=60)
        yield lab
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=30)
        loop.close()
        lab.db.close()
