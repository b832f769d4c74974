"""Care software that signs its own calls: its journaled writes are delivered once, with its
own token while valid, then with a newer token of the same subject, never with nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.lab import Lab, lab_in_thread
from tests.polling import until

from .callerkit import SUBJECTS, caller_crash_run

pytestmark = pytest.mark.e2e

VALIDITY = 4.0
"""Seconds an STS token lives in this lab: the outage outlasts every token it journaled."""


def test_writes_signed_by_the_caller_survive_kill_9_token_expiry_and_arrive_once(
    belgium: Catalog, tmp_path: Path
) -> None:
    with lab_in_thread(belgium, token_validity=VALIDITY) as lab:
        report = asyncio.run(caller_crash_run(lab, belgium, tmp_path, kills=6, validity=VALIDITY))
        acknowledged = {k for keys in report.acknowledged.values() for k in keys}
        assert report.kills == 6
        assert all(report.acknowledged[s] for s in SUBJECTS), report.acknowledged
        # After recovery the expired tokens could not be used: every write waits, visibly.
        waiting = report.waiting_after_recovery
        assert set(waiting) == {"needs_token"}, waiting
        assert waiting["needs_token"] >= len(acknowledged), waiting
        assert "needs_token" in report.listing
        assert "newer token" in report.listing or "expired" in report.listing
        assert (
            'garde_journal_entries{service="ehbox-publication",operation="sendMessage",'
            in report.metrics
        )
        assert 'state="needs_token"' in report.metrics
        # One practice's call releases its own writes and no one else's.
        first = SUBJECTS[0]
        released = set(report.released_by_first)
        assert set(report.acknowledged[first]) <= released <= set(report.sent[first])
        assert report.missing == []
        assert report.doubled == []
        assert lab.ledger.duplicates() == []


def test_a_valid_caller_token_is_used_and_an_expired_one_waits_for_its_subject(
    belgium: Catalog, tmp_path: Path
) -> None:
    """In one process, one outage, three practices: Bob's write goes with his own token,
    still valid at replay; Carol's token expired but she called again meanwhile, so her
    newer token takes its place; Alice's expired with no newer token, so her write waits in
    needs_token (its receipt says why) until her own next call: Bob's call releases nothing."""
    from garde.gateway.config import GatewayConfig
    from garde.gateway.runner import RunningGateway
    from garde.journal.factory import open_journal
    from garde.journal.replayer import ReplayPolicy
    from garde.journal.sealing import Keyring

    from .callerkit import Practice, _delivered, _list_request, list_action_of
    from .crashkit import BOX, BOX_PATH, OPERATION, SERVICE, message, post

    async def main(lab: Lab) -> None:
        catalog = belgium.with_endpoints(lab.endpoints)
        service = catalog.services[SERVICE]
        action = service.soap_action_of(service.operations[OPERATION]) or ""
        list_action = list_action_of(catalog)
        for dc in service.endpoints:
            lab.faults.set(SERVICE, dc, "down")
            lab.faults.set(BOX, dc, "down")
        journal = await open_journal(str(tmp_path / "j.db"), Keyring.clear())
        config = GatewayConfig(port=0, health_interval=0.1)
        policy = ReplayPolicy(poll_interval=0.05, backoff=0.05)
        alice, bob, carol = (Practice(lab, s) for s in SUBJECTS[:3])

        async def write(practice: Practice, key: str) -> None:
            body = await practice.signed(message(lab, len(key)))
            assert await post(running.port, body, key, action, identity=None) == 202

        async def read(practice: Practice) -> int:
            practice.token = None  # a fresh sign-in
            body = await practice.signed(_list_request(lab))
            return await post(running.port, body, "-", list_action, identity=None, path=BOX_PATH)

        async with RunningGateway(catalog, config, journal, replay=policy) as running:
            await write(alice, "alice")
            await write(carol, "carol")
            await asyncio.sleep(VALIDITY + 0.5)  # their tokens are gone
            assert (
                await read(carol) == 503
            )  # eHealthBox publication is down; her new token is seen all the same
            await write(bob, "bob")
            lab.faults.heal(service=SERVICE)
            lab.faults.heal(service=BOX)
            await until(lambda: {"bob", "carol"} <= set(_delivered(lab)))

            # The lab's ledger sees a delivery a moment before the journal settles it.
            async def settled() -> bool:
                states = {r.state.value for r in await journal.receipts()}
                return not {"delivering", "journaled"} & states

            await until(settled, what="the journal settling what the lab received")
            receipts = {r.state.value: r for r in await journal.receipts()}
            assert sorted(receipts) == ["delivered", "needs_token"], receipts
            assert "expired" in (receipts["needs_token"].last_error or "")
            assert await read(bob) == 200
            await asyncio.sleep(1.5)  # the watch runs every second: time enough to go wrong
            assert "alice" not in _delivered(lab), "another subject's token was used"
            assert await read(alice) == 200
            await until(lambda: "alice" in _delivered(lab))
        assert _delivered(lab) == {"alice": 1, "bob": 1, "carol": 1}

    with lab_in_thread(belgium, token_validity=VALIDITY) as lab:
        asyncio.run(main(lab))


