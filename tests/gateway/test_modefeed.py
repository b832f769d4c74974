"""The gateway follows the monitor's mode feed: dead data centers leave rotation early."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garde.catalog import Catalog
from garde.gateway.modefeed import ModeFeedFollower
from garde.gateway.upstreams import Breaker, Mode, OutlierSettings, ServiceUpstreams


class Clocks:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def setup(belgium: Catalog) -> tuple[ModeFeedFollower, ServiceUpstreams, Clocks]:
    clocks = Clocks()
    upstreams = ServiceUpstreams(
        belgium.services["insurability"],
        OutlierSettings(),
        clock=lambda: clocks.mono,
        wall=lambda: clocks.wall,
    )
    follower = ModeFeedFollower(
        {"insurability": upstreams}, "http://monitor", wall=lambda: clocks.wall
    )
    return follower, upstreams, clocks


def feed(clocks: Clocks, **entry: Any) -> dict[str, Any]:
    base = {"mode": "normal", "avoid_data_centers": [], "valid_until": _iso(clocks.wall + 30)}
    return {"services": {"insurability": {**base, **entry}}}


def test_a_dc_the_monitor_sees_down_leaves_rotation(setup: Any) -> None:
    follower, upstreams, clocks = setup
    held = follower.apply(feed(clocks, avoid_data_centers=["dc1"], status="reduced_redundancy"))
    assert held == {"insurability": ["dc1"]}
    assert [link.dc for link in upstreams.plan()] == ["dc2", "dc3"]
    assert upstreams.mode is Mode.DEGRADED
    assert upstreams.links[0].last_error == "monitor feed: reduced_redundancy"


def test_offline_takes_every_link_out_so_no_request_waits(setup: Any) -> None:
    follower, upstreams, clocks = setup
    follower.apply(feed(clocks, mode="offline", status="outage"))
    assert upstreams.plan() == []
    assert upstreams.mode is Mode.OFFLINE


def test_recovery_in_the_feed_releases_half_open(setup: Any) -> None:
    follower, upstreams, clocks = setup
    follower.apply(feed(clocks, avoid_data_centers=["dc1"]))
    follower.apply(feed(clocks))
    dc1 = upstreams.links[0]
    assert dc1.breaker(clocks.mono) is Breaker.HALF_OPEN, "one trial request proves it first"
    assert [link.dc for link in upstreams.plan()][-1] == "dc1"


def test_a_hold_expires_with_valid_until(setup: Any) -> None:
    """If the monitor goes silent, its word stops counting: the gateway's own checks rule."""
    follower, upstreams, clocks = setup
    follower.apply(feed(clocks, avoid_data_centers=["dc2"]))
    clocks.advance(31)
    assert upstreams.links[1].breaker(clocks.mono) is Breaker.HALF_OPEN


def test_stale_or_unknown_entries_change_nothing(setup: Any) -> None:
    follower, upstreams, clocks = setup
    stale = feed(clocks, mode="offline")
    stale["services"]["insurability"]["valid_until"] = _iso(clocks.wall - 1)
    follower.apply(stale)
    follower.apply({"services": {"unknown-service": {"mode": "offline"}}})
    assert [link.dc for link in upstreams.plan()] == ["dc1", "dc2", "dc3"]
    with pytest.raises(ValueError, match="services"):
        follower.apply({"nope": 1})


def test_the_feed_never_releases_what_the_gateway_ejected_itself(setup: Any) -> None:
    follower, upstreams, clocks = setup
    for _ in range(5):
        upstreams.failed(upstreams.links[0], "HTTP 503")
    assert upstreams.links[0].breaker(clocks.mono) is Breaker.OPEN
    follower.apply(feed(clocks))
    assert upstreams.links[0].breaker(clocks.mono) is Breaker.OPEN


def test_poll_survives_an_unreachable_monitor(setup: Any) -> None:
    follower, upstreams, _clocks = setup

    async def broken() -> dict[str, Any]:
        raise OSError("connection refused")

    follower._fetch = broken
    asyncio.run(follower.poll())
    assert follower.failures == 1
    assert [link.dc for link in upstreams.plan()] == ["dc1", "dc2", "dc3"]


def test_follows_a_real_monitor(belgium: Catalog, tmp_path: Any) -> None:
    """End to end in-process: the monitor's own mode feed, fetched over HTTP."""
    from starlette.testclient import TestClient

    from garde.monitor.alerts import Notifier
    from garde.monitor.clock import ManualClock
    from garde.monitor.probes import ProbeResult
    from garde.monitor.service import Monitor
    from garde.monitor.store.sqlite import SqliteStore
    from garde.monitor.web.app import create_app

    clock = ManualClock()
    monitor = Monitor(
        belgium,
        SqliteStore(tmp_path / "m.sqlite"),
        clock=clock,
        notifier=Notifier(),
        probe_locally=False,
    )
    for _ in range(4):
        for tid in monitor.tracker.targets:
            ok = tid != "insurability@dc2"
            monitor.ingest(ProbeResult(tid, clock.now(), ok, 0.01))
        asyncio.run(monitor.tick())
        clock.advance(10)
    client = TestClient(create_app(monitor))
    upstreams = ServiceUpstreams(belgium.services["insurability"], OutlierSettings())

    async def fetch() -> dict[str, Any]:
        data = client.get("/api/v1/modes").json()
        assert isinstance(data, dict)
        return data

    follower = ModeFeedFollower(
        {"insurability": upstreams}, "http://monitor", fetch=fetch, wall=clock.now
    )
    asyncio.run(follower.poll())
    assert [link.dc for link in upstreams.plan()] == ["dc1", "dc3"]
