"""Subscriptions without a browser: the checks of what a subscriber types, the limits of the
form, the double opt-in (a GET never confirms), the idempotent unsubscribe, the store on
SQLite and the real PostgreSQL, and the upgrade of a database made before subscriptions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from garde.catalog import Catalog
from garde.monitor.deliveries import open_subscriptions
from garde.monitor.service import Monitor
from garde.monitor.store.base import Retention, Store
from garde.monitor.store.sqlite import SqliteStore
from garde.monitor.store.subscriptions import Pending
from garde.monitor.subscriptions import Refused, SubscriptionRules, mask, parse_channel
from garde.monitor.web.app import create_app
from tests.monitor.test_store import old_database  # noqa: F401 (a fixture)

T0 = 1_800_000_000.0


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("", "err_empty"),
        ("   ", "err_empty"),
        ("bob@example", "err_email"),
        ("bob smith@example.org", "err_space"),
        ("x" * 600 + "@example.org", "err_long"),
        ("file:///etc/passwd", "err_scheme"),
        ("dbus://", "err_scheme"),
        ("https://127.0.0.1/hook", "err_private"),
        ("http://10.1.2.3:8080/hook", "err_private"),
        ("json://localhost:9999/", "err_private"),
        ("https:///nohost", "err_url"),
        ("https://example.org:port/", "err_url"),
        ("bob@example.org", "err_no_mail"),
    ],
)
def test_bad_channels_are_refused_with_what_to_fix(typed: str, key: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_channel(typed, mail=False, private_hosts=False, resolve=False)
    assert refused.value.key == key


def test_good_channels_are_taken() -> None:
    taken = parse_channel("Bob@Example.ORG", mail=True, private_hosts=False, resolve=False)
    assert (taken.kind.value, taken.address) == ("email", "Bob@example.org")
    hook = parse_channel(
        "https://hooks.example.org/x", mail=False, private_hosts=False, resolve=False
    )
    assert hook.kind.value == "webhook"
    ntfy = parse_channel("ntfy://garde-pharmacists", mail=False, private_hosts=False, resolve=False)
    assert ntfy.kind.value == "apprise"
    assert mask("bob@example.org") == "b***@example.org"
    assert mask("https://hooks.example.org/secret-path") == "https://hooks.example.org/***"


@pytest.fixture
def app(belgium: Catalog, tmp_path: Path) -> Iterator[tuple[TestClient, Monitor, list[str]]]:
    """The monitor's web side with subscriptions; confirmation messages are caught (their
    links), not sent, so the limits are tested without a channel."""
    store = SqliteStore(tmp_path / "m.sqlite")
    monitor = Monitor(belgium, store, probe_locally=False)
    rules = SubscriptionRules(per_client=4, per_address=2, pending_max=3, mail=True)
    subs = open_subscriptions(monitor, rules=rules)
    sent: list[str] = []

    async def catch(subscription: Any, url: str, hours: int) -> None:
        sent.append(url)

    subs.deliverer.send_confirmation = catch  # type: ignore[method-assign]
    try:
        yield TestClient(create_app(monitor, subscriptions=subs)), monitor, sent
    finally:
        store.close()


def _ask(client: TestClient, channel: str, group: str = "pharmacist", lang: str = "en") -> Any:
    return client.post(f"/for/{group}/subscribe", data={"channel": channel, "lang": lang})


def test_bad_input_stores_and_sends_nothing(app: tuple[TestClient, Monitor, list[str]]) -> None:
    client, monitor, sent = app
    answer = _ask(client, "not-an-address", lang="nl")
    assert answer.status_code == 400
    assert "is geen e-mailadres" in answer.text and "naam@example.org" in answer.text
    assert 'value="not-an-address"' in answer.text, "what was typed is kept to be fixed"
    assert client.post("/for/nobody/subscribe", data={"channel": "a@b.org"}).status_code == 404
    answer = client.post(
        "/for/pharmacist/subscribe", content=b"\xff\xfe", headers={"Content-Type": "x"}
    )
    assert answer.status_code == 400
    assert sent == [] and monitor.store.pending_count(0) == 0  # type: ignore[attr-defined]


def test_the_form_is_no_mail_cannon(app: tuple[TestClient, Monitor, list[str]]) -> None:
    client, _monitor, sent = app
    # One address: two confirmation messages a day, however often it is asked.
    assert _ask(client, "victim@example.org").status_code == 200
    assert _ask(client, "victim@example.org").status_code == 200
    third = _ask(client, "victim@example.org")
    assert third.status_code == 429 and "already sent to this address" in third.text
    # One client: four requests an hour.
    fourth = _ask(client, "other@example.org")
    assert fourth.status_code == 200
    fifth = _ask(client, "more@example.org")
    assert fifth.status_code == 429 and "try again in an hour" in fifth.text
    assert len(sent) == 3


def test_pending_confirmations_are_capped(belgium: Catalog, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.sqlite")
    for i in range(3):
        store.add_pending("gp", "email", f"p{i}@example.org", "en", "s", f"h{i}", T0 + 10, T0)
    monitor = Monitor(belgium, store, probe_locally=False)
    subs = open_subscriptions(monitor, rules=SubscriptionRules(pending_max=3, mail=True))
    subs.desk.now = lambda: T0
    client = TestClient(create_app(monitor, subscriptions=subs))
    full = _ask(client, "late@example.org")
    assert full.status_code == 503 and "try again in a few hours" in full.text
    subs.desk.now = lambda: T0 + 11  # the three expired: forgotten, their addresses too
    assert _ask(client, "late@example.org").status_code == 200
    assert store.pending_count(T0 + 11) == 1
    store.close()


def test_a_get_never_confirms_and_unsubscribing_twice_is_harmless(
    app: tuple[TestClient, Monitor, list[str]],
) -> None:
    client, monitor, sent = app
    assert _ask(client, "https://hooks.example.org/garde").status_code == 200
    path = sent[0].split("://", 1)[1].split("/", 1)[1]
    for _ in range(3):  # a scanner, a preview, the person: a page with a button, no more
        page = client.get("/" + path)
        assert page.status_code == 200 and 'id="confirm"' in page.text
        assert page.headers["cache-control"] == "no-store"
    store: Any = monitor.store
    assert store.subscribers(["pharmacist"]) == []
    done = client.post("/" + path)
    assert "Subscription confirmed" in done.text
    secret = re.search(r'<code id="secret" class="wrap">([0-9a-f]{64})</code>', done.text)
    assert secret, "a webhook's secret is shown once, at confirmation"
    assert client.post("/" + path).status_code == 404, "a link confirms once"
    (subscription,) = store.subscribers(["pharmacist"])
    assert subscription.secret == secret.group(1)
    leave = re.search(r'id="unsubscribe" class="wrap" href="http://[^/]+(/[^"]+)"', done.text)
    assert leave
    assert 'id="leave"' in client.get(leave.group(1)).text
    assert store.subscribers(["pharmacist"]) != [], "a GET removes nothing"
    for _ in range(2):
        gone = client.post(leave.group(1), content=b"List-Unsubscribe=One-Click")
        assert gone.status_code == 200 and "unsubscribed" in gone.text
    assert store.subscription(subscription.id) is None, "the address is deleted"
    forged = leave.group(1)[:-4] + "0000"
    assert "does not exist" in client.get(forged).text


def test_the_profession_feed_lists_its_incidents_only(
    app: tuple[TestClient, Monitor, list[str]],
) -> None:
    client, monitor, _sent = app
    monitor.store.open_incident(
        "recipe-executor", "Recip-e down", "major", T0, groups=["pharmacist"]
    )
    monitor.store.open_incident("hub", "Hub down", "major", T0, groups=["hospital"])
    feed = client.get("/for/pharmacist/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert "Recip-e down" in feed.text and "Hub down" not in feed.text
    assert "/for/pharmacist/feed.atom</id>" in feed.text
    assert "Hub down" in client.get("/feed.atom").text, "the feed of everything stays"
    assert client.get("/for/nobody/feed.atom").status_code == 404


def test_the_store_keeps_subscribers(store: Store) -> None:
    rows: Any = store
    assert rows.add_pending("gp", "email", "a@example.org", "fr", "s1", "h1", T0 + 60, T0) is (
        Pending.NEW
    )
    assert rows.add_pending("gp", "email", "a@example.org", "nl", "s2", "h2", T0 + 60, T0) is (
        Pending.RENEWED
    )
    assert rows.pending_by_token("h1", T0) is None, "a new request replaces the old token"
    assert rows.confirm_subscription("h2", T0 + 61) is None, "expired"
    confirmed = rows.confirm_subscription("h2", T0 + 1)
    assert confirmed is not None and confirmed.lang == "nl" and confirmed.confirmed
    assert rows.add_pending("gp", "email", "a@example.org", "en", "s", "h3", T0 + 60, T0) is (
        Pending.ALREADY
    )
    rows.add_pending("gp", "webhook", "https://h.example/x", "en", "s", "h4", T0 + 60, T0)
    assert [s.address for s in rows.subscribers(["gp", "hospital"])] == ["a@example.org"]
    assert store.prune(T0 + 60, Retention())["pending_subscriptions"] == 1, "the hourly clean-up"
    assert rows.delete_subscription(confirmed.id) and not rows.delete_subscription(confirmed.id)
    assert rows.subscribers(["gp"]) == []


def test_an_older_database_gets_the_subscription_table(
    old_database: tuple[Callable[[str], None], Callable[[], Store], str],  # noqa: F811
) -> None:
    """A database of the version before subscriptions opens with them, and twice is fine."""
    _run, open_it, _url = old_database
    for round_ in range(2):
        store: Any = open_it()
        try:
            store.add_pending(
                "gp", "email", f"r{round_}@example.org", "en", "s", f"t{round_}", T0 + 9, T0
            )
            assert store.confirm_subscription(f"t{round_}", T0) is not None
            assert len(store.subscribers(["gp"])) == round_ + 1
        finally:
            store.close()


def test_an_email_subscriber_confirms_and_gets_the_one_click_headers(
    belgium: Catalog, tmp_path: Path
) -> None:
    """E-mail through apprise's real ``mailto://`` to a loopback SMTP server: the
    confirmation mail, then the incident in French with RFC 8058's two headers."""
    import asyncio
    import email
    from email.policy import default

    from garde.monitor.incidents import Event, EventKind
    from tests.monitor.inbox import smtp_server

    base = "https://status.example.org"

    def read(data: bytes) -> tuple[Any, str]:
        message = email.message_from_bytes(data, policy=default)
        body = message.get_body(("plain",))  # type: ignore[attr-defined]
        return message, str(body.get_content())

    async def main() -> None:
        async with smtp_server() as mail:
            store = SqliteStore(tmp_path / "m.sqlite")
            monitor = Monitor(belgium, store, probe_locally=False)
            subs = open_subscriptions(
                monitor,
                rules=SubscriptionRules(mail=True),
                mailer=f"mailto://127.0.0.1:{mail.port}?from=garde@example.org",
                public_url=base,
            )
            await subs.desk.ask("pharmacist", "Alice@Example.ORG", "fr", "198.51.100.7", base)
            await subs.deliverer.drain()
            ((_sender, to, data),) = mail.messages
            assert to == ["Alice@example.org"]
            confirmation, text = read(data)
            assert "Pharmaciens" in confirmation["Subject"]
            assert "List-Unsubscribe" not in confirmation, "nothing to leave yet"
            link = re.search(rf"{base}/subscriptions/confirm/(\S+)", text)
            assert link, text
            confirmed = await subs.desk.confirm(link.group(1), base)
            assert confirmed is not None

            opened = store.open_incident(
                "recipe-executor",
                "Recip-e executor v4: outage, no data center answers",
                "major",
                T0,
                groups=["pharmacist"],
            )
            event = Event(EventKind.OPENED, store.incident(opened.id), opened.title, T0)
            muted = Event(EventKind.UPDATED, event.incident, "under maintenance", T0, muted=True)
            monitor.incident_events.emit([event, muted])
            await subs.deliverer.drain()
            assert len(mail.messages) == 2, "one message for the event, none for the muted"
            notice, text = read(mail.messages[1][2])
            assert notice["List-Unsubscribe"] == f"<{confirmed.unsubscribe_url}>"
            assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "preuve papier" in text and f"{base}/incidents/{opened.id}?lang=fr" in text
            assert confirmed.unsubscribe_url in text
            store.close()

    asyncio.run(main())


