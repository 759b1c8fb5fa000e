"""`Sandbox`: the fake Systeme.io account, Maton gateway and Maton control API, ready to serve."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import seed as seeding
from .app import RequestLog, build_app
from .faults import Faults
from .ratelimit import RateLimit, TokenBucket
from .routing import Env, Options
from .statefile import StateFile
from .store import Store
from .transport import SandboxTransport
from .webhooks import WebhookSender

if TYPE_CHECKING:
    import httpx2
    from starlette.applications import Starlette

_DEFAULT: Any = object()


class Sandbox:
    """A stateful fake of the Systeme.io public API (`/api/...`), the Maton gateway (`/systeme/api/...`)
    and Maton's connection API (`/connections...`), seeded with a deterministic demo account.

    - `rate_limit`: a per-account token bucket (`DEFAULT_RATE_LIMIT` unless given; `None` turns it off).
    - `api_keys` / `maton_keys`: `None` accepts any non-empty key; otherwise only these.
    - `no_mx_domains`: email domains (and their subdomains) rejected as having no MX record (no DNS is done).
    - `payments_configured=False`: subscription routes answer 404. `twilio_connected`: SMS reads work.
    - `deliver_webhooks`: really POST signed events (else they are only recorded in `webhooks.deliveries`).
    - `membership_delay`: seconds before a 202-accepted membership is listed.
    - `state_file`: an SQLite file keeping the state (loaded if present, else seeded; after every request the
      rows it changed are written, see `statefile.py`). An unusable file raises `StateFileError`. `close()` it.
    - `keep_log`: how many of the latest requests and webhook deliveries `requests` and `webhooks.deliveries`
      keep (None: all; a server's own embedded sandbox keeps a few, as it runs for as long as the server).
    """

    DEFAULT_RATE_LIMIT = RateLimit(capacity=100, refill_per_second=2.0)  # a guess: numbers are unpublished
    DEFAULT_NO_MX = ("invalid", "example.invalid", "no-mx.test", "localhost")

    def __init__(
        self,
        seed: int = 0,
        rate_limit: RateLimit | None = _DEFAULT,
        api_keys: Iterable[str] | None = None,
        maton_keys: Iterable[str] | None = None,
        no_mx_domains: Iterable[str] = DEFAULT_NO_MX,
        payments_configured: bool = True,
        twilio_connected: bool = False,
        deliver_webhooks: bool = False,
        membership_delay: float = 0.2,
        state_file: str | os.PathLike[str] | None = None,
        *,
        max_body_bytes: int = 1024 * 1024,
        reject_unknown_fields: bool = False,
        clock: Callable[[], float] = time.time,
        webhook_transport: httpx2.AsyncBaseTransport | None = None,
        base_url: str = "http://sandbox.systeme.local",
        keep_log: int | None = None,
    ) -> None:
        self.seed = seed
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.maton_keys = frozenset(maton_keys) if maton_keys is not None else None
        self.max_body_bytes = max_body_bytes
        self.base_url = base_url
        self.state_file = state_file
        self.twilio_connected = twilio_connected
        self.faults = Faults()
        self.requests = RequestLog(keep_log)
        self.webhooks = WebhookSender(enabled=deliver_webhooks, transport=webhook_transport, keep=keep_log)
        self._clock = clock
        self._lock = threading.Lock()
        self.rate_limit: RateLimit | None = None
        self._bucket: TokenBucket | None = None
        self.set_rate_limit(self.DEFAULT_RATE_LIMIT if rate_limit is _DEFAULT else rate_limit)
        options = Options(tuple(no_mx_domains), payments_configured, membership_delay, reject_unknown_fields)
        self._state = StateFile(state_file) if state_file is not None else None
        store = self._state.load() if self._state is not None else None
        self.env = Env(store or self._seeded(), clock, options, self._emit)
        self.app: Starlette = build_app(self)
        if store is None:
            self.persist()

    # ------------------------------------------------------------------ state
    @property
    def store(self) -> Store:
        """The live state (tables of dataclasses); tests may read and change it."""
        return self.env.store

    def _seeded(self) -> Store:
        store = seeding.build(self.seed)
        store.twilio["connected"] = self.twilio_connected
        return store

    def reset(self) -> None:
        """Back to the seed state; clears faults, the request log, deliveries and the rate-limit bucket."""
        self.env.store = self._seeded()
        self.faults.clear()
        self.requests.clear()
        self.webhooks.clear()
        self.set_rate_limit(self.rate_limit)
        self.persist()

    def persist(self) -> None:
        """Rewrite the whole state file, if there is one (after changing `store` directly)."""
        with self._lock:
            if self._state is None:
                self.store.saved()
            else:
                self._state.write_all(self.store)

    def persist_changes(self) -> None:
        """Write the rows changed since the last write, in one transaction (the app calls it after each request)."""
        with self._lock:
            if self._state is None:
                self.store.saved()
            else:
                self._state.write_changes(self.store)

    def close(self) -> None:
        """Close the state file (it is also closed when the sandbox is garbage-collected)."""
        if self._state is not None:
            self._state.close()

    def clear_requests(self) -> None:
        self.requests.clear()

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        self.webhooks.emit(self.store, event, payload)

    # ------------------------------------------------------------------ rate limit
    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Change (or turn off with None) the account's budget; the bucket starts full."""
        self.rate_limit = limit
        self._bucket = TokenBucket(limit, self._clock) if limit is not None else None

    def take_token(self) -> tuple[bool, dict[str, str]]:
        return (True, {}) if self._bucket is None else self._bucket.take()

    def peek_limit(self) -> dict[str, str]:
        return {} if self._bucket is None else self._bucket.peek()

    # ------------------------------------------------------------------ access
    def transport(self) -> httpx2.AsyncBaseTransport:
        """An in-process httpx2 transport to this sandbox (faults become httpx2 network errors)."""
        return SandboxTransport(self.app)

    def index(self) -> dict[str, Any]:
        return {
            "service": "systeme-mcp sandbox: a fake Systeme.io API, Maton gateway and Maton connection API",
            "families": {
                "direct": "/api/... (X-API-Key)",
                "gateway": "/systeme/api/... (Bearer)",
                "ctrl": "/connections",
            },
            "admin": "/__sandbox",
        }

    def describe(self) -> dict[str, Any]:
        s, opts = self.store, self.env.options
        return {
            "seed": self.seed,
            "rateLimit": None
            if self.rate_limit is None
            else {"capacity": self.rate_limit.capacity, "refillPerSecond": self.rate_limit.refill_per_second},
            "faults": self.faults.plan.as_json() if self.faults.plan else None,
            "paymentsConfigured": opts.payments_configured,
            "twilioConnected": bool(s.twilio.get("connected")),
            "deliverWebhooks": self.webhooks.enabled,
            "membershipDelay": opts.membership_delay,
            "counts": {
                name: len(getattr(s, name))
                for name in (
                    "contacts",
                    "tags",
                    "courses",
                    "enrollments",
                    "memberships",
                    "subscriptions",
                    "webhooks",
                    "connections",
                )
            },
            "requests": len(self.requests),
        }
