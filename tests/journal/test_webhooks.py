"""Receipt webhooks: each change of state is posted, signed, in order, and retried."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from garde.journal.base import Answer, Delivery, Outcome, State, Submission
from garde.journal.factory import open_journal
from garde.journal.settings import load_journal_settings
from garde.journal.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

from .conftest import keyring, run

SECRET = "care-software-secret"


async def receiver(fail_first: int = 0) -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    failures = {"left": fail_first}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        assert verify(
            SECRET.encode(),
            request.headers[TIMESTAMP_HEADER],
            body,
            request.headers[SIGNATURE_HEADER],
        )
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=503)
        got.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook", got


def test_each_change_is_posted_signed_and_in_order(tmp_path: Path) -> None:
    async def body() -> None:
        runner, url, got = await receiver(fail_first=1)
        env = {"GARDE_RECEIPT_WEBHOOK": url, "GARDE_RECEIPT_WEBHOOK_SECRET": SECRET}
        try:
            journal = await open_journal(
                str(tmp_path / "j.db"), keyring("k1"), webhooks=load_journal_settings(env).webhooks
            )
            receipt = await journal.accept(
                Submission("eattest", "sendAttestation", "1", "gp", "i1", "K", b"<x/>")
            )
            (leased,) = await journal.lease("me", ["eattest"], 1, 30)
            await journal.settle(leased, Delivery(Outcome.DELIVERED, Answer(200, b"<ok/>")))
            await journal.close()  # flushes the callbacks
        finally:
            await runner.cleanup()
        assert [g["receipt"]["state"] for g in got] == [
            State.JOURNALED.value,
            State.DELIVERING.value,
            State.DELIVERED.value,
        ]
        assert {g["receipt"]["id"] for g in got} == {receipt.id}
        assert got[-1]["receipt"]["answer"]["status"] == 200

    run(body())


def test_a_receiver_that_is_down_never_blocks_the_journal(tmp_path: Path) -> None:
    async def body() -> None:
        env = {
            "GARDE_RECEIPT_WEBHOOK": "http://127.0.0.1:9/none",
            "GARDE_RECEIPT_WEBHOOK_SECRET": SECRET,
        }
        journal = await open_journal(
            str(tmp_path / "j.db"), keyring("k1"), webhooks=load_journal_settings(env).webhooks
        )
        hooks = journal.listeners[0]  # type: ignore[attr-defined]
        hooks.backoff = 0.001
        for n in range(5):
            await asyncio.wait_for(
                journal.accept(
                    Submission("eattest", "sendAttestation", "1", None, f"i{n}", None, b"")
                ),
                5,
            )
        assert await journal.depth() == 5
        await journal.close()
        assert hooks.dropped == 5
        assert hooks.sent == 0

    run(body())
