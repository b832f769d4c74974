"""Signed callbacks to the care software each time a receipt changes state.

The care software can poll ``GET /_garde/receipts/<id>``, or give a URL and a secret
(``GARDE_RECEIPT_WEBHOOK``, ``GARDE_RECEIPT_WEBHOOK_SECRET``, read by
``garde.journal.settings``) and be told: journaled, delivering, delivered (with the answer),
conflict (with the reason), expired (with the procedure), discarded. Same signature scheme
as the monitor's webhooks: header ``Garde-Timestamp`` and ``Garde-Signature: sha256=<hex>``
= HMAC-SHA256(secret, timestamp + "." + body). Callbacks go one at a time, in the order of
the changes, retried with back-off; a receiver that stays down loses the oldest callbacks
beyond ``queue_size`` (the receipt endpoint still has the truth), and never slows the
journal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from garde.errors import UsageError
from garde.journal.base import Receipt

log = logging.getLogger("garde.journal.webhooks")

SIGNATURE_HEADER = "Garde-Signature"
TIMESTAMP_HEADER = "Garde-Timestamp"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def receipt_document(receipt: Receipt) -> dict[str, Any]:
    """The JSON of a receipt as the care software sees it (its own data: not masked)."""
    data = receipt.fields()
    if receipt.answer is not None:
        data["answer"] = {
            "status": receipt.answer.status,
            "content_type": receipt.answer.content_type,
            "body_base64": base64.b64encode(receipt.answer.body).decode(),
        }
    return data


class ReceiptWebhooks:
    """A journal listener (``journal.listeners.append(hooks)``) posting each change."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout: float = 5.0,
        attempts: int = 5,
        backoff: float = 0.5,
        queue_size: int = 10_000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"receipt webhook {url!r}: give an http:// or https:// URL")
        if not secret:
            raise UsageError(
                "receipt webhooks need a secret to sign with (GARDE_RECEIPT_WEBHOOK_SECRET)"
            )
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.queue: asyncio.Queue[Receipt] | None = None
        self.queue_size = queue_size
        self.sent = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def __call__(self, receipt: Receipt) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue(self.queue_size)
            self._task = asyncio.get_running_loop().create_task(self._post_all())
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            log.warning("receipt webhook receiver is behind: oldest callback dropped")
        self.queue.put_nowait(receipt)

    async def _post_all(self) -> None:
        import aiohttp

        assert self.queue is not None
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                receipt = await self.queue.get()
                try:
                    await self._post(session, receipt)
                finally:
                    self.queue.task_done()

    async def _post(self, session: Any, receipt: Receipt) -> None:
        import aiohttp

        body = json.dumps(
            {"event": "receipt", "receipt": receipt_document(receipt)}, separators=(",", ":")
        ).encode()
        for attempt in range(self.attempts):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            }
            try:
                async with session.post(self.url, data=body, headers=headers) as response:
                    if response.status < 300:
                        self.sent += 1
                        return
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff * 2**attempt)
        self.dropped += 1
        log.warning(
            "receipt webhook for %s gave up after %s (%s)", receipt.id, self.attempts, problem
        )

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued callback was posted or given up (bounded)."""
        if self.queue is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.queue.join()

    async def close(self, timeout: float = 5.0) -> None:
        await self.flush(timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
