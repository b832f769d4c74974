"""The gateway's own page, as the pharmacy's IT person sees it during a Recip-e outage: in a
real browser (Debian's Chromium), at phone width, in the three languages; and its edges over
plain HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.runner import RunningGateway
from garde.journal.factory import open_journal
from garde.journal.sealing import Keyring
from garde.lab import lab_in_thread
from tests.browser import chromium
from tests.gateway.doubles import EXECUTOR, RECIPE, caller_security, soap_request
from tests.polling import wait_for

pytestmark = pytest.mark.e2e
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "gateway"


@contextmanager
def gateway_in_thread(catalog: Catalog, journal_path: Path) -> Iterator[str]:
    """A pharmacy's gateway with a journal, on loopback; stopped when the block ends."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        journal = await open_journal(str(journal_path), Keyring.clear())
        config = GatewayConfig(port=0, target_group="pharmacist", health_interval=0.2)
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        async with RunningGateway(catalog, config, journal) as running:
            state["url"] = running.url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    try:
        assert ready.wait(20), "the gateway did not start"
        yield str(state["url"])
    finally:
        loop, stop = state.get("loop"), state.get("stop")
        if isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(15)


def _deliver(url: str) -> str:
    """The pharmacy software records a delivery; the gateway journals it (Recip-e is down)."""
    request = soap_request(
        EXECUTOR,
        "markAsDelivered",
        RECIPE,
        "<x:Rid>BEP0ABCDEFGH</x:Rid>",
        extra=[(b"Idempotency-Key", b"delivery-1")],
        header=caller_security(),
    )
    sent = urllib.request.Request(
        url + EXECUTOR,
        data=request.body,
        headers={k.decode(): v.decode() for k, v in request.headers if k.lower() != b"host"},
        method="POST",
    )
    with urllib.request.urlopen(sent, timeout=10) as answer:
        assert answer.status == 202
        receipt = answer.headers["Garde-Receipt"]
    assert receipt
    return str(receipt)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@contextmanager
def recipe_outage(belgium: Catalog, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with lab_in_thread(belgium) as lab:
        for dc in belgium.services["recipe-executor"].endpoints:
            lab.faults.set("recipe-executor", dc, "down")
        chain = belgium.with_endpoints(lab.endpoints)
        with gateway_in_thread(chain, tmp_path / "journal.db") as url:

            def offline() -> bool:
                status = json.loads(_get(url + "/_garde/status")[2])
                return bool(status["services"]["recipe-executor"]["mode"] != "normal")

            wait_for(offline, 30, "the gateway to see Recip-e executor down")
            yield url, _deliver(url)


def test_the_page_tells_the_staff_what_to_do_and_finds_a_receipt(
    belgium: Catalog, tmp_path: Path
) -> None:
    with recipe_outage(belgium, tmp_path) as (url, receipt):
        OUTPUT.mkdir(parents=True, exist_ok=True)
        with chromium() as browser:
            page = browser.new_page(
                java_script_enabled=False, viewport={"width": 375, "height": 800}
            )
            expected = {
                "en": ("What to tell the staff now", "paper proof bearing the RID"),
                "fr": ("Ce qu'il faut dire", "preuve papier portant le RID"),
                "nl": ("Wat u het team nu zegt", "papieren bewijs met de RID"),
            }
            for language, (heading, procedure) in expected.items():
                page.goto(f"{url}/_garde/?lang={language}")
                tell = page.locator("section[aria-labelledby=tell]")
                assert heading in tell.inner_text()
                assert procedure in tell.inner_text(), tell.inner_text()
                journal = page.locator("section[aria-labelledby=journal]").inner_text()
                assert "journaled" in journal and "1" in journal, journal
                page.screenshot(path=str(OUTPUT / f"local-{language}-phone.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 375, f"{language}: the page scrolls sideways at phone width"
            page.goto(f"{url}/_garde/?lang=en")
            page.fill("#receipt", receipt)
            page.click("button[type=submit]")
            found = page.locator("#receipt-found").inner_text()
            assert "journaled" in found and "recipe-executor.markAsDelivered" in found
            assert "Keep the paper proof" in page.content()


def test_the_page_refuses_odd_receipt_ids_and_keeps_its_guard(
    belgium: Catalog, tmp_path: Path
) -> None:
    with recipe_outage(belgium, tmp_path) as (url, _):
        status, headers, body = _get(url + "/_garde/?receipt=%3Cscript%3Ealert(1)%3C/script%3E")
        assert status == 200
        assert "<script>" not in body and "Garde-Receipt header" in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        status, _, body = _get(url + "/_garde/?receipt=nosuchreceipt0")
        assert "No receipt with this id" in body
        status, _, body = _get(url + "/_garde/", {"Accept-Language": "nl-BE,nl;q=0.9"})
        assert "Wat u het team nu zegt" in body
        started = json.loads(_get(url + "/_garde/status")[2])["gateway"]["started_at"]
        assert started.endswith("Z") and "T" in started, "RFC 3339 for machines"
        status, _, _ = _get(url + "/_garde/", {"Host": "evil.example"})
        assert status != 200, "the DNS-rebinding guard covers the page too"
