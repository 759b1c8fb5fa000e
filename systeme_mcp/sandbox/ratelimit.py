"""Per-account token bucket, as Systeme.io describes its quota (shared by every key of the account).

Headers on every answer: `X-RateLimit-Limit` (bucket size), `X-RateLimit-Remaining` (whole tokens left) and
`X-RateLimit-Refill` (seconds until the next token, rounded up; 0 when the bucket is full — the real format is
unpublished). Over budget: 429 with `Retry-After` in whole seconds.

Not modelled: the Maton gateway's own 10 requests/s limit, separate budgets per endpoint, key expiry.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """Bucket size and refill speed (tokens per second)."""

    capacity: int
    refill_per_second: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.refill_per_second <= 0:
            raise ValueError("a rate limit needs capacity >= 1 and refill_per_second > 0")

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """`off`, `N/s` (capacity N, refill N per second), `N/m`, or `CAPACITY:RATE/s`."""
        text = text.strip().lower()
        if text in ("off", "none", "0"):
            return None
        capacity_text, _, rate_text = text.rpartition(":")
        number, _, unit = rate_text.partition("/")
        per_second = float(number) / {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[unit or "s"]
        capacity = int(capacity_text) if capacity_text else max(1, math.ceil(float(number)))
        return cls(capacity, per_second)


class TokenBucket:
    """Thread-safe token bucket; `take()` answers (allowed, headers)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self.tokens = float(limit.capacity)
        self.updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.limit.capacity), self.tokens + (now - self.updated) * self.limit.refill_per_second)
        self.updated = now

    def _seconds_to_next(self) -> int:
        if self.tokens >= self.limit.capacity:
            return 0
        missing = 1.0 - (self.tokens % 1.0) if self.tokens >= 1 else 1.0 - self.tokens
        return max(1, math.ceil(missing / self.limit.refill_per_second))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit.capacity),
            "X-RateLimit-Remaining": str(int(self.tokens)),
            "X-RateLimit-Refill": str(self._seconds_to_next()),
        }

    def take(self) -> tuple[bool, dict[str, str]]:
        with self._lock:
            self._refill()
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True, self.headers()
            headers = self.headers()
            headers["Retry-After"] = str(self._seconds_to_next())
            return False, headers

    def peek(self) -> dict[str, str]:
        with self._lock:
            self._refill()
            return self.headers()
