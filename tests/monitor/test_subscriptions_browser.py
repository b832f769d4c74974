"""A pharmacist subscribes from her profession's page in a real browser, confirms from the
link the monitor sent, hears of the Recip-e outage in her language, unsubscribes in one
click and hears nothing more. Channels are real: apprise's ``json://`` and a webhook, both
landing on a loopback receiver. Needs Debian's Chromium (installed by .ci/run)."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from garde.catalog import Catalog
from garde.lab import lab_in_thread
from garde.monitor.alerts import Notifier
from garde.monitor.deliveries import open_subscriptions, verify_signature
from garde.monitor.service import Monitor
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.subscriptions import SubscriptionRules
from garde.monitor.targets import ProbeSettings
from tests.browser import OUTPUT as BROWSER_OUTPUT
from tests.browser import PHONE, chromium
from tests.monitor.inbox import Inbox, Received, inbox
from tests.monitor.running import monitor_in_thread, wait_for

pytestmark = pytest.mark.e2e

OUTPUT = BROWSER_OUTPUT / "monitor"
CONFIRM = re.compile(r"http://127\.0\.0\.1:\d+/subscriptions/confirm/[A-Za-z0-9_-]+")


def _text(r: Received) -> str:
    """What a person reads of an apprise json:// post (title and message)."""
    data = r.json()
    return f"{data['title']}\n{data['message']}"


def _confirm_link(box: Inbox, path: str) -> str:
    wait_for(lambda: box.at(path), 20, f"the confirmation message at {path}")
    (first,) = box.at(path)
    body = first.json()
    text = body.get("confirm_url") or _text(first)
    found = CONFIRM.search(text)
    assert found, text
    return found.group(0)


def _subscribe(page: Any, url: str, channel: str) -> str:
    page.goto(url)
    page.fill("#channel", channel)
    page.click("#subscribe-form button")
    return str(page.locator("#result").inner_text())


def _events(box: Inbox, path: str) -> list[Received]:
    """Incident notifications (not the confirmation) received at ``path``."""
    found = []
    for r in box.at(path):
        data = r.json()
        if data.get("event", "").startswith("incident.") or "/incidents/" in data.get(
            "message", ""
        ):
            found.append(r)
    return found


