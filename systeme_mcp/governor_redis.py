"""`RedisGovernor`: the rate governor a fleet of replicas shares, in Redis, per upstream account.

For account A (`Settings.account`; a tenant's id) and Maton account M (`governor.maton_account`;
`tenancy.maton_id`), P the store's key prefix (`jobstore_redis.split_url`):
- `P rate:A` hash: `remaining` (the last count an answer showed; absent: unknown), `seen` (when the request
  that showed it was let go), `refill` (seconds to the next token, as last stated), `blocked_until` (after a 429's
  Retry-After, or a spent bucket: until its refill), `background_until`, `hold`, `hold_next`, `stale` (the
  background hold, as `pacing` has it), `counted` / `uncounted` (whether this upstream states counts at all);
- `P rate:A:flying` sorted set: the requests in flight (a slot id each), scored by when the slot expires, so the
  slots of a replica that died vanish after the request timeout plus `governor.SLOT_MARGIN`;
- `P maton:M` hash: a token bucket (`tokens`, `updated`) of `governor.MATON_RATE` per second, for gateway requests.
Each acquire and each observe is one Lua script (`ACQUIRE`, `OBSERVE`): atomic, so replicas never act on half an
update. Times are Redis's (`TIME`): replica clocks differ, and only durations (how long to wait) leave Redis.

The rules are the Pacer's (`pacing.py`), made fleet-wide: the estimate is the count minus every replica's requests
in flight; while the count is unknown (at start, after a refill hold) one request of the whole fleet goes and the
rest wait for its answer, so replicas starting together do not overshoot; an answer's count is taken unless a
later-sent request's count is already there (answers reordered across replicas: then the lower of the two);
background work leaves `BACKGROUND_RESERVE` tokens to interactive calls of any replica, with the adaptive hold.
Requests waiting for answers poll Redis every `POLL` seconds (sooner when an answer reaches this process).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .governor import MATON_BURST, MATON_RATE, RateStateUnavailable
from .jobstore_redis import REDIS_TIMEOUT, connect, split_url
from .pacing import BACKGROUND_RESERVE, MIN_HOLD, Pacer, WaitTooLong, in_background
from .policy import MAX_RETRY_AFTER, PACER_PROBE_WAIT, parse_retry_after, rate_remaining, refill_wait

log = logging.getLogger("systeme_mcp.governor")
POLL = 0.02  # seconds between two looks at the shared state while waiting for answers
MIN_WAIT = 0.001  # seconds: the shortest wait (times in Redis are kept to the microsecond)
KEY_TTL = 86_400  # seconds an idle account's rate state is kept
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
LOCAL = "local"  # the slot of a read paced by the local Pacer while Redis was down

_COMMON = """
local function clock()
    if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(field)
    local v = redis.call('HGET', KEYS[1], field)
    if v then return tonumber(v) end
    return nil
end
local function fmt(x) return string.format('%.6f', x) end
local now = clock()
"""

# KEYS: state, flying, maton bucket, the replicas' heartbeats (repeats_redis). ARGV: now ('' = TIME), slot, slot
# ttl, reserve, probe wait, poll, maton rate (0: none), maton burst. Reply: {'go', now} | {'wait', seconds} |
# {'poll', seconds}
ACQUIRE = (
    _COMMON
    + """
local slot, ttl, reserve = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now))
local t = redis.call('TIME')
local beat_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do  -- a dead replica's slots go with its heartbeat
    local owner = string.match(member, '^([^|]+)|')
    local beat = owner and redis.call('ZSCORE', KEYS[4], owner)
    if beat and tonumber(beat) < beat_now then redis.call('ZREM', KEYS[2], member) end
end
local flying = redis.call('ZCARD', KEYS[2])
local function poll()
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {'poll', fmt(math.max(0, math.min(tonumber(ARGV[6]), tonumber(first[2]) - now)))}
end
local blocked = num('blocked_until') or 0
if now < blocked then return {'wait', fmt(blocked - now)} end
if reserve > 0 then
    local until_ = num('background_until') or 0
    if now < until_ then return {'wait', fmt(until_ - now)} end
end
local remaining = num('remaining')
if remaining == nil or (reserve > 0 and redis.call('HEXISTS', KEYS[1], 'stale') == 1) then
    -- the count is to be learnt: one request of the fleet goes, the others wait for its answer
    if flying > 0 and redis.call('HEXISTS', KEYS[1], 'uncounted') == 0 then return poll() end
