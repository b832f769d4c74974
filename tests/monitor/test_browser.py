"""A real browser loads the status page while Recip-e is down in every data center and finds
the pharmacists' paper-proof procedure. Needs Debian's Chromium (installed by .ci/run)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from garde.catalog import Catalog
from garde.lab import lab_in_thread
from garde.monitor.alerts import Notifier
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.targets import ProbeSettings
from tests.browser import OUTPUT as BROWSER_OUTPUT
from tests.browser import PHONE, chromium
from tests.monitor.running import monitor_in_thread, wait_for

OUTPUT = BROWSER_OUTPUT / "monitor"

pytestmark = pytest.mark.e2e


@contextmanager
def recipe_down_everywhere(belgium: Catalog) -> Iterator[Catalog]:
    """The lab, with Recip-e executor down in every data center; the catalog pointing at it."""
    with lab_in_thread(belgium) as lab:
        for dc in belgium.services["recipe-executor"].endpoints:
            lab.faults.set("recipe-executor", dc, "down")
        yield belgium.with_endpoints(lab.endpoints)


def test_pharmacist_view_shows_paper_proof_procedure(belgium: Catalog, tmp_path: Path) -> None:
    with recipe_down_everywhere(belgium) as chain:
        monitor = Monitor(
            chain,
            SqliteStore(tmp_path / "m.sqlite"),
            notifier=Notifier(),
            settings=ProbeSettings(interval_override=0.2),
        )
        with monitor_in_thread(monitor) as url:

            def outage() -> bool:
                with urllib.request.urlopen(url + "/api/v1/status", timeout=5) as response:
                    status = json.load(response)
                return bool(status["services"]["recipe-executor"]["status"] == "outage")

            wait_for(outage, 30, "the monitor to see Recip-e executor in outage")
            OUTPUT.mkdir(parents=True, exist_ok=True)
            with chromium() as browser:
                page = browser.new_page(java_script_enabled=False)
                page.goto(url + "/?lang=en")
                pharmacist = page.locator("#group-pharmacist")
                text = pharmacist.inner_text()
                assert "Stopped" in text
                assert "dispense on the paper proof bearing the RID" in text
                assert page.locator("#service-recipe-executor").inner_text().count("Outage")
                page.screenshot(path=str(OUTPUT / "status-recipe-down.png"), full_page=True)
                page.goto(url + "/?lang=fr")
                assert "preuve papier" in page.locator("#group-pharmacist").inner_text()
                _the_incident_page(browser, url)
                _the_pharmacists_page(browser, url)
    assert (OUTPUT / "status-recipe-down.png").stat().st_size > 10_000


def _the_incident_page(browser: Any, url: str) -> None:
    """From the main page to the incident's own page, on a phone, in the three languages:
    who is affected and what they do, and the timeline in the order it happened."""

    def opened() -> bool:
        with urllib.request.urlopen(url + "/api/v1/incidents?open=1", timeout=5) as response:
            return bool(json.load(response)["incidents"])

    wait_for(opened, 30, "the monitor to open an incident for Recip-e executor")
    page = browser.new_page(java_script_enabled=False, viewport=PHONE)
    page.goto(url + "/?lang=en")
    page.locator("#incidents ~ article h3 a").first.click()
    assert "/incidents/" in page.url
    assert page.locator("h1").inner_text().startswith("Recip-e executor")
    assert "Ongoing" in page.locator("article").inner_text()
    pharmacist = page.locator("#group-pharmacist").inner_text()
    assert "Stopped" in pharmacist
    assert "dispense on the paper proof bearing the RID" in pharmacist
    timeline = page.locator("#timeline + ol.timeline li time").all_inner_texts()
    assert timeline and timeline == sorted(timeline), "oldest first, as it happened"
    assert all(t.endswith(("+01:00", "+02:00")) for t in timeline), "Belgian time, with offset"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "nothing to scroll sideways on a phone"
    page.screenshot(path=str(OUTPUT / "incident-en-phone.png"), full_page=True)
    for lang, words in (("fr", ("En cours", "preuve papier")), ("nl", ("Lopend", "papieren"))):
        page.goto(page.url.split("?")[0] + f"?lang={lang}")
        text = page.locator("article").inner_text()
        assert words[0] in text, (lang, text)
        assert words[1] in page.locator("#group-pharmacist").inner_text().lower(), lang
    # The register lists the open incident as ongoing, never "no incident in 90 days".
    page.goto(url + "/?lang=en")
    register = page.locator("#register + table").inner_text()
    assert "ongoing" in register


def _the_pharmacists_page(browser: Any, url: str) -> None:
    """From the main page to the pharmacists' own page, on a phone, in the three languages."""
    page = browser.new_page(java_script_enabled=False, viewport=PHONE)
    page.goto(url + "/?lang=nl")
    page.locator("#group-pharmacist h3 a").click()
    assert page.url.endswith("/for/pharmacist?lang=nl")
    expected = {
        "nl": ("Nu stilgelegd: E-voorschriften lezen", "papieren bewijs"),
        "fr": ("À l'arrêt maintenant : Lire les prescriptions électroniques", "preuve papier"),
        "en": ("Stopped now: Reading e-prescriptions", "paper proof"),
    }
    for lang, (banner, procedure) in expected.items():
        page.goto(f"{url}/for/pharmacist?lang={lang}")
        assert banner in page.locator("#banner").inner_text(), lang
        need = page.locator('[id="need-recipe-executor.getPrescriptionForExecutor"]')
        assert procedure in need.inner_text(), lang
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{lang}: nothing to scroll sideways on a phone"
        page.screenshot(path=str(OUTPUT / f"pharmacist-{lang}-phone.png"), full_page=True)
