"""The rate governor: what the client asks before each attempt (`acquire`) and tells after it (`observe`).

One interface, chosen by the store (`open_governor`):
- memory or SQLite store (one process): `LocalGovernor`, the in-process `pacing.Pacer` as it always was;
- a Redis store (`SYSTEME_STORE=redis://…`, a fleet of replicas): `governor_redis.RedisGovernor`, whose state is
  shared in Redis per upstream account, so every replica paces by what any replica learnt (`X-RateLimit-*`,
  `Retry-After`) and the fleet together stays within the account's quota; with the Maton gateway also a token
  bucket per Maton account (`MATON_RATE` requests/s, all replicas together).
Accounts are named, never by a key: the process's own by fingerprints (`Settings.account`, `maton_account`); a
tenant's (per-request tenancy) by keyed hashes of its credential (`tenancy.tenant_id`), so nothing in Redis is an
unkeyed function of a tenant's key.

Redis down (shared governor only): a write is refused before anything is sent (`RateStateUnavailable`: running it
without the fleet's shared budget could collect 429s mid-batch or overrun another replica's reserve); a read
proceeds, paced by this process's own Pacer — a read is harmless to repeat, and a 429 on it is retried.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio

from .config import SHARED_STORES, Settings
from .errors import SystemeError
from .pacing import Pacer

MATON_RATE = 10.0  # requests per second the Maton gateway allows one Maton account (its documented limit)
MATON_BURST = 10  # and the bucket's size: at most this many at once
SLOT_MARGIN = 5.0  # seconds an in-flight slot outlives the request timeout (then a dead replica's slot vanishes)


class Governor(Protocol):
    """Paces one upstream account's requests; safe for concurrent tasks."""

    @property
    def in_flight(self) -> int:
        """Requests of this process acquired and not yet observed."""

    async def acquire(self, deadline: float | None = None, *, write: bool = False) -> None:
        """Wait for this request's turn, then count it in flight. `deadline` (the client's clock): raise
        `pacing.WaitTooLong` rather than wait past it. `write`: the request changes something (see the module doc
        for what happens to writes and reads when the shared state is unavailable)."""

    async def observe(self, headers: dict[str, str], status: int | None) -> None:
        """Learn from the answer to the request this task acquired (status None: no answer) and release its slot."""

    async def aclose(self) -> None: ...


class RateStateUnavailable(SystemeError):
    """A write refused before it was sent: the fleet's shared rate state (Redis) could not be reached."""

    code = "rate_state_unavailable"

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, reason)
        self.where, self.reason = where, reason

    def message(self) -> str:
        return (
            f"Refused: the shared rate state is unavailable ({self.where}: {self.reason}), so nothing was sent. "
            "Writes wait for it so that the replicas together stay within the account's rate limit; reads still "
            "work. Retry once the store (SYSTEME_STORE) answers again."
        )


class LocalGovernor:
    """The in-process Pacer behind the Governor interface (one process owns the account's budget)."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    @property
    def in_flight(self) -> int:
        return self.pacer.in_flight

    async def acquire(self, deadline: float | None = None, *, write: bool = False) -> None:
        await self.pacer.acquire(deadline)

    async def observe(self, headers: dict[str, str], status: int | None) -> None:
        self.pacer.observe(headers, status)

    async def aclose(self) -> None:
        return None


def maton_account(settings: Settings) -> str:
    """The Maton account a gateway server spends the 10 req/s of: a fingerprint of its gateway and key (every
    connection of one Maton key shares it)."""
    key = settings.maton_api_key.get_secret_value() if settings.maton_api_key else ""
    return hashlib.sha256("\x00".join(["maton", settings.maton_gateway_url, key]).encode()).hexdigest()[:16]


def open_governor(
    settings: Settings,
    *,
    account: str | None = None,
    maton: str | None = None,
    redis: Any = None,
    replica: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Governor:
    """The governor for `settings`' store, pacing `account` (and, with the gateway, the Maton account `maton`;
    unset: the settings' fingerprints), through `redis` (the process's redis-py client; None: its own). Clock policy
    of the shared one: times shared between replicas are Redis's own (`TIME`, one clock for the fleet; replica
    clocks differ), and only durations leave Redis; a client given a clock of its own (tests' virtual clocks) has
    that clock used for the shared times too. `replica`: this process's id in the fleet's heartbeats: the requests in
    flight of a replica that died stop counting when its heartbeat lapses (seconds), not when they time out."""
    pacer = Pacer(sleep=sleep, clock=clock)
    store = settings.store_url
    if not store.startswith(SHARED_STORES):
        return LocalGovernor(pacer)
    from .governor_redis import RedisGovernor  # imported here: only a Redis store needs it (and redis-py)

    gateway = settings.resolved_backend == "gateway"
    return RedisGovernor(
        store,
        account or settings.account,
        maton=(maton or maton_account(settings)) if gateway else None,
        redis=redis,
        replica=replica,
        slot_ttl=settings.timeout + SLOT_MARGIN,
        fallback=pacer,
        sleep=sleep,
        clock=clock,
        shared_clock=None if clock is time.monotonic else clock,
    )