else
    local left = remaining - flying
    if reserve > 0 and left < 1 + reserve then  -- only the reserve is left: background work waits a refill
        local stated = num('refill') or tonumber(ARGV[5])
        local hold = math.min(stated, num('hold_next') or stated)
        redis.call('HSET', KEYS[1], 'background_until', fmt(now + hold), 'hold', fmt(hold), 'stale', '1')
        return {'wait', fmt(hold)}
    end
    if left < 1 then
        if flying > 0 then return poll() end  -- their answers will say
        redis.call('HSET', KEYS[1], 'blocked_until', fmt(now + tonumber(ARGV[5])))
        redis.call('HDEL', KEYS[1], 'remaining')
        return {'wait', ARGV[5]}
    end
end
local rate = tonumber(ARGV[7])
if rate > 0 then
    local burst = tonumber(ARGV[8])
    local b = redis.call('HMGET', KEYS[3], 'tokens', 'updated')
    local tokens = tonumber(b[1]) or burst
    tokens = math.min(burst, tokens + math.max(0, now - (tonumber(b[2]) or now)) * rate)
    if tokens < 0.999999 then
        redis.call('HSET', KEYS[3], 'tokens', fmt(tokens), 'updated', fmt(now))
        return {'wait', fmt((1 - tokens) / rate)}
    end
    redis.call('HSET', KEYS[3], 'tokens', fmt(tokens - 1), 'updated', fmt(now))
    redis.call('EXPIRE', KEYS[3], 3600)
end
redis.call('ZADD', KEYS[2], fmt(now + ttl), slot)
redis.call('EXPIRE', KEYS[2], math.ceil(ttl) + 60)
redis.call('EXPIRE', KEYS[1], KEY_TTL)
return {'go', fmt(now)}
""".replace("KEY_TTL", str(KEY_TTL))
)

# KEYS: state, flying. ARGV: now, slot, slot ttl, status ('' = no answer), remaining, refill, retry-after (each
# '' when not stated), reserve, min hold. Reply: 1
OBSERVE = (
    _COMMON
    + """
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[4] == '' then return 1 end
local sent = now
if score then sent = tonumber(score) - tonumber(ARGV[3]) end
local blocked = num('blocked_until') or 0
if tonumber(ARGV[4]) == 429 then
    local wait = tonumber(ARGV[7]) or tonumber(ARGV[6]) or 1.0
    redis.call('HSET', KEYS[1], 'blocked_until', fmt(math.max(blocked, now + wait)))
    redis.call('HDEL', KEYS[1], 'remaining')
    return 1
end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'refill', ARGV[6]) end
if ARGV[5] == '' then
    if redis.call('HEXISTS', KEYS[1], 'counted') == 0 then redis.call('HSET', KEYS[1], 'uncounted', '1') end
    return 1
end
local count, current, seen = tonumber(ARGV[5]), num('remaining'), num('seen')
if current ~= nil and seen ~= nil and sent < seen then
    count = math.min(count, current)  -- an older request's answer, come late: it cannot raise the count
else
    redis.call('HSET', KEYS[1], 'seen', fmt(sent))
end
redis.call('HSET', KEYS[1], 'remaining', fmt(count), 'counted', '1')
redis.call('HDEL', KEYS[1], 'uncounted', 'stale')
local hold = num('hold')
if hold then  -- the first count after a background hold: was it long enough?
    local nxt = hold * 2
    if count >= 1 + tonumber(ARGV[8]) then nxt = math.max(tonumber(ARGV[9]), hold * 0.75) end
    redis.call('HSET', KEYS[1], 'hold_next', fmt(nxt))
    redis.call('HDEL', KEYS[1], 'hold')
end
if count < 1 and ARGV[6] ~= '' then
    redis.call('HSET', KEYS[1], 'blocked_until', fmt(math.max(blocked, now + tonumber(ARGV[6]))))
    redis.call('HDEL', KEYS[1], 'remaining')