def test_apprise_logs_no_address(caplog: pytest.LogCaptureFixture) -> None:
    """apprise says whom it sent to; the line reaches the logs masked."""
    import logging

    from garde.monitor.deliveries import quiet_apprise

    with quiet_apprise():
        logging.getLogger("apprise").warning(
            "Failed to send Email to %s via %s", "alice@example.org", "json://10.0.0.5/x?t=k"
        )
    (line,) = [r.getMessage() for r in caplog.records if r.name == "apprise"]
    assert "alice" not in line and "10.0.0.5" not in line, line
    assert "a***@example.org" in line and "json://***" in line


def test_the_mail_sender_setting_is_checked_without_echoing_it() -> None:
    from garde.errors import SettingsInvalid
    from garde.monitor.config import load_monitor_settings
    from garde.settings import Given

    with pytest.raises(SettingsInvalid) as caught:
        load_monitor_settings(
            {"GARDE_MONITOR_SUBSCRIBE_MAIL": "smtp://garde:s3cret@mail.example"},
            {"subscribe_per_client": Given(0, "--subscribe-per-client")},
        )
    assert {p.file for p in caught.value.problems} == {
        "GARDE_MONITOR_SUBSCRIBE_MAIL",
        "--subscribe-per-client",
    }
    assert "s3cret" not in str(caught.value) and "mailto://" in str(caught.value)
    rules = load_monitor_settings(
        {"GARDE_MONITOR_SUBSCRIBE_MAIL": "mailtos://garde:s3cret@mail.example"},
        {"subscribe_confirm_within": Given("2h", "--subscribe-confirm-within")},
    ).subscription_rules()
    assert (rules.mail, rules.confirm_within, rules.private_hosts) == (True, 7200.0, False)


