"""A service's history page: availability over the time observed only, period by plain link,
in three languages; and in a real browser, on a phone, with its axes and no sideways scroll."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import html
from starlette.testclient import TestClient

from garde.catalog import Catalog
from garde.monitor.alerts import Notifier
from garde.monitor.clock import ManualClock
from garde.monitor.history import SERVICE_PREFIX, Aggregator
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.web.app import create_app
from tests.browser import OUTPUT as BROWSER_OUTPUT
from tests.browser import PHONE, chromium
from tests.monitor.running import monitor_in_thread

START = 1_800_000_000 - 1_800_000_000 % 3600
"""An hour boundary (2027-01-15 08:00 UTC): the 24 h period starts exactly here."""
HALF_DAY = 12 * 3600
OUTPUT = BROWSER_OUTPUT / "monitor"


def twelve_hours_then_nothing(monitor: Monitor, failing_every: int = 10) -> None:
    """12 h of probes of the insurability service every 10 s (one in ``failing_every`` of the
    service's own samples in outage), recorded the way the monitor records them, then 12 h
    with no probe at all: the clock stands 24 h after the first probe."""
    aggregator = Aggregator()
    for step in range(HALF_DAY // 10):
        at = START + step * 10.0
        down = step % failing_every == 0
        aggregator.add(ProbeResult(SERVICE_PREFIX + "insurability", at, not down, 0.0), False, 10)
        for index, dc in enumerate(("dc1", "dc2", "dc3")):
            latency = 0.040 + 0.020 * index + 0.010 * (step * 10 // 3600 % 3)
            result = ProbeResult(f"insurability@{dc}", at, not (down and dc == "dc1"), latency)
            aggregator.add(result, False, 10)
    monitor.store.add_aggregates(aggregator.flush(START + HALF_DAY, everything=True))
    clock = monitor.clock
    assert isinstance(clock, ManualClock)
    clock.advance(START + 2 * HALF_DAY - clock.now())


@pytest.fixture
def monitor(belgium: Catalog, tmp_path: Path) -> Monitor:
    monitor = Monitor(
        belgium,
        SqliteStore(tmp_path / "m.sqlite"),
        clock=ManualClock(START),
        notifier=Notifier(),
        probe_locally=False,
    )
    twelve_hours_then_nothing(monitor)
    return monitor


def test_availability_is_over_the_observed_half_of_the_day(monitor: Monitor) -> None:
    """12 h probed (10 % of the samples in outage), 12 h not probed: the figure is 90 %
    (not 45 %, as if the gap were down, nor 95 %, as if it were up) and the page says that
    half of the period was observed; the bars of the 12 silent hours say "not observed"."""
    client = TestClient(create_app(monitor))
    answer = client.get("/services/insurability?period=24h&lang=en")
    assert answer.status_code == 200, answer.text
    page = html.fromstring(answer.text)
    assert page.get_element_by_id("figure").text_content().startswith("90.000\u202f%")
    observed = page.get_element_by_id("observed")
    assert observed.text_content() == "50\u202f% of the period observed (12 h of 1 d)"
    assert float(observed.get("data-coverage")) == pytest.approx(0.5, abs=0.001)
    bars = page.xpath('//*[@id="availability-chart"]//rect')
    assert len(bars) == 24
    assert [bar.get("class") for bar in bars] == ["observed"] * 12 + ["not-observed"] * 12
    assert "not observed" in bars[-1].findtext("title")
    # Per data center: dc1 failed with the service, dc2 never did; over the same 12 h.
    centres = page.xpath('//*[@id="data-centers"]/tbody/tr')
    assert [" ".join(t.strip() for t in row.itertext() if t.strip()) for row in centres] == [
        "dc1 90.000\u202f% 50\u202f% of the period observed (12 h of 1 d)",
        "dc2 100.000\u202f% 50\u202f% of the period observed (12 h of 1 d)",
        "dc3 100.000\u202f% 50\u202f% of the period observed (12 h of 1 d)",
    ]
    # The text equivalent: one row per hour, the silent ones without a figure.
    rows = page.xpath('//*[@id="availability-table"]/tbody/tr')
    assert len(rows) == 24
    assert [td.text for td in rows[0].xpath("td")[1:]] == ["90.00\u202f%", "1 h"]
    assert [td.text for td in rows[-1].xpath("td")[1:]] == ["–", "–"]
    latencies = page.xpath('//*[@id="latency-table"]/tbody/tr')
    assert [td.text for td in latencies[0].xpath("td")[1:]] == ["40", "60", "80"]  # ms
    assert [td.text for td in latencies[-1].xpath("td")[1:]] == ["–"] * 3
    # Over 7 days the same 12 h are 7 % of the period: too little for a figure.
    week = html.fromstring(client.get("/services/insurability?period=7d&lang=en").text)
    assert week.get_element_by_id("figure").text_content().startswith("insufficient data")
    assert "7\u202f% of the period observed (12 h of 7 d)" in week.text_content()


def test_periods_languages_and_mistakes(monitor: Monitor) -> None:
    client = TestClient(create_app(monitor))
    status = html.fromstring(client.get("/?lang=nl").text)
    link = status.xpath('//*[@id="service-insurability"]//a')[0].get("href")
    assert link == "/services/insurability?lang=nl"
    page = html.fromstring(client.get(link).text)
    assert page.get_element_by_id("figure").text_content().startswith("90,000\u202f%")
    assert "50\u202f% van de periode waargenomen (12 u van 1 d)" in page.text_content()
    periods = {a.text: a.get("href") for a in page.xpath('//*[@id="periods"]/a')}
    assert periods == {
        "7 dagen": "?period=7d&lang=nl",
        "30 dagen": "?period=30d&lang=nl",
        "90 dagen": "?period=90d&lang=nl",
    }
    for period, bars in (("7d", 42), ("30d", 30), ("90d", 90)):
        found = html.fromstring(client.get(f"/services/insurability?period={period}").text)
        assert len(found.xpath('//*[@id="availability-chart"]//rect')) == bars, period
    fr = client.get("/services/insurability?period=24h&lang=fr").text
    assert "50\u202f% de la période observée (12 h sur 1 j)" in html.fromstring(fr).text_content()
    wrong = client.get("/services/insurability?period=1y")
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "period '1y' is not one of 24h, 7d, 30d, 90d: use ?period=7d"}
    missing = client.get("/services/nope")
    assert missing.status_code == 404 and "no service 'nope'" in missing.json()["error"]


@pytest.mark.e2e
def test_history_page_in_a_browser_on_a_phone(monitor: Monitor) -> None:
    """Chromium opens the history page in the three languages at phone width: both charts
    have their axes, tick labels in Belgian time and units, a title and description for
    screen readers, the table in a disclosure; nothing scrolls sideways."""
    expected = {
        "en": ("Availability", "Belgian time", "of the period observed"),
        "fr": ("Disponibilité", "heure belge", "de la période observée"),
        "nl": ("Beschikbaarheid", "Belgische tijd", "van de periode waargenomen"),
    }
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with monitor_in_thread(monitor) as url, chromium() as browser:
        page = browser.new_page(java_script_enabled=False, viewport=PHONE)
        for lang, (heading, axis, observed) in expected.items():
            page.goto(f"{url}/services/insurability?period=24h&lang={lang}")
            assert page.locator("#availability").inner_text().startswith(heading), lang
            assert observed in page.locator("#observed").inner_text(), lang
            for chart in ("#availability-chart", "#latency-chart"):
                assert page.locator(f"{chart} line.axis").count() == 2, (lang, chart)
                ticks = page.locator(f"{chart} text.x-tick").all_text_contents()
                # 08:00 UTC in January is 09:00 in Brussels: the ticks are local hours.
                assert ticks == ["12:00", "18:00", "00:00", "06:00"], (lang, chart, ticks)
                assert page.locator(f"{chart} text.x-unit").text_content() == axis
                assert page.locator(f"{chart} text.y-tick").count() == 3
                assert page.locator(f"{chart} title").first.text_content()
                assert page.locator(f"{chart} desc").text_content()
                box = page.locator(chart).bounding_box()
                assert box is not None and box["width"] > 300, "the chart fills the phone"
            assert page.locator("#latency-chart text.y-unit").text_content() == "ms"
            assert page.locator("#latency-chart polyline.latency").count() == 3
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{lang}: nothing to scroll sideways on a phone"
            page.screenshot(path=str(OUTPUT / f"history-{lang}-phone.png"), full_page=True)
        page.goto(f"{url}/services/insurability?period=7d&lang=en")
        page.locator("#periods a", has_text="90 days").click()
        assert page.url.endswith("?period=90d&lang=en")
        assert page.locator("#availability-chart rect").count() == 90
        page.locator("#numbers summary").click()
        assert page.locator("#availability-table tbody tr").count() == 90
        page.screenshot(path=str(OUTPUT / "history-90d-table.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_status_page_of_thousands_of_targets_links_each_service_to_its_history(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over ``COMPACT_OVER`` targets the services table is a line per service with its
    data centers' states, its name linking to the charts, and no 90-day bars."""
    from garde.monitor.web import views

    monkeypatch.setattr(views, "COMPACT_OVER", 10)  # the belgium catalog has 38 targets
    page = html.fromstring(TestClient(create_app(monitor)).get("/?lang=en").text)
    row = page.get_element_by_id("service-insurability")
    assert row.xpath(".//a")[0].get("href") == "/services/insurability?lang=en"
    assert (
        row.xpath("td")[1].text_content() == "dc1: not probed yet · dc2: not probed yet ·"
        " dc3: not probed yet"
    )
    assert not page.xpath('//svg[@class="bar"]') and not page.xpath('//svg[@class="spark"]')
