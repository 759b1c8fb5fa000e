"""Client-side pacing from the API's X-RateLimit-* headers, shared by every call of one server.

Systeme.io's quota is a per-account token bucket; answers carry `X-RateLimit-Limit` (bucket size),
`X-RateLimit-Remaining` and `X-RateLimit-Refill` (seconds until the bucket refills; read as a Unix time when
large). The pacer keeps an estimate of the tokens left — the server's count minus requests still in flight —
and, when it reaches zero, holds new requests until the refill instead of letting them collect 429s.
The header values are untrusted: `policy` clamps them (no header holds requests longer than MAX_RETRY_AFTER),
and a caller with a deadline is refused at once (`WaitTooLong`) rather than held past it.

Background work (durable jobs, run inside `background()`) leaves `BACKGROUND_RESERVE` tokens to interactive
calls: a job waits for the next refill when only the reserve is left, so a call made while it runs is sent at
once instead of queueing behind the job; while the count is unknown a job sends one request at a time. The
refill time the API states may be coarse (whole seconds), so the hold adapts: shorter (x0.75) while the count
after a hold shows the reserve and a token more, twice as long when it does not, never past the stated time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar

import anyio

from .policy import MAX_RETRY_AFTER, PACER_PROBE_WAIT, parse_retry_after, rate_remaining, refill_wait

BACKGROUND_RESERVE = 2  # tokens a background job leaves to interactive calls
MIN_HOLD = 0.02  # seconds: the shortest background hold
_BACKGROUND: ContextVar[bool] = ContextVar("systeme_mcp_background", default=False)
_UNLOCKED = nullcontext()


@contextmanager
def background() -> Iterator[None]:
    """Requests made inside this block (and the tasks it starts) are background work: see the module doc."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def in_background() -> bool:
    return _BACKGROUND.get()


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
        self.refill: float | None = None  # seconds to the next token, from the last answer that said
        self._blocked_until = 0.0
        self._background_until = 0.0  # background requests wait for a refill until then
        self._answered: anyio.Event | None = None  # made when a request waits for an answer, set at the next one
        self._probing = True  # the count is to be learnt: background work sends one request, then waits for it
        self._hold: float | None = None  # the length of the last background hold, until the next count shows
        self._hold_next: float | None = None  # the next hold's length, as the counts after earlier ones taught

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait while the budget is spent, then count one more request in flight. `deadline` (on the pacer's
        clock): raise WaitTooLong instead of waiting past it. Waits happen outside the lock, so each waiting
        caller checks its own deadline."""
        reserve = BACKGROUND_RESERVE if _BACKGROUND.get() else 0
        while True:
            # nothing below awaits before deciding, so it is atomic on the event loop; background requests still
            # take the lock (their turns queue in order), an interactive one is spared the lock's yield to the loop
            async with self._lock if reserve else _UNLOCKED:
                now = self._clock()
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                elif reserve and self._probing and self.in_flight > 0:
                    # the count is unknown and a request is out: wait for its answer
                    answered = self._answered = self._answered or anyio.Event()
                    wait = -1.0
                elif reserve and (held := self._background_wait(now)):
                    wait = held  # only the reserve is left: wait for the refill
                elif self.remaining is None or self.remaining - self.in_flight >= 1:
                    self.in_flight += 1
                    return
                else:  # spent, but no refill time known: wait briefly, then try
                    self.remaining = None
                    self._blocked_until = now + PACER_PROBE_WAIT
                    wait = PACER_PROBE_WAIT
                if wait >= 0:
                    wait = min(MAX_RETRY_AFTER, wait)
                    if deadline is not None and now + wait > deadline:
                        raise WaitTooLong(wait)
            if wait < 0:
                with anyio.move_on_after(PACER_PROBE_WAIT):  # real time: the answer comes from the network
                    await answered.wait()
            else:
                await self._sleep(wait)

    def _background_wait(self, now: float) -> float:
        """How long a background request must wait now (0: it may go)."""
        if now < self._background_until:
            return self._background_until - now
        if self.remaining is None:
            return 0.0
        left = self.remaining - self.in_flight
        if left >= 1 + BACKGROUND_RESERVE:
            return 0.0
        stated = self.refill or PACER_PROBE_WAIT
        hold = min(stated, self._hold_next or stated)
        self._background_until = now + hold
        self._hold = hold
        self.remaining, self._probing = None, True  # after the wait: one probe learns the new count
        return hold

    def observe(self, headers: dict[str, str], status: int | None) -> None:
        """Learn from an answer (status None: no answer) and release its in-flight slot."""
        self.in_flight = max(0, self.in_flight - 1)
        if self._answered is not None:  # someone waits for an answer: this is it
            self._answered.set()
            self._answered = None
        if status is None:
            return
        self._probing = False
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
        if refill is not None:
            self.refill = refill
        if remaining is None:
            return
        self.remaining = remaining
        if self._hold is not None:  # the first count after a background hold: was it long enough?
            enough = remaining >= 1 + BACKGROUND_RESERVE  # the probe left the reserve and one more
            self._hold_next = max(MIN_HOLD, self._hold * 0.75) if enough else self._hold * 2
            self._hold = None
        if remaining < 1 and refill is not None:
            self._blocked_until = max(self._blocked_until, now + refill)
            self.remaining = None
