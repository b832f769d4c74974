"""The status page, JSON API, feeds, metrics, push and SLA, in-process (ASGI client)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree
from starlette.testclient import TestClient

from garde.catalog import Catalog
from garde.monitor.alerts import Notifier
from garde.monitor.clock import ManualClock
from garde.monitor.probes import ProbeResult
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.web.app import create_app

ADMIN = "admin-secret"


@pytest.fixture
def monitor(belgium: Catalog, tmp_path: Path) -> Monitor:
    return Monitor(
        belgium,
        SqliteStore(tmp_path / "m.sqlite"),
        clock=ManualClock(),
        notifier=Notifier(),
        probe_locally=False,
        push_tokens={"ghent": "ghent-token"},
        settle_factor=1.0,
    )


def feed_rounds(monitor: Monitor, failing: tuple[str, ...], rounds: int = 4) -> None:
    clock = monitor.clock
    assert isinstance(clock, ManualClock)
    for _ in range(rounds):
        for tid in monitor.tracker.targets:
            bad = tid.startswith(failing) if failing else False
            monitor.ingest(
                ProbeResult(tid, clock.now(), not bad, 0.04, error="HTTP 503" if bad else None)
            )
        asyncio.run(monitor.tick())
        clock.advance(10)
    asyncio.run(monitor.flush())


def client(monitor: Monitor) -> TestClient:
    return TestClient(create_app(monitor, admin_token=ADMIN))


def test_status_page_shows_the_pharmacist_procedure_in_three_languages(monitor: Monitor) -> None:
    feed_rounds(monitor, ("recipe-executor@",))
    c = client(monitor)
    en = c.get("/?lang=en")
    assert en.status_code == 200
    assert "<script" not in en.text, "readable without JavaScript"
    tree = etree.HTML(en.text)
    pharmacist = tree.xpath('//section[@id="group-pharmacist"]')[0]
    text = "".join(pharmacist.itertext())
    assert pharmacist.get("data-status") == "stopped"
    assert "dispense on the paper proof bearing the RID" in text
    fr = c.get("/", headers={"Accept-Language": "fr-BE,fr;q=0.9"})
    assert "preuve papier portant le RID" in fr.text
    assert 'lang="fr"' in fr.text
    nl = c.get("/?lang=nl")
    assert "papieren bewijs met de RID" in nl.text
    assert '<svg class="bar"' in en.text
    assert '<svg class="spark"' in en.text
    assert "Recip-e executor v4: outage" in en.text


def test_healthy_chain_page(monitor: Monitor) -> None:
    feed_rounds(monitor, ())
    page = client(monitor).get("/").text
    assert 'class="overall operational"' in page
    assert "Nothing stops you" in page


def test_status_json_and_mode_feed(monitor: Monitor) -> None:
    feed_rounds(monitor, ("sts@",))
    c = client(monitor)
    status = c.get("/api/v1/status").json()
    assert status["overall"] == "outage"
    assert status["services"]["recipe-executor"]["status"] == "outage"
    assert status["services"]["recipe-executor"]["impacted_by"] == ["sts"]
    modes = c.get("/api/v1/modes").json()
    sts = modes["services"]["sts"]
    assert sts["mode"] == "offline"
    assert sts["avoid_data_centers"] == ["dc1", "dc2", "dc3"]
    assert sts["valid_until"] > modes["generated_at"]
    assert modes["services"]["recipe-executor"]["mode"] == "offline"
    assert modes["services"]["recipe-executor"]["impacted_by"] == ["sts"]


def test_mode_feed_reduced_redundancy_is_normal_with_dcs_to_avoid(monitor: Monitor) -> None:
    feed_rounds(monitor, ("insurability@dc1",))
    entry = client(monitor).get("/api/v1/modes").json()["services"]["insurability"]
    assert entry["mode"] == "normal"
    assert entry["avoid_data_centers"] == ["dc1"]


def test_incident_api_and_operator_updates(monitor: Monitor) -> None:
    feed_rounds(monitor, ("hub@",))
    c = client(monitor)
    (incident,) = c.get("/api/v1/incidents?open=1").json()["incidents"]
    url = f"/api/v1/incidents/{incident['id']}/updates"
    assert c.post(url, json={"message": "x"}).status_code == 401
    bad = c.post(url, json={"message": ""}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert bad.status_code == 400
    assert "message" in bad.json()["error"]
    ok = c.post(
        url,
        json={"message": "Hub provider investigating", "status": "investigating"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert ok.status_code == 201
    assert ok.json()["updates"][-1]["message"] == "Hub provider investigating"
    assert c.get("/api/v1/incidents/999").status_code == 404
    assert "Hub provider investigating" in c.get("/").text


def test_maintenance_api_validates_before_storing(monitor: Monitor) -> None:
    c = client(monitor)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    bad = c.post(
        "/api/v1/maintenance",
        headers=auth,
        json={
            "title": "x",
            "scope": ["nope"],
            "starts_at": "2027-01-01T00:00:00Z",
            "ends_at": "2027-01-01T01:00:00Z",
        },
    )
    assert bad.status_code == 400
    assert "unknown service 'nope'" in bad.json()["error"]
    bad_rule = c.post(
        "/api/v1/maintenance",
        headers=auth,
        json={
            "title": "x",
            "scope": ["hub"],
            "starts_at": "2027-01-01T00:00:00Z",
            "ends_at": "2027-01-01T01:00:00Z",
            "rrule": "FREQ=SOMETIMES",
        },
    )
    assert bad_rule.status_code == 400
    assert "RRULE" in bad_rule.json()["error"]
    assert c.get("/api/v1/maintenance").json()["maintenance"] == []
    start = monitor.clock.now() + 3600
    ok = c.post(
        "/api/v1/maintenance",
        headers=auth,
        json={
            "title": "Hub upgrade",
            "scope": ["hub@dc1"],
            "starts_at": start,
            "ends_at": start + 1800,
        },
    )
    assert ok.status_code == 201
    assert "Hub upgrade" in c.get("/").text, "shown in advance"
    assert c.delete(f"/api/v1/maintenance/{ok.json()['id']}", headers=auth).status_code == 204
    assert "Hub upgrade" not in c.get("/").text


def test_push_requires_the_location_token(monitor: Monitor) -> None:
    c = client(monitor)
    result = {"target": "sts@dc1", "at": monitor.clock.now(), "ok": False, "latency": 0.1}
    assert (
        c.post(
            "/api/v1/results",
            json={"location": "ghent", "results": [result]},
            headers={"Authorization": "Bearer wrong"},
        ).status_code
        == 401
    )
    assert (
        c.post(
            "/api/v1/results",
            json={"location": "mars", "results": []},
            headers={"Authorization": "Bearer ghent-token"},
        ).status_code
        == 403
    ), "ghent's token does not push for another location"
    bad = c.post(
        "/api/v1/results",
        json={"location": "ghent", "results": [{"at": 1}]},
        headers={"Authorization": "Bearer ghent-token"},
    )
    assert bad.status_code == 400
    assert "nothing was accepted" in bad.json()["error"]
    before = monitor.results_ingested
    ok = c.post(
        "/api/v1/results",
        json={"location": "ghent", "results": [result]},
        headers={"Authorization": "Bearer ghent-token"},
    )
    assert ok.json() == {"accepted": 1, "ignored": 0}
    assert monitor.results_ingested == before + 1
    assert monitor.tracker.view("sts@dc1", monitor.clock.now()).locations == {"ghent": "unknown"}


def test_atom_feed_lists_incidents(monitor: Monitor) -> None:
    feed_rounds(monitor, ("etarif@",))
    feed_rounds(monitor, ())
    response = client(monitor).get("/feed.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    root = etree.fromstring(response.content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = root.xpath("//a:entry/a:title/text()", namespaces=ns)
    assert titles == ["[resolved] MyCareNet eTarif (Tarification): outage, no data center answers"]


def test_metrics(monitor: Monitor) -> None:
    feed_rounds(monitor, ("kgss@dc1",))
    text = client(monitor).get("/metrics").text
    assert 'garde_monitor_target_up{dc="dc1",service="kgss",target="kgss@dc1"} 0.0' in text
    assert 'garde_monitor_service_status{service="kgss",status="reduced_redundancy"} 1.0' in text
    assert "garde_monitor_open_incidents 1.0" in text


def test_sla_report_csv_and_html(monitor: Monitor) -> None:
    feed_rounds(monitor, ("chapter4@",), rounds=4)  # down from the 3rd failure (hysteresis)
    feed_rounds(monitor, (), rounds=6)
    from datetime import UTC, datetime

    month = datetime.fromtimestamp(monitor.clock.now(), UTC).strftime("%Y-%m")
    c = client(monitor)
    csv_text = c.get(f"/sla/{month}.csv").text
    lines = {line.split(",")[0]: line.split(",") for line in csv_text.splitlines()}
    assert lines["service"][2] == "availability_percent"
    assert lines["service"][-3:] == ["observed_minutes", "coverage_percent", "insufficient_data"]
    # Down on the 3rd and 4th failing rounds and the 1st good one (2 successes to recover):
    # 3 outage samples of 10 s, 30 s observed down. 100 s are no month: no figure.
    assert lines["chapter4"][2] == ""
    assert lines["chapter4"][3] == "0.5"
    assert lines["chapter4"][-1] == "true"
    assert c.get(f"/sla/{month}").status_code == 200
    bad = c.get("/sla/2026-13.csv")
    assert bad.status_code == 400
    assert "01 to 12" in bad.json()["error"]


def test_openapi_lists_the_paths(monitor: Monitor) -> None:
    spec = client(monitor).get("/openapi.json").json()
    assert "/api/v1/modes" in spec["paths"]
    assert spec["openapi"].startswith("3.")
    json.dumps(spec)


def test_history_api_gives_availability_and_percentiles(monitor: Monitor) -> None:
    feed_rounds(monitor, ("hub@dc1",), rounds=3)
    feed_rounds(monitor, (), rounds=3)
    c = client(monitor)
    body = c.get("/api/v1/history/hub@dc1?resolution=d&days=2").json()
    (day,) = body["buckets"]
    assert day["probes"] == 6
    assert day["up"] == 3
    assert day["availability"] == 0.5
    assert 0.025 <= day["latency_p95"] <= 0.05
    assert c.get("/api/v1/history/hub@dc1?resolution=x").status_code == 400


def test_every_atom_entry_leads_to_a_page_that_exists(monitor: Monitor) -> None:
    """The feed's links were 404 before incident pages existed: follow each one."""
    feed_rounds(monitor, ("etarif@",))
    feed_rounds(monitor, ())
    c = client(monitor)
    root = etree.fromstring(c.get("/feed.atom").content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    links = root.xpath("//a:entry/a:link/@href", namespaces=ns)
    assert links
    for link in links:
        page = c.get(urlsplit(link).path + "?lang=fr")
        assert page.status_code == 200, link
        assert "Résolu" in page.text and "Chronologie" in page.text
    missing = c.get("/incidents/999")
    assert missing.status_code == 404
    assert "999" in missing.json()["error"]
    assert c.get("/incidents/abc").status_code == 400


def test_a_page_per_profession_in_plain_words(monitor: Monitor) -> None:
    feed_rounds(monitor, ("recipe-executor@",))
    c = client(monitor)
    page = etree.HTML(c.get("/for/pharmacist?lang=fr").text)
    banner = "".join(page.xpath('//div[@id="banner"]//text()'))
    assert "À l'arrêt maintenant : Lire les prescriptions électroniques" in banner
    reading = "".join(
        page.xpath('//section[@id="need-recipe-executor.getPrescriptionForExecutor"]//text()')
    )
    assert "Lire les prescriptions électroniques" in reading and "À l'arrêt" in reading
    assert "preuve papier" in reading
    assert "+01:00" in reading or "+02:00" in reading, "since when, in Belgian time"
    working = "".join(page.xpath('//section[@id="need-insurability.getInsurability"]//text()'))
    assert "fonctionne normalement" in working
    assert "Recip-e, délivrance" in c.get("/?lang=fr").text, "the service's name in French"
    assert "panne, aucun centre de données ne répond" in c.get("/?lang=fr").text
    main = etree.HTML(c.get("/?lang=en").text)
    overall = "".join(main.xpath('//div[@id="overall"]//text()'))
    assert "Down in every data center: Recip-e, dispensing" in overall
    assert "Work stopped for: Pharmacists" in overall
    missing = c.get("/for/astronaut")
    assert missing.status_code == 404 and "pharmacist" in missing.json()["error"]


def test_a_profession_page_on_a_good_day(monitor: Monitor) -> None:
    feed_rounds(monitor, ())
    text = client(monitor).get("/for/gp?lang=nl").text
    assert "Alles wat uw werk online nodig heeft, werkt normaal." in text
    assert "volgende update om" in text


def test_a_page_is_rendered_once_per_state_however_many_ask(monitor: Monitor) -> None:
    """A national outage: everyone opens the page at once. One rendering per snapshot and
    language; a browser that has it gets 304; a shared cache may keep it a few seconds."""
    feed_rounds(monitor, ("recipe-executor@",))
    c = client(monitor)
    site = c.app.state.site  # type: ignore[attr-defined]
    first = c.get("/?lang=fr")
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["last-modified"].endswith("GMT")
    assert "s-maxage=5" in first.headers["cache-control"]
    assert "Accept-Language" in first.headers["vary"]
    renders = site.rendered.renders
    for _ in range(20):
        assert c.get("/?lang=fr").text == first.text
    assert site.rendered.renders == renders, "the same state is not rendered again"
    again = c.get("/?lang=fr", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert c.get("/?lang=nl").headers["etag"] != etag, "each language its own page"
    feed_rounds(monitor, ())  # the chain is back: a new snapshot, a new page
    back = c.get("/?lang=fr", headers={"If-None-Match": etag})
    assert back.status_code == 200 and back.headers["etag"] != etag


def test_concurrent_requests_for_one_page_wait_for_one_rendering() -> None:
    import threading

    from garde.monitor.web.rendered import RenderedPages

    pages = RenderedPages()
    started = threading.Event()
    calls = []

    def slow() -> str:
        calls.append(1)
        started.wait(2)
        return "<p>page</p>"

    async def main() -> list[object]:
        asks = [asyncio.ensure_future(pages.get("k", "en", 0.0, slow)) for _ in range(50)]
        await asyncio.sleep(0.05)
        started.set()
        return list(await asyncio.gather(*asks))

    found = asyncio.run(main())
    assert len(calls) == 1 and pages.renders == 1
    assert all(page is found[0] for page in found)
