"""A real browser opens the demo drill's HTML report (a file, no server, no script) and finds
the verdict and every plot drawn. Needs Debian's Chromium (installed by .ci/run)."""

from __future__ import annotations

import pytest

from tests.browser import OUTPUT as BROWSER_OUTPUT
from tests.browser import chromium
from tests.drill.conftest import DemoRun

OUTPUT = BROWSER_OUTPUT / "drill"

pytestmark = pytest.mark.e2e


def test_the_html_report_shows_the_verdict_and_its_plots(demo_run: DemoRun) -> None:
    assert demo_run.process.returncode == 0, demo_run.process.stdout[-2000:]
    page_file = demo_run.directory / "report.html"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(java_script_enabled=False, viewport={"width": 1200, "height": 900})
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
    assert requests == [page_file.as_uri()], "the report fetched something: it must not"
    assert (OUTPUT / "report.png").stat().st_size > 10_000
