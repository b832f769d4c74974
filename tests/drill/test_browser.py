"""A real browser opens the demo drill's HTML report (a file, no server, no script) and finds
the verdict and every plot drawn. Needs Debian's Chromium (installed by .ci/run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.drill.conftest import DemoRun

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "drill"

pytestmark = pytest.mark.e2e


def test_the_html_report_shows_the_verdict_and_its_plots(demo_run: DemoRun) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs /usr/bin/chromium: .ci/run installs it with apt-get")
        pytest.skip("no /usr/bin/chromium: apt-get install -y chromium to run the browser test")
    from playwright.sync_api import sync_playwright

    assert demo_run.process.returncode == 0, demo_run.process.stdout[-2000:]
    page_file = demo_run.directory / "report.html"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(
                java_script_enabled=False, viewport={"width": 1200, "height": 900}
            )
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            assert page.locator("#verdict").inner_text() == "Every expectation held"
            assert "ledger" in page.locator("#summary").inner_text()
            outcomes = page.locator("#plot-outcomes")
            assert outcomes.locator("rect.bar").count() > 10
            assert outcomes.locator("rect.fault").count() > 0
            assert page.locator("#plot-depth polyline").count() == 1
            assert page.locator("#plot-drain polyline").count() == 1
            assert page.locator("#plot-states rect.state").count() > 0
            assert page.locator("#expectations tr.met").count() == 5
            # Drawn, not just present: the plot has a size on the page.
            box = outcomes.bounding_box()
            assert box is not None and box["width"] > 500 and box["height"] > 100
            page.screenshot(path=str(OUTPUT / "report.png"), full_page=True)
        finally:
            browser.close()
    assert requests == [page_file.as_uri()], "the report fetched something: it must not"
    assert (OUTPUT / "report.png").stat().st_size > 10_000