end
return 1
"""
)

_SLOT: ContextVar[tuple[object, str] | None] = ContextVar("systeme_mcp_governor_slot", default=None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisGovernor:
    """The shared governor of account `account` on the Redis at `url` (`maton`: the Maton account, for gateway
    requests), through `redis`, the process's client (None: one of its own, closed with the governor). `fallback`
    paces reads while Redis is down. `shared_clock`: the time the scripts use (None: Redis's `TIME`); `clock` is
    the caller's, for deadlines, and `sleep` waits."""

    def __init__(
        self,
        url: str,
        account: str,
        *,
        maton: str | None = None,
        redis: aioredis.Redis | None = None,
        replica: str | None = None,
        slot_ttl: float = 35.0,
        fallback: Pacer | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        shared_clock: Callable[[], float] | None = None,
    ) -> None:
        redis_url, prefix = split_url(url)
        self.where = redis_url.split("@")[-1].split("?")[0]  # host:port/db, never a password
        self._owned = redis is None
        self._redis: aioredis.Redis = redis if redis is not None else connect(url)
        self._acquire = self._redis.register_script(ACQUIRE)
        self._observe = self._redis.register_script(OBSERVE)
        self.keys = [f"{prefix}rate:{account}", f"{prefix}rate:{account}:flying", f"{prefix}maton:{maton or '-'}"]
        self.keys.append(f"{prefix}alive")  # the replicas' heartbeats (repeats_redis.RedisRepeats keeps them)
        self._slot_prefix = f"{replica}|" if replica else ""  # its slots lapse with its heartbeat, not the ttl
        self._maton = MATON_RATE if maton else 0.0
        self.slot_ttl = slot_ttl
        self._local = fallback or Pacer(sleep=sleep, clock=clock)
        self._sleep, self._clock, self._shared_clock = sleep, clock, shared_clock
        self._mine = 0
        self._answered = anyio.Event()  # set (and replaced) at each answer this process observes

    @property
    def in_flight(self) -> int:
        return self._mine

    def _now(self) -> str:
        return "" if self._shared_clock is None else repr(self._shared_clock())

    async def acquire(self, deadline: float | None = None, *, write: bool = False) -> None:
        reserve = BACKGROUND_RESERVE if in_background() else 0
        slot = self._slot_prefix + secrets.token_hex(8)
        while True:
            answered = self._answered
            try:
                args: list[str | float] = [
                    self._now(),
                    slot,
                    self.slot_ttl,
                    reserve,
                    PACER_PROBE_WAIT,
                    POLL,
                    self._maton,
                    MATON_BURST,
                ]
                kind, value = [_text(v) for v in await self._acquire(keys=self.keys, args=args)]
            except DOWN as exc:
                if write:
                    raise RateStateUnavailable(self.where, type(exc).__name__) from exc
                log.warning("shared rate state unavailable (%s): a read paced by this process alone", self.where)
                await self._local.acquire(deadline)
                self._take(LOCAL)
                return
            if kind == "go":
                self._take(slot)
                return
            wait = min(MAX_RETRY_AFTER, max(MIN_WAIT, float(value)))
            if kind == "wait":
                if deadline is not None and self._clock() + wait > deadline:
                    raise WaitTooLong(wait)
                await self._sleep(wait)
            else:
                await self._nap(wait, answered)

    def _take(self, slot: str) -> None:
        self._mine += 1
        _SLOT.set((self, slot))

    async def _nap(self, wait: float, answered: anyio.Event) -> None:
        """Sleep `wait`, or less if an answer reaches this process first."""
        async with anyio.create_task_group() as tg:

            async def sleeper() -> None:
                await self._sleep(wait)
                tg.cancel_scope.cancel()

            async def waker() -> None:
                await answered.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(sleeper)
            tg.start_soon(waker)

    async def observe(self, headers: dict[str, str], status: int | None) -> None:
        taken = _SLOT.get()
        slot = taken[1] if taken is not None and taken[0] is self else None
        if slot is not None:
            _SLOT.set(None)
            self._mine = max(0, self._mine - 1)
        self._answered.set()
        self._answered = anyio.Event()
        if slot == LOCAL:
            self._local.observe(headers, status)
            return
        lower = {k.lower(): v for k, v in headers.items()}
        remaining = rate_remaining(lower.get("x-ratelimit-remaining"))
        refill = refill_wait(lower.get("x-ratelimit-refill"), time.time())
        retry = parse_retry_after(lower.get("retry-after"))
        args: list[str | float] = [self._now(), slot or "", self.slot_ttl, "" if status is None else status]
        args += ["" if x is None else repr(float(x)) for x in (remaining, refill, retry.seconds if retry else None)]
        args += [BACKGROUND_RESERVE, MIN_HOLD]
        # shielded: a cancelled call's slot is still released (bounded: a dead Redis lets the slot expire instead)
        with anyio.move_on_after(REDIS_TIMEOUT * 2, shield=True):
            try:
                await self._observe(keys=self.keys[:2], args=args)
            except DOWN:
                log.warning("shared rate state unavailable (%s): an answer's rate headers were not shared", self.where)

    async def aclose(self) -> None:
        if self._owned:
            await self._redis.aclose()
