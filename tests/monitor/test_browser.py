"""A real browser loads the status page while Recip-e is down in every data center and finds
the pharmacists' paper-proof procedure. Needs Debian's Chromium (installed by .ci/run)."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.lab import lab_in_thread
from garde.monitor.alerts import Notifier
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.targets import ProbeSettings
from tests.monitor.running import monitor_in_thread, wait_for

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "monitor"

pytestmark = pytest.mark.e2e


def _chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI needs /usr/bin/chromium: .ci/run installs it with apt-get")
    pytest.skip("no /usr/bin/chromium: apt-get install -y chromium to run the browser test")


@contextmanager
def recipe_down_everywhere(belgium: Catalog) -> Iterator[Catalog]:
    """The lab, with Recip-e executor down in every data center; the catalog pointing at it."""
    with lab_in_thread(belgium) as lab:
        for dc in belgium.services["recipe-executor"].endpoints:
            lab.faults.set("recipe-executor", dc, "down")
        yield belgium.with_endpoints(lab.endpoints)


def test_pharmacist_view_shows_paper_proof_procedure(belgium: Catalog, tmp_path: Path) -> None:
    _chromium()
    from playwright.sync_api import sync_playwright

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
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
                try:
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
                finally:
                    browser.close()
    assert (OUTPUT / "status-recipe-down.png").stat().st_size > 10_000
