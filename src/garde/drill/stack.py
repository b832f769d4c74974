"""The chain a drill runs on: ``garde lab up``, one ``garde gateway`` per gateway of each site
copy, and ``garde monitor``, all real processes on loopback, with their files in the run's
directory (catalog wired to the lab, gateway settings, journals, logs).

A gateway keeps its port across a kill and restart, as the one at a real site does, so that
the software in front of it finds it again. SQLite journals are one file per gateway; a site
with ``journal: postgres`` shares one schema between its gateways, in the database named by
``GARDE_DRILL_POSTGRES`` (default ``postgresql://127.0.0.1:5432/test``).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garde.catalog import Catalog
from garde.drill.files import eid_identity, write_catalog, write_settings
from garde.drill.people import nihii
from garde.drill.procs import GatewayProcess, Process, free_port
from garde.drill.scenario import CheckedScenario
from garde.drill.settings import drill_settings
from garde.errors import DrillError

# A killed gateway may die holding leases on entries it was sending; its restart (or another
# gateway of the site) takes them only once they run out. Short leases keep the drain of a
# drill with kills from idling for the default minute. A service that comes back is replayed
# after a random moment up to 5 s, as sites that recover together should be (the replayer's
# start jitter): two dozen gateways would otherwise all send their first entries together.
REPLAY_ENV = {
    "GARDE_REPLAY_LEASE": "10s",
    "GARDE_REPLAY_SEND_TIMEOUT": "5s",
    "GARDE_REPLAY_JITTER": "5s",
}


@dataclass
class SiteCopy:
    """One site as it runs: ``pharmacy-3``, its provider and its gateways."""

    name: str
    site: str
    group: str
    identity: str
    gateways: list[Gateway]


@dataclass
class Gateway:
    site: str
    number: int
    url: str
    process: Process
    journal: str = ""
    started: bool = False

    async def start(self) -> None:
        """Start it; on its first start, a port taken meanwhile (the free port was only
        free when picked) is replaced by another. A restart keeps its port."""
        for attempt in range(4):
            try:
                await self.process.start(r"listening on http://127\.0\.0\.1:\d+")
                self.started = True
                return
            except DrillError as exc:
                if self.started or attempt == 3 or "Address already in use" not in str(exc):
                    raise
            port = free_port()
            at = self.process.args.index("--port") + 1
            self.process.args[at] = str(port)
            self.url = f"http://127.0.0.1:{port}"


class Stack:
    """Builds, starts and stops the processes of one drill."""

    def __init__(self, checked: CheckedScenario, run_dir: Path, monitor: bool = True) -> None:
        self.checked = checked
        self.dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.with_monitor = monitor
        self.lab: Process | None = None
        self.control = ""
        self.endpoints: dict[str, dict[str, str]] = {}
        self.wired: Catalog | None = None
        self.monitor: Process | None = None
        self.monitor_url: str | None = None
        self.sites: list[SiteCopy] = []
        self.run_id = secrets.token_hex(3)
        self.schemas: list[tuple[str, str]] = []
        """(database URL, schema) of the PostgreSQL journals this drill created."""

    @property
    def processes(self) -> list[Process]:
        found = [g.process for s in self.sites for g in s.gateways]
        return found + [p for p in (self.monitor, self.lab) if p is not None]

    @property
    def gateways(self) -> list[Gateway]:
        return [g for s in self.sites for g in s.gateways]

    async def start_lab(self) -> None:
        source = write_catalog(self.checked.catalog, self.dir / "catalog.yaml")
        self.lab = Process(
            "the lab", ["lab", "up", "--catalog", str(source), "--base-port", "0"],
            self.logs / "lab.log",
        )  # fmt: skip
        found = await self.lab.start(r"control API: (http://127\.0\.0\.1:\d+)")
        self.control = found.group(1)

    async def start_parts(self, endpoints: dict[str, dict[str, str]]) -> None:
        """The monitor and every gateway, at once, once the lab's endpoints are known."""
        self.endpoints = endpoints
        self.wired = self.checked.catalog.with_endpoints(endpoints)
        wired = write_catalog(self.wired, self.dir / "catalog-wired.yaml")
        if self.with_monitor:
            port = free_port()
            self.monitor_url = f"http://127.0.0.1:{port}"
            self.monitor = Process(
                "the monitor",
                ["monitor", "--catalog", str(wired), "--port", str(port), "--location", "drill",
                 "--db", f"sqlite:///{self.dir / 'monitor.sqlite'}"],
                self.logs / "monitor.log",
            )  # fmt: skip
        self.sites = self._sites(wired)
        starts = [g.start() for g in self.gateways]
        if self.monitor is not None:
            starts.append(self.start_monitor())
        await asyncio.gather(*starts)

    async def start_monitor(self) -> None:
        assert self.monitor is not None
        await self.monitor.start(r"garde monitor: http://")

    def _sites(self, wired: Path) -> list[SiteCopy]:
        found = []
        serial = 0
        for site in self.checked.scenario.sites:
            for copy in range(1, site.copies + 1):
                serial += 1
                name = site.name if site.copies == 1 else f"{site.name}-{copy}"
                identity = nihii(site.target_group, 12_000 + serial)
                config = self.dir / f"gateway-{name}.yaml"
                write_settings(config, self._settings(site.target_group, identity))
                journal = self._journal(name, site.journal)
                gateways = []
                for number in range(1, site.gateways + 1):
                    port = free_port()
                    workers = ["--workers", str(site.workers)] if site.workers else []
                    log = self.logs / f"gateway-{name}-{number}.log"
                    process = GatewayProcess(
                        wired, config, journal(number), REPLAY_ENV, port=port, log=log,
                        extra=workers,
                    ).process  # fmt: skip
                    process.name = f"gateway {number} of {name}"
                    url = f"http://127.0.0.1:{port}"
                    gateways.append(Gateway(name, number, url, process, journal(number)))
                found.append(SiteCopy(name, site.name, site.target_group, identity, gateways))
        return found

    def _settings(self, group: str, identity: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "target_group": group,
            # Every second: a drill measures recovery in seconds, and the health check is
            # what tells a gateway a data center is back. Every 5 s with more than four
            # gateways: two dozen of them checking every service each second would be a
            # load test of the lab, not a drill.
            "health_interval": "1s" if self.checked.scenario.gateway_count <= 4 else "5s",
            "identities": eid_identity(identity),
        }
        if self.monitor_url is not None:
            settings["monitor_feed"] = self.monitor_url
        return settings

    def _journal(self, name: str, backend: str) -> Any:
        if backend == "postgres":
            base = drill_settings().postgres
            schema = re.sub(r"[^a-z0-9_]", "_", f"drill_{self.run_id}_{name}")
            glue = "&" if "?" in base else "?"
            self.schemas.append((base, schema))
            return lambda number: f"{base}{glue}schema={schema}"
        return lambda number: f"sqlite:///{self.dir / f'journal-{name}-{number}.db'}"

    def write_endpoints(self) -> dict[str, Any]:
        """``endpoints.json`` in the run's directory: where a vendor's software finds the
        gateways of each site (and the NIHII each holds credentials for), the lab, the monitor."""
        data = {
            "lab_control": self.control,
            "monitor": self.monitor_url,
            "sites": [
                {
                    "name": s.name,
                    "target_group": s.group,
                    "identity": s.identity,
                    "gateways": [g.url for g in s.gateways],
                }
                for s in self.sites
            ],
        }
        (self.dir / "endpoints.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        return data

    def drop_schemas(self) -> None:
        """Drop the drill's PostgreSQL journal schemas (the drill's data are its report's)."""
        if not self.schemas:
            return
        try:
            import psycopg
        except ImportError:
            return
        for base, schema in self.schemas:
            try:
                with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
                    # The name is the drill's own: [a-z0-9_] only (see _journal).
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except psycopg.Error:
                continue

    def journal_files(self, site: str) -> list[Path]:
        """The SQLite journal files of a site copy (for the tests that break one)."""
        return sorted(self.dir.glob(f"journal-{site}-*.db"))

    def gateways_of(self, site: str, number: int | None) -> list[Gateway]:
        """The gateways a kill hits: gateway ``number`` of every copy of ``site``."""
        return [
            g
            for s in self.sites
            if s.site == site
            for g in s.gateways
            if number is None or g.number == number
        ]
