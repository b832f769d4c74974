"""Every figure the monitor shows is true: availability over the time observed (never
extrapolated over the rest of a period), with how much of the period that was, and
"insufficient data" instead of a figure when that is too little. Through what a reader sees:
the JSON API, the pages, the CSV and ``garde sla``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from lxml import etree
from starlette.testclient import TestClient

from garde.catalog import Catalog
from garde.cli import cli
from garde.monitor.alerts import Notifier
from garde.monitor.clock import ManualClock
from garde.monitor.history import Aggregator
from garde.monitor.observed import MIN_COVERAGE, MIN_OBSERVED, Observed
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.store.base import Aggregate, Resolution, Store
from garde.monitor.web.app import create_app
from tests.monitor.conftest import PG_URL

DAY = 86400.0


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def db_url(store: Store) -> str:
    """The ``--db`` a CLI command would be given for ``store``."""
    schema = getattr(store, "schema", None)
    if schema is not None:
        return f"{PG_URL}?schema={schema}"
    return f"sqlite:///{store.path}"


def garde(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


class Run:
    """A monitor fed one probe round of every target every 10 s by a moved clock."""

    def __init__(self, catalog: Catalog, store: Store, start: float) -> None:
        self.clock = ManualClock(start)
        self.monitor = Monitor(
            catalog,
            store,
            clock=self.clock,
            notifier=Notifier(),
            probe_locally=False,
            settle_factor=1.0,
        )

    def rounds(self, count: int, failing: Callable[[str], bool] = lambda t: False) -> None:
        for _ in range(count):
            now = self.clock.now()
            for tid in self.monitor.tracker.targets:
                bad = failing(tid)
                self.monitor.ingest(
                    ProbeResult(tid, now, not bad, 0.02, error="HTTP 503" if bad else None)
                )
            asyncio.run(self.monitor.tick())
            self.clock.advance(10)
        asyncio.run(self.monitor.flush())

    def client(self) -> TestClient:
        return TestClient(create_app(self.monitor))


def recipe_down(target: str) -> bool:
    return target.startswith("recipe-executor@")


def test_a_first_outage_of_21_minutes_is_21_minutes_down_and_insufficient_data(
    belgium: Catalog, store: Store
) -> None:
    """garde starts watching on the last evening of October and Recip-e fails at once: down
    from its third failed round (hysteresis) to now, 21 minutes 20 s later. That is 21 minutes
    observed down, not 39,325 minutes of a month at 11.9 %, and no availability figure from
    so little data."""
    run = Run(belgium, store, ts("2026-10-31T23:30:00"))
    run.rounds(128, recipe_down)
    observed = 128 * 10.0  # each round's sample covers its 10 s

    # The JSON API, while the month still runs (the monitor's clock is in it).
    c = run.client()
    body = c.get("/api/v1/sla/2026-10").json()
    assert body["complete"] is False
    assert body["period_end"] == "2026-10-31T23:51:20.000Z"
    assert body["period_end_unix"] == ts("2026-10-31T23:51:20")  # deprecated, one release
    assert body["period_seconds"] == ts("2026-10-31T23:51:20") - ts("2026-10-01T00:00:00")
    recipe = next(s for s in body["services"] if s["service"] == "recipe-executor")
    assert recipe["availability"] is None
    assert recipe["insufficient_data"] is True
    assert recipe["downtime_minutes"] == pytest.approx(21.0)
    assert recipe["observed_seconds"] == pytest.approx(observed)
    assert recipe["coverage"] == pytest.approx(observed / body["period_seconds"], rel=1e-3)
    assert all(v is None for v in recipe["data_centers"].values())
    assert recipe["data_centers_observed"]["dc1"]["insufficient_data"] is True
    sts = next(s for s in body["services"] if s["service"] == "sts")
    assert sts["availability"] is None, "up all along, but 21 minutes say nothing of a month"
    assert sts["downtime_minutes"] == 0.0

    # The page, in the three languages.
    page = c.get("/sla/2026-10?lang=en").text
    row = "".join(etree.HTML(page).xpath('//tr[@id="sla-recipe-executor"]')[0].itertext())
    assert "insufficient data" in row
    assert "21.0" in row
    assert "21 min" in row
    assert "%" not in row.split("insufficient data")[0], "no percentage before the words"
    assert "données insuffisantes" in c.get("/sla/2026-10?lang=fr").text
    assert "onvoldoende gegevens" in c.get("/sla/2026-10?lang=nl").text
    assert "11.9" not in page

    # The CSV: no figure, the observed minutes and the flag at the end of the line.
    rows = {r["service"]: r for r in csv.DictReader(io.StringIO(c.get("/sla/2026-10.csv").text))}
    assert rows["recipe-executor"]["availability_percent"] == ""
    assert rows["recipe-executor"]["downtime_minutes"] == "21.0"
    assert rows["recipe-executor"]["observed_minutes"] == "21.3"
    assert rows["recipe-executor"]["insufficient_data"] == "true"

    # The CLI, after the month (its clock is the machine's): the whole month is the period.
    out = json.loads(garde("sla", "--month", "2026-10", "--json", "--db", db_url(store)))
    assert out["complete"] is True
    assert out["period_seconds"] == 31 * DAY
    recipe = next(s for s in out["services"] if s["service"] == "recipe-executor")
    assert (recipe["availability"], recipe["insufficient_data"]) == (None, True)
    assert recipe["downtime_minutes"] == pytest.approx(21.0)
    assert recipe["coverage"] == pytest.approx(observed / (31 * DAY), rel=1e-3)
    table = garde("sla", "--month", "2026-10", "--db", db_url(store))
    line = next(x for x in table.splitlines() if "recipe-executor" in x)
    assert "insufficient data" in line
    assert "21.0" in line
    assert "%" in line and "11.9" not in line  # the coverage, 0.048 %, is the only percentage
    assert "0.048%" in line


def test_a_fully_observed_month_gives_its_availability(belgium: Catalog, store: Store) -> None:
    """Thirty days of the hub's samples, every 10 s, one minute of them down: 99.998 %
    over the whole period, a minute down, coverage 100 %."""
    start = ts("2026-11-01T00:00:00")
    rows = []
    for day in range(30):
        down = 6 if day == 10 else 0
        rows.append(
            Aggregate(
                Resolution.DAY,
                "service:hub",
                int(start + day * DAY),
                8640,
                8640 - down,
                observed=DAY,
            )
        )
    store.add_aggregates(rows)
    run = Run(belgium, store, ts("2026-12-01T00:00:00"))
    body = run.client().get("/api/v1/sla/2026-11").json()
    hub = next(s for s in body["services"] if s["service"] == "hub")
    assert hub["insufficient_data"] is False
    assert hub["coverage"] == pytest.approx(1.0)
    assert hub["availability"] == pytest.approx(1 - 6 / (30 * 8640))
    assert hub["downtime_minutes"] == pytest.approx(1.0)
    page = run.client().get("/sla/2026-11").text
    row = "".join(etree.HTML(page).xpath('//tr[@id="sla-hub"]')[0].itertext())
    assert "99.998%" in row
    assert "100.000%" in row, "the coverage"
    table = garde("sla", "--month", "2026-11", "--db", db_url(store))
    assert "99.998%" in next(x for x in table.splitlines() if " hub " in f" {x} ")


def test_part_of_a_month_observed_is_said_and_too_little_gives_no_figure(
    belgium: Catalog, store: Store
) -> None:
    """Five days of thirty observed: the figure, with a coverage of 1/6. Two days: under a
    tenth of the month, "insufficient data"."""
    start = ts("2026-11-01T00:00:00")
    store.add_aggregates(
        [
            *[
                Aggregate(
                    Resolution.DAY, "service:hub", int(start + d * DAY), 8640, 8640, observed=DAY
                )
                for d in range(25, 30)
            ],
            *[
                Aggregate(
                    Resolution.DAY, "service:kgss", int(start + d * DAY), 8640, 8640, observed=DAY
                )
                for d in range(28, 30)
            ],
        ]
    )
    body = Run(belgium, store, ts("2026-12-05T00:00:00")).client().get("/api/v1/sla/2026-11")
    services = {s["service"]: s for s in body.json()["services"]}
    assert services["hub"]["availability"] == 1.0
    assert services["hub"]["coverage"] == pytest.approx(1 / 6)
    assert services["kgss"]["availability"] is None
    assert services["kgss"]["insufficient_data"] is True
    assert services["kgss"]["coverage"] == pytest.approx(1 / 15)


def test_the_threshold() -> None:
    """A figure needs a tenth of its period observed, and at least an hour."""
    month = 30 * DAY
    assert Observed(MIN_COVERAGE * month, month).sufficient
    assert not Observed(MIN_COVERAGE * month - 1, month).sufficient
    assert Observed(MIN_OBSERVED, 2 * 3600).sufficient
    assert not Observed(MIN_OBSERVED - 1, 2 * 3600).sufficient, "the first hours of a month"
    assert not Observed(0, 0).sufficient
    assert Observed(0, 0).coverage is None, "a month that has not begun"


def test_sla_of_a_month_not_begun_and_bad_months(belgium: Catalog, store: Store) -> None:
    c = Run(belgium, store, ts("2026-12-01T00:00:00")).client()
    body = c.get("/api/v1/sla/2027-03").json()
    assert body["period_seconds"] == 0
    assert {s["coverage"] for s in body["services"]} == {None}
    for bad, words in (("2026-13", "01 to 12"), ("0000-01", "year"), ("March", "YYYY-MM")):
        for url in (f"/api/v1/sla/{bad}", f"/sla/{bad}.json", f"/sla/{bad}"):
            answer = c.get(url)
            assert answer.status_code == 400, url
            assert words in answer.json()["error"]
    assert c.get("/sla/2026-11.pdf").status_code == 404
    result = CliRunner().invoke(cli, ["sla", "--month", "0000-01", "--db", db_url(store)])
    assert result.exit_code != 0
    assert "the year must be" in str(result.exception)


def test_status_page_twelve_minutes_of_data_are_insufficient(
    belgium: Catalog, store: Store
) -> None:
    """Twelve minutes after garde starts, with dc2 of the hub down most of them, the page
    says "insufficient data (12 min observed)" where it said "8.974 %" for 90 days."""
    run = Run(belgium, store, ts("2026-12-02T10:00:00"))
    run.rounds(72, lambda t: t == "hub@dc2")
    c = run.client()
    for lang, words in (
        ("en", "insufficient data (12 min observed)"),
        ("fr", "données insuffisantes (12 min d'observation)"),
        ("nl", "onvoldoende gegevens (12 min waargenomen)"),
    ):
        page = c.get(f"/?lang={lang}").text
        service = etree.HTML(page).xpath('//tr[@id="service-hub"]')[0]
        dc2 = service.getnext().getnext()
        assert dc2.findtext("td") == "dc2"
        state = "".join(dc2.xpath("td")[1].itertext())
        assert words in state
        assert "%" not in state
    history = c.get("/api/v1/history/hub@dc2?resolution=d&days=90").json()
    assert history["availability"] is None
    assert history["insufficient_data"] is True
    assert history["observed_seconds"] == pytest.approx(720)
    assert history["buckets"][0]["observed_seconds"] == pytest.approx(720)
    assert history["buckets"][0]["availability"] == 0.0, "per bucket, as it was"


def test_status_page_gives_the_figure_over_the_days_observed(
    belgium: Catalog, store: Store
) -> None:
    """Thirty days of the hub's dc1 history: the 90-day figure is shown, over 30 d observed."""
    now = ts("2026-12-02T10:00:00")
    today = Resolution.DAY.bucket(now)
    store.add_aggregates(
        [
            Aggregate(
                Resolution.DAY,
                "hub@dc1",
                int(today - d * DAY),
                8640,
                8640 - 864 * (d == 3),
                observed=DAY,
            )
            for d in range(1, 31)
        ]
    )
    page = Run(belgium, store, now).client().get("/?lang=en").text
    dc1 = "".join(etree.HTML(page).xpath('//tr[@id="service-hub"]')[0].getnext().itertext())
    assert dc1.startswith("dc1")
    assert "99.667% over 30 d observed" in dc1


