"""`RedisRepeats`: write identities (repeats.py) a fleet of replicas shares, in Redis.

For P the store's key prefix (`jobstore_redis.split_url`), S an account's scope and K a write identity
(`write_identity.py`; both keyed hashes, so nothing here names an account or an argument):
- `P once:K` hash: `state` (flying, doubt or done), `holder` (the replica sending it), `until` (when its mark
  lapses even if that replica lives), `at` (when it was applied), `kind`, `data` (the result) and `gens` (the
  counters of its records when it was applied); it expires at the end of the window;
- `P gen:S:ID` the counter of one record: every write touching it adds one, which retires remembered results
  naming it (their `gens` no longer match);
- `P alive` sorted set: each replica's id, scored by when its heartbeat lapses (renewed every `BEAT` s). A mark
  whose holder's heartbeat lapsed is in doubt: a replica killed mid-write leaves its writes to be read back, within
  `ALIVE` seconds, never resent blind.
Each claim and each settle is one Lua script on Redis's clock (`TIME`): two replicas never both claim one write.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .jobstore_redis import connect, split_url
from .repeats import Claim, RepeatStateUnavailable, Seen, kept
from .write_identity import Write

log = logging.getLogger("systeme_mcp.repeats")
BEAT, ALIVE = 1.0, 5.0  # seconds between heartbeats; seconds a replica counts as alive after its last
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] the once key, ARGV[4] the gen prefix: a remembered result still fresh, else nil (a stale one deleted)
_DONE = """
local function done()
    if redis.call('HGET', KEYS[1], 'state') ~= 'done' then return nil end
    for _, g in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'gens') or '[]')) do
        if tonumber(redis.call('GET', ARGV[4] .. g[1]) or '0') ~= g[2] then
            redis.call('DEL', KEYS[1])
            return nil
        end
    end
    local f = redis.call('HMGET', KEYS[1], 'kind', 'data', 'at')
    return {'done', f[1], f[2], tostring(now - tonumber(f[3]))}
end
"""

# KEYS: once key; ARGV: -, -, -, gen prefix
PEEK = _NOW + _DONE + "return done() or {'go', '', '', '0'}"

# KEYS: once key, alive zset; ARGV: replica, holds_for (ms), window (ms), gen prefix, alive (ms)
CLAIM = (
    _NOW
    + _DONE
    + """
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])  -- a replica that claims is alive
local found = done()
if found then return found end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'flying' then
    local f = redis.call('HMGET', KEYS[1], 'holder', 'until')
    local alive = tonumber(redis.call('ZSCORE', KEYS[2], f[1]) or '0')
    if now < tonumber(f[2]) and alive > now then return {'busy', '', '', '0'} end
end
local until_ = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'flying', 'holder', ARGV[1], 'until', until_)
if not state then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {'go', '', '', '0'}
end
if redis.call('PTTL', KEYS[1]) < until_ - now then redis.call('PEXPIRE', KEYS[1], until_ - now) end
return {'doubt', '', '', '0'}
"""
)

# KEYS: once key; ARGV: replica, seen (done|doubt|none), window (ms), gen prefix, ids (JSON), kind, data (JSON)
SETTLE = (
    _NOW
    + """
local gens = {}
for _, id in ipairs(cjson.decode(ARGV[5])) do
    local n = redis.call('INCR', ARGV[4] .. id)
    redis.call('PEXPIRE', ARGV[4] .. id, 2 * tonumber(ARGV[3]))
    table.insert(gens, {id, n})
end
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
if ARGV[2] == 'none' then
    redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'doubt' then
    redis.call('HSET', KEYS[1], 'state', 'doubt')
else
    local g = '[]'
    if #gens > 0 then g = cjson.encode(gens) end
    redis.call('HSET', KEYS[1], 'state', 'done', 'kind', ARGV[6], 'data', ARGV[7], 'at', now, 'gens', g)
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""
)

# ARGV: window (ms), gen prefix, ids...
TOUCH = """
for i = 3, #ARGV do
    redis.call('INCR', ARGV[2] .. ARGV[i])
    redis.call('PEXPIRE', ARGV[2] .. ARGV[i], 2 * tonumber(ARGV[1]))
end
return 1
"""

# KEYS: alive zset; ARGV: replica, alive (ms)
BEAT_SCRIPT = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
return 1
"""
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRepeats:
    """The repeat store of a fleet (see the module doc); the connection is made on first use."""

    def __init__(
        self, url: str, window: float, *, redis: aioredis.Redis | None = None, replica: str | None = None
    ) -> None:
        self.prefix = split_url(url)[1]
        self.window = window
        self.replica = replica or secrets.token_hex(8)
        self._own = redis is None  # given the process's shared client: closed by whoever made it
        self._redis: aioredis.Redis = redis if redis is not None else connect(url)
        self._claim = self._redis.register_script(CLAIM)
        self._peek = self._redis.register_script(PEEK)
        self._settle = self._redis.register_script(SETTLE)
        self._touch = self._redis.register_script(TOUCH)
        self._beat = self._redis.register_script(BEAT_SCRIPT)
        self._alive = f"{self.prefix}alive"

    def _gens(self, scope: str) -> str:
        return f"{self.prefix}gen:{scope}:"

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except DOWN as exc:
            raise RepeatStateUnavailable(f"Redis: {type(exc).__name__}") from exc

    async def claim(self, write: Write, holds_for: float) -> Claim:
        keys = [f"{self.prefix}once:{write.key}", self._alive]
        args = [
            self.replica,
            int(holds_for * 1000),
            int(self.window * 1000),
            self._gens(write.scope),
            int(ALIVE * 1000),
        ]
        return self._claimed(await self._run(self._claim, keys, args))

    async def peek(self, write: Write) -> Claim:
        args = ["", "", "", self._gens(write.scope)]
        return self._claimed(await self._run(self._peek, [f"{self.prefix}once:{write.key}"], args))

    @staticmethod
    def _claimed(answer: list[bytes]) -> Claim:
        seen, kind, data, age = [_text(v) for v in answer]
        if seen != Seen.DONE:
            return Claim(Seen(seen))
        return Claim(Seen.DONE, kind, json.loads(data) if data else None, int(age) / 1000)

    async def settle(self, write: Write, seen: Seen | None, ids: list[str], kind: str = "", data: Any = None) -> None:
        args = [
            self.replica,
            seen.value if seen is not None else "none",
            int(self.window * 1000),
            self._gens(write.scope),
            json.dumps(ids),
            kind,
            json.dumps(kept(data), default=str),
        ]
        await self._run(self._settle, [f"{self.prefix}once:{write.key}"], args)

    async def touch(self, scope: str, ids: list[str]) -> None:
        if ids:
            await self._run(self._touch, [], [int(self.window * 1000), self._gens(scope), *ids])

    async def _heartbeat(self) -> None:
        await self._run(self._beat, [self._alive], [self.replica, int(ALIVE * 1000)])

    async def serve(self, tg: TaskGroup) -> None:
        async def beat() -> None:
            down = False
            while True:
                try:
                    await self._heartbeat()
                    if down:
                        log.warning("heartbeat recorded again: Redis answers")
                    down = False
                except RepeatStateUnavailable as exc:
                    if not down:  # once per outage, not every second
                        log.warning("heartbeat not recorded (%s): writes are refused until Redis answers", exc.reason)
                    down = True
                await anyio.sleep(BEAT)

        tg.start_soon(beat)

    async def aclose(self) -> None:
        if self._own:
            await self._redis.aclose()
