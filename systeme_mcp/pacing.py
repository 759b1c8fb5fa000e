"""Client-side pacing from the API's X-RateLimit-* headers, shared by every call of one server.

Systeme.io's quota is a per-account token bucket; answers carry `X-RateLimit-Limit` (bucket size),
`X-RateLimit-Remaining` and `X-RateLimit-Refill` (seconds until the bucket refills; read as a Unix time when
large). The pacer keeps an estimate of the tokens left — the server's count minus requests still in flight —
and, when it reaches zero, holds new requests until the refill instead of letting them collect 429s.
The header values are untrusted: `policy` clamps them (no header holds requests longer than MAX_RETRY_AFTER),
and a caller with a deadline is refused at once (`WaitTooLong`) rather than held past it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from .policy import MAX_RETRY_AFTER, PACER_PROBE_WAIT, parse_retry_after, rate_remaining, refill_wait


class WaitTooLong(Exception):
    """The pacer would hold the request `wait` seconds, past the caller's deadline; nothing was taken."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"pacing would wait {wait:g} s")
        self.wait = wait


class Pacer:
    """Holds requests while the server's budget is known to be spent; concurrency-safe."""

    def __init__(
        self,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._clock = clock
        self._lock = anyio.Lock()
        self.remaining: float | None = None  # unknown until the first answer
        self.in_flight = 0
        self._blocked_until = 0.0

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait while the budget is spent, then count one more request in flight. `deadline` (on the pacer's
        clock): raise WaitTooLong instead of waiting past it. Waits happen outside the lock, so each waiting
        caller checks its own deadline."""
        while True:
            async with self._lock:
                now = self._clock()
                if now >= self._blocked_until and (self.remaining is None or self.remaining - self.in_flight >= 1):
                    self.in_flight += 1
                    return
                if now >= self._blocked_until:  # spent, but no refill time known: wait briefly, then try
                    self.remaining = None
                    self._blocked_until = now + PACER_PROBE_WAIT
                wait = min(MAX_RETRY_AFTER, self._blocked_until - now)
                if deadline is not None and now + wait > deadline:
                    raise WaitTooLong(wait)
            await self._sleep(wait)

    def observe(self, headers: dict[str, str], status: int | None) -> None:
        """Learn from an answer (status None: no answer) and release its in-flight slot."""
        self.in_flight = max(0, self.in_flight - 1)
        if status is None:
            return
        lower = {k.lower(): v for k, v in headers.items()}
        remaining = rate_remaining(lower.get("x-ratelimit-remaining"))
        refill = refill_wait(lower.get("x-ratelimit-refill"), time.time())
        now = self._clock()
        if status == 429:
            retry = parse_retry_after(lower.get("retry-after"))
            wait = retry.seconds if retry is not None else refill
            self._blocked_until = max(self._blocked_until, now + (wait if wait is not None else 1.0))
            self.remaining = None
            return
        if remaining is None:
            return
        self.remaining = remaining
        if remaining < 1 and refill is not None:
            self._blocked_until = max(self._blocked_until, now + refill)
            self.remaining = None