def test_several_locations_cover_the_time_once_and_gaps_are_not_observed(store: Store) -> None:
    """Three locations probing one target every 30 s, staggered, for ten minutes: ten
    minutes observed (and the first sample's interval). Then an hour of silence: not observed."""
    agg = Aggregator()
    t0 = 1_800_000_000.0
    for i in range(20):
        for offset, location in ((0, "brussels"), (10, "ghent"), (20, "liege")):
            agg.add(
                ProbeResult("a@dc1", t0 + i * 30 + offset, True, 0.02, location=location),
                interval=30,
            )
    agg.add(ProbeResult("a@dc1", t0 + 600 + 3600, True, 0.02, location="ghent"), interval=30)
    store.add_aggregates(agg.flush(t0, everything=True))
    (day,) = store.aggregates(Resolution.DAY, t0 - DAY, targets=["a@dc1"])
    assert day.n == 61
    assert day.observed == pytest.approx(30 + 590 + 60)


def test_history_from_before_observed_time_is_estimated(belgium: Catalog, store: Store) -> None:
    """Rows written by an older garde have samples but no observed time: each sample then
    stands for one interval (10 s for a service), at most its day."""
    start = ts("2026-11-01T00:00:00")
    store.add_aggregates(
        [
            Aggregate(Resolution.DAY, "service:hub", int(start + d * DAY), 8640, 8640)
            for d in range(30)
        ]
    )
    body = Run(belgium, store, ts("2026-12-01T00:00:00")).client().get("/api/v1/sla/2026-11")
    hub = next(s for s in body.json()["services"] if s["service"] == "hub")
    assert hub["coverage"] == pytest.approx(1.0)
    assert hub["availability"] == 1.0