def test_subscribe_confirm_notify_unsubscribe(belgium: Catalog, tmp_path: Path) -> None:
    with inbox() as box, lab_in_thread(belgium) as lab:
        chain = belgium.with_endpoints(lab.endpoints)
        store = SqliteStore(tmp_path / "m.sqlite")
        monitor = Monitor(
            chain, store, notifier=Notifier(), settings=ProbeSettings(interval_override=0.2)
        )
        rules = SubscriptionRules(per_client=20, private_hosts=True)
        subs = open_subscriptions(monitor, rules=rules)
        subs.deliverer.backoff = 0.2
        with monitor_in_thread(monitor, subscriptions=subs) as url, chromium() as browser:
            page = browser.new_page(java_script_enabled=False, viewport=PHONE)
            # Alice, in French, from the pharmacists' own page; Bob, in Dutch, a webhook
            # from the form's page; Carol, in English, stays subscribed throughout.
            said = _subscribe(page, f"{url}/for/pharmacist?lang=fr", f"json://{box.url}/alice")
            assert "lien de confirmation" in said
            said = _subscribe(
                page, f"{url}/for/pharmacist/subscribe?lang=nl", f"http://{box.url}/bob"
            )
            assert "bevestigingslink" in said
            _subscribe(page, f"{url}/for/pharmacist/subscribe?lang=en", f"json://{box.url}/carol")
            # Dave follows the GPs, whom a Recip-e executor outage does not concern.
            _subscribe(page, f"{url}/for/gp/subscribe?lang=en", f"json://{box.url}/dave")

            # Bad input: refused with what to fix, nothing stored, nothing sent.
            said = _subscribe(page, f"{url}/for/pharmacist/subscribe?lang=en", "alice@@x")
            assert "is not an e-mail address" in said and "name@example.org" in said
            said = _subscribe(page, f"{url}/for/pharmacist/subscribe?lang=fr", "file:///etc/x")
            assert "n'est pas un canal" in said
            assert page.input_value("#channel") == "file:///etc/x", "kept, to be fixed"
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "subscribe-refused-fr-phone.png"), full_page=True)

            links = {p: _confirm_link(box, p) for p in ("/alice", "/bob", "/carol", "/dave")}
            assert "Pharmaciens" in _text(box.at("/alice")[0])
            # A mail scanner fetching the link confirms nothing: it gets a page with a button.
            with urllib.request.urlopen(links["/alice"], timeout=5) as scanned:
                assert scanned.status == 200 and b'id="confirm"' in scanned.read()
            assert store.subscribers(["pharmacist"]) == []

            secret = ""
            for path, link in links.items():
                page.goto(link)
                page.click("#confirm")
                assert page.locator("#result").is_visible()
                if path == "/bob":
                    assert "Abonnement bevestigd" in page.locator("h1").inner_text()
                    secret = page.locator("#secret").inner_text()
                    width = page.evaluate("document.documentElement.scrollWidth")
                    assert width <= PHONE["width"], "the secret and the link wrap on a phone"
                    page.screenshot(path=str(OUTPUT / "subscribe-confirmed-nl-phone.png"))
                if path == "/alice":
                    assert "Abonnement confirmé" in page.locator("h1").inner_text()
            # A confirmation link works once.
            page.goto(links["/carol"])
            assert "not valid (any more)" in page.locator("#result").inner_text()
            assert len(store.subscribers(["pharmacist"])) == 3

            for dc in chain.services["recipe-executor"].endpoints:
                lab.faults.set("recipe-executor", dc, "down")
            people = ("/alice", "/bob", "/carol")

            def told_of_the_outage() -> bool:
                # The incident may open as reduced redundancy and turn into an outage: wait
                # until everyone heard of the outage and the same events, then no more come
                # until the lab heals.
                seen = [[r.body.decode() for r in _events(box, p)] for p in people]
                heard = all("outage" in "".join(x) for x in seen)
                return heard and len({len(x) for x in seen}) == 1

            wait_for(told_of_the_outage, 60, "every pharmacist's notification of the outage")
            alice = _text(_events(box, "/alice")[0])
            assert "Pharmaciens" in alice and "preuve papier" in alice, alice
            assert "/incidents/" in alice and "Se désabonner" in alice
            carol = _text(_events(box, "/carol")[0])
            assert "Pharmacists" in carol and "paper proof" in carol, carol
            hook = _events(box, "/bob")[0]
            assert verify_signature(secret, hook.body, hook.headers["Garde-Signature"])
            assert hook.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            data = hook.json()
            assert data["event"] == "incident.opened" and data["language"] == "nl"
            assert data["incident"]["started_at"].endswith("Z")
            datetime.fromisoformat(data["incident"]["started_at"])
            assert data["procedures"] and "papieren" in json.dumps(data["procedures"]).lower()
            # The json:// channel carries the one-click headers too.
            assert _events(box, "/alice")[0].headers["List-Unsubscribe"].startswith("<http")

            # Alice leaves in the browser, from the link in her message; Bob's mail client
            # would POST the one-click body (RFC 8058) to the List-Unsubscribe URL.
            leave = re.search(r"http://\S+/subscriptions/unsubscribe/\S+", alice)
            assert leave
            page.goto(leave.group(0))
            assert store.subscribers(["pharmacist"]).__len__() == 3, "a GET removes nothing"
            page.click("#leave")
            assert "désabonné" in page.locator("#result").inner_text()
            one_click = hook.headers["List-Unsubscribe"].strip("<>")
            for _ in range(2):  # twice: the same answer
                request = urllib.request.Request(
                    one_click, data=b"List-Unsubscribe=One-Click", method="POST"
                )
                with urllib.request.urlopen(request, timeout=5) as answer:
                    assert answer.status == 200
            left = store.subscribers(["pharmacist"])
            assert [s.address for s in left] == [f"json://{box.url}/carol"]

            # Each subscriber heard of each event once; then the outage ends.
            heard = {p: len(_events(box, p)) for p in ("/alice", "/bob")}
            before_carol = len(_events(box, "/carol"))
            assert before_carol == heard["/alice"] == heard["/bob"]
            kinds = [r.json()["event"] for r in _events(box, "/bob")]
            assert len(kinds) == len(set(kinds)), kinds
            lab.faults.heal("recipe-executor")

            def resolved() -> bool:
                return any("Resolved" in _text(r) for r in _events(box, "/carol"))

            wait_for(resolved, 60, "Carol's notification that it is over")
            assert {p: len(_events(box, p)) for p in ("/alice", "/bob")} == heard
            assert _events(box, "/dave") == [], "the GPs were not concerned"