def test_a_forged_token_of_a_subject_never_delivers_its_writes(
    belgium: Catalog, tmp_path: Path
) -> None:
    """Someone on the practice's network sends a token that claims Alice's identity (her
    claims, a later expiry, no valid STS signature): the gateway cannot tell it from hers
    until a service answers, so it may try her waiting write with it once; the service
    refuses it, the write waits again, the forged token is never offered again, and Alice's
    own next call delivers the write, once."""
    import time

    from lxml import etree

    from garde import soap
    from garde.gateway.config import GatewayConfig
    from garde.gateway.runner import RunningGateway
    from garde.journal.base import State
    from garde.journal.factory import open_journal
    from garde.journal.replayer import ReplayPolicy
    from garde.journal.sealing import Keyring

    from .callerkit import Practice, _delivered, _list_request, list_action_of
    from .crashkit import BOX, BOX_PATH, OPERATION, SERVICE, message, post

    def forged(token: str) -> str:
        """Her assertion with its NotOnOrAfter an hour later: the STS's signature no longer
        covers it."""
        assertion = etree.fromstring(token.encode())
        conditions = assertion.find(f"{{{soap.SAML1_NS}}}Conditions")
        assert conditions is not None
        until = soap.utc_instant(conditions.get("NotOnOrAfter", ""))
        assert until is not None
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until + 3600))
        conditions.set("NotOnOrAfter", later)
        return str(etree.tostring(assertion, encoding="unicode"))

    async def main(lab: Lab) -> None:
        catalog = belgium.with_endpoints(lab.endpoints)
        service = catalog.services[SERVICE]
        action = service.soap_action_of(service.operations[OPERATION]) or ""
        list_action = list_action_of(catalog)
        for dc in service.endpoints:
            lab.faults.set(SERVICE, dc, "down")
            lab.faults.set(BOX, dc, "down")
        journal = await open_journal(str(tmp_path / "j.db"), Keyring.clear())
        config = GatewayConfig(port=0, health_interval=0.1)
        policy = ReplayPolicy(poll_interval=0.05, backoff=0.05)
        alice = Practice(lab, SUBJECTS[0])

        async def state() -> State:
            (receipt,) = await journal.receipts()
            return receipt.state

        async with RunningGateway(catalog, config, journal, replay=policy) as running:
            body = await alice.signed(message(lab, 1))
            assert await post(running.port, body, "alice", action, identity=None) == 202
            real = (await alice.sign_in()).token
            await asyncio.sleep(VALIDITY + 0.5)
            lab.faults.heal(service=SERVICE)
            lab.faults.heal(service=BOX)

            async def waits_for_token() -> bool:
                return await state() is State.NEEDS_TOKEN

            await until(waits_for_token, what="alice's write waiting for a token")
            fake = soap.with_token(_list_request(lab), forged(real))
            assert (
                await post(running.port, fake, "-", list_action, identity=None, path=BOX_PATH)
                == 500
            )
            await asyncio.sleep(1.5)  # a release and a replay attempt, had they happened
            assert "alice" not in _delivered(lab)
            assert await state() is State.NEEDS_TOKEN
            alice.token = None  # her next sign-in
            assert (
                await post(
                    running.port,
                    await alice.signed(_list_request(lab)),
                    "-",
                    list_action,
                    identity=None,
                    path=BOX_PATH,
                )
                == 200
            )
            await until(lambda: "alice" in _delivered(lab))
        assert _delivered(lab) == {"alice": 1}

    with lab_in_thread(belgium, token_validity=VALIDITY) as lab:
        asyncio.run(main(lab))