def test_a_failing_channel_is_retried_a_bounded_number_of_times_and_logged_masked(
    belgium: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's update reaches a working webhook once; a webhook answering 500 is
    tried ``attempts`` times with pauses, then given up, its address masked in the log."""
    import asyncio

    from aiohttp import web

    from garde.monitor.deliveries import verify_signature
    from garde.monitor.incidents import Event, EventKind
    from tests.monitor.loopback import serve

    got: dict[str, list[web.Request | bytes]] = {"/ok": [], "/dead-secret-path": []}

    async def record(request: web.Request) -> web.Response:
        got[request.path].append(await request.read())
        got[request.path].append(request)
        return web.Response(status=200 if request.path == "/ok" else 500)

    async def main() -> None:
        async with serve({"/ok": record, "/dead-secret-path": record}) as url:
            store = SqliteStore(tmp_path / "m.sqlite")
            monitor = Monitor(belgium, store, probe_locally=False)
            subs = open_subscriptions(monitor, rules=SubscriptionRules(private_hosts=True))
            subs.deliverer.attempts, subs.deliverer.backoff = 3, 0.01
            for n, path in enumerate(("/ok", "/dead-secret-path")):
                store.add_pending("gp", "webhook", url + path, "en", f"k{n}", f"t{n}", T0 + 9, T0)
                store.confirm_subscription(f"t{n}", T0)
            opened = store.open_incident("hub", "Hub: outage", "major", T0, groups=["gp"])
            update = Event(EventKind.OPERATOR_UPDATE, opened, "SAN controller replaced", T0)
            monitor.notify([update])
            await subs.deliverer.drain()
            assert (subs.deliverer.sent, subs.deliverer.failed) == (1, 1)
            body, request = got["/ok"]
            assert isinstance(body, bytes) and isinstance(request, web.Request)
            assert verify_signature("k0", body, request.headers["Garde-Signature"])
            assert b'"event":"incident.operator_update"' in body
            assert len(got["/dead-secret-path"]) == 2 * 3, "three attempts, no more"
            store.close()

    asyncio.run(main())
    failures = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(failures) == 3 and all("attempt" in line for line in failures)
    assert not any("dead-secret-path" in line for line in failures), failures
    assert "http://127.0.0.1/***" in failures[0]
