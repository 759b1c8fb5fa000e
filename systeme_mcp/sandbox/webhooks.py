"""Webhook events: built for every matching active subscription, recorded, and (when enabled) POSTed.

Each delivery body is encoded like PHP's `json_encode` (`/` escaped, non-ASCII as `\\uXXXX`) and signed:
`X-Webhook-Signature` = hex HMAC-SHA256 of exactly those bytes with the webhook's secret;
`X-Webhook-Message-Id` identifies the delivery. Sent after the API answer, one attempt, 2 s timeout.

Not modelled: retries and their schedule, disabling subscriptions after failures (`BAD_SUCCESS_RATE`),
CONTACT_OPT_IN (no API call confirms an opt-in), SALE_NEW / SALE_CANCELED (no sales in the fake).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from .store import Store

log = logging.getLogger("systeme_mcp.sandbox.webhooks")


def encode(payload: Any) -> bytes:
    """The exact bytes sent: compact JSON as PHP's json_encode writes it."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """One event for one webhook: what was (or would be) sent, and what came back."""

    webhook_id: str
    url: str
    event: str
    message_id: str
    body: bytes
    signature: str
    status: int | None = None
    error: str | None = None

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "Systeme.io-Webhooks (sandbox)",
            "X-Webhook-Event": self.event,
            "X-Webhook-Message-Id": self.message_id,
            "X-Webhook-Signature": self.signature,
        }


class WebhookSender:
    """Collects deliveries during a request; `flush()` sends them if delivery is on. `deliveries`: the last `keep`
    (None: all)."""

    def __init__(
        self, *, enabled: bool = False, transport: Any = None, timeout: float = 2.0, keep: int | None = None
    ) -> None:
        self.enabled, self.keep = enabled, keep
        self.transport = transport  # an httpx2.AsyncBaseTransport (tests capture in-process with it)
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._pending: list[Delivery] = []

    def emit(self, store: Store, event: str, payload: dict[str, Any]) -> None:
        body = encode(payload)
        for hook in store.webhooks.values():
            if not hook.active:
                continue
            if any(s["event"] == event and s.get("disabledAt") is None for s in hook.subscriptions):
                delivery = Delivery(hook.id, hook.url, event, str(uuid.uuid4()), body, sign(body, hook.secret))
                self.deliveries.append(delivery)
                self._pending.append(delivery)
                if self.keep is not None and len(self.deliveries) > self.keep:
                    del self.deliveries[0]

    def clear(self) -> None:
        self.deliveries.clear()
        self._pending.clear()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not self.enabled or not pending:
            return
        import httpx2  # lazy: only delivery to a real URL needs an HTTP client

        async with httpx2.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
            for d in pending:
                try:
                    answer = await client.post(d.url, content=d.body, headers=d.headers())
                    d.status = answer.status_code
                except httpx2.HTTPError as exc:
                    d.error = f"{type(exc).__name__}: {exc}"
                    log.info("webhook delivery to %s failed: %s", d.url, d.error)
