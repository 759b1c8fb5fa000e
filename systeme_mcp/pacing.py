"""Client-side pacing from the API's X-RateLimit-* headers, shared by every call of one server.

Systeme.io's quota is a per-account token bucket; it publishes `X-RateLimit-Limit` (bucket size),
`X-RateLimit-Remaining` and `X-RateLimit-Refill` (time to the next refill; seconds, or a Unix time if large).
The pacer keeps its own estimate of the bucket from those headers and spaces requests so that bulk work
slows down before the API answers 429 rather than after.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

# A Refill value above this is read as a Unix timestamp rather than a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Pacer:
    """Token-bucket estimate of the server's quota; `acquire` waits when the estimate is empty."""

    def __init__(self, sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self._sleep = sleep
        self._lock = anyio.Lock()
        self.capacity: float | None = None
        self.tokens: float | None = None
        self.rate: float | None = None  # tokens per second, learned from refills
        self._stamp = time.monotonic()
        self._blocked_until = 0.0
        self.waited = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens is not None and self.rate and self.capacity is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Take one token from the estimate, waiting for a refill if there is none."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._refill(now)
                wait = self._blocked_until - now
                if wait <= 0 and (self.tokens is None or self.tokens >= 1):
                    if self.tokens is not None:
                        self.tokens -= 1
                    return
                if wait <= 0:
                    wait = (1 - (self.tokens or 0)) / self.rate if self.rate else 0.05
                self.waited += wait
                await self._sleep(min(wait, 5.0))

    def observe(self, headers: dict[str, str], status: int) -> None:
        """Learn from an answer's rate-limit headers (names compared case-insensitively)."""
        lower = {k.lower(): v for k, v in headers.items()}
        limit = _number(lower.get("x-ratelimit-limit"))
        remaining = _number(lower.get("x-ratelimit-remaining"))
        refill = _number(lower.get("x-ratelimit-refill"))
        now = time.monotonic()
        if refill is not None and refill > _EPOCH_THRESHOLD:
            refill = max(0.0, refill - time.time())
        if limit is not None:
            self.capacity = limit
        if remaining is not None:
            # the server's count is authoritative but may lag requests still in flight; keep the lower one
            self._refill(now)
            self.tokens = remaining if self.tokens is None else min(self.tokens, remaining)
            if remaining < 1 and refill is not None:
                self._blocked_until = max(self._blocked_until, now + refill)
        if refill is not None and refill > 0 and self.capacity and self.rate is None:
            self.rate = 1.0 / refill if remaining is not None and remaining < self.capacity else None
        if status == 429:
            retry = _number(lower.get("retry-after"))
            self.tokens = 0
            if retry is not None:
                self._blocked_until = max(self._blocked_until, now + retry)
