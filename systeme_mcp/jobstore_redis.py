"""`RedisJobStore`: job records in Redis (redis-py's asyncio client), the store a fleet of replicas shares.

Every key starts with `systeme-mcp:` plus the URL's `?namespace=NAME` (`systeme-mcp:NAME:`), so one Redis can
serve other programs and several fleets. Values are JSON. For a job J of tenant T, P being the prefix:
- `P job:J`                          hash: one field per `Job` attribute;
- `P job:J:items`                    hash: item key → {state, outcome, reason, data};
- `P job:J:seq`                      sorted set: item key by its position (the order given);
- `P job:J:state:{pending,in_flight,settled}`  sorted sets: the items in that state, by position;
- `P job:J:counts`                   hash: pending / in_flight / each settled outcome → how many;
- `P job:J:blobs`                    hash: output name (`J.csv`) → bytes;
- `P jobs:all`, `P jobs:by-status:S`, `P jobs:by-tenant:T`, `P jobs:by-status:S:tenant:T`: sorted sets of job
  ids by `created` (newest first for `jobs()`).
Every update of more than one key is one MULTI/EXEC (`create`) or one Lua script (`save`, `mark`, `claim`,
`prune`; reads that must see one state, `items` and `jobs`, too), so a reader or a replica dying midway never
sees half of it. The scripts build some key names from the prefix: this is a store for one Redis (with its
replicas), not Redis Cluster.

One redis-py client (one connection pool) per process (`connect`): the runtime makes it and gives it to the store
and to every governor (each tenant's), and closes it once; a store or governor given none makes and closes its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.typing import EncodableT

from .jobstore import FINISHED, Item, ItemState, Job, Status

JOB_FIELDS = {f.name for f in fields(Job)}
ITEM_STATES: tuple[ItemState, ...] = ("pending", "in_flight", "settled")
REDIS_TIMEOUT = 2.0  # seconds a Redis call may take before Redis counts as unavailable

SAVE = """
local p, id = ARGV[1], ARGV[2]
local jk = p .. 'job:' .. id
local old = redis.call('HMGET', jk, 'status', 'tenant', 'created')
if not old[1] then return 0 end
redis.call('HSET', jk, 'status', ARGV[3], 'updated', ARGV[4], 'owner', ARGV[5], 'lease_until', ARGV[6],
    'result', ARGV[8], 'error', ARGV[9])
if ARGV[7] == 'true' then redis.call('HSET', jk, 'cancel_requested', 'true') end  -- the flag only goes up
if old[1] ~= ARGV[3] then
    local was, now, tenant = cjson.decode(old[1]), cjson.decode(ARGV[3]), cjson.decode(old[2])
    redis.call('ZREM', p .. 'jobs:by-status:' .. was, id)
    redis.call('ZREM', p .. 'jobs:by-status:' .. was .. ':tenant:' .. tenant, id)
    redis.call('ZADD', p .. 'jobs:by-status:' .. now, old[3], id)
    redis.call('ZADD', p .. 'jobs:by-status:' .. now .. ':tenant:' .. tenant, old[3], id)
end
return 1
"""

CLAIM = """
local job = redis.call('HMGET', KEYS[1], 'status', 'owner', 'lease_until')
if job[1] ~= '"running"' then return 0 end
local owner = cjson.decode(job[2])
if owner == '' or owner == cjson.decode(ARGV[1]) or tonumber(job[3]) <= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', ARGV[2])
    return 1
end
return 0
"""

# KEYS: items, seq, counts, state:pending, state:in_flight, state:settled; ARGV: key, state, item JSON, count name
MARK = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local item = cjson.decode(old)
local was = item.state == 'settled' and item.outcome or item.state
if redis.call('HINCRBY', KEYS[3], was, -1) <= 0 then redis.call('HDEL', KEYS[3], was) end
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
local by_state = {pending = KEYS[4], in_flight = KEYS[5], settled = KEYS[6]}
redis.call('ZREM', by_state[item.state], ARGV[1])
redis.call('ZADD', by_state[ARGV[2]], redis.call('ZSCORE', KEYS[2], ARGV[1]), ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: an ordering of item keys, the items hash; ARGV: the last position wanted (-1: all). key, seq, JSON, …
ITEMS = """
local keys = redis.call('ZRANGE', KEYS[1], 0, ARGV[1], 'WITHSCORES')
local out = {}
for i = 1, #keys, 2 do
    out[#out + 1] = keys[i]
    out[#out + 1] = keys[i + 1]
    out[#out + 1] = redis.call('HGET', KEYS[2], keys[i])
end
return out
"""

# KEYS: an index of job ids; ARGV: the last position wanted, the job key prefix. One HGETALL reply per job.
JOBS = """
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, ARGV[1])) do
    out[#out + 1] = redis.call('HGETALL', ARGV[2] .. id)
end
return out
"""

# ARGV: the prefix, then job ids. Deletes each one still finished with all its keys; how many were deleted.
DELETE = """
local p, n = ARGV[1], 0
for i = 2, #ARGV do
    local id = ARGV[i]
    local jk = p .. 'job:' .. id
    local job = redis.call('HMGET', jk, 'status', 'tenant')
    if job[1] and job[1] ~= '"running"' then
        local status, tenant = cjson.decode(job[1]), cjson.decode(job[2])
        redis.call('DEL', jk, jk .. ':items', jk .. ':seq', jk .. ':state:pending', jk .. ':state:in_flight',
            jk .. ':state:settled', jk .. ':counts', jk .. ':blobs')
        redis.call('ZREM', p .. 'jobs:all', id)
        redis.call('ZREM', p .. 'jobs:by-status:' .. status, id)
        redis.call('ZREM', p .. 'jobs:by-tenant:' .. tenant, id)
        redis.call('ZREM', p .. 'jobs:by-status:' .. status .. ':tenant:' .. tenant, id)
        n = n + 1
    end
end
return n
"""


def split_url(url: str) -> tuple[str, str]:
    """(the URL for redis-py, the key prefix): `?namespace=NAME` is ours, the rest of the query is redis-py's."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    namespace = "".join(v for k, v in query if k == "namespace")
    rest = urlencode([(k, v) for k, v in query if k != "namespace"])
    return urlunsplit(parts._replace(query=rest)), "systeme-mcp:" + (f"{namespace}:" if namespace else "")


def connect(url: str) -> aioredis.Redis:
    """A client (its own connection pool, connected on first use) of the Redis `url` names (namespace ignored): a
    call that takes past REDIS_TIMEOUT fails, so a dead Redis is seen as such; a dropped connection is retried."""
    return aioredis.from_url(
        split_url(url)[0],
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _job(raw: dict[bytes | str, bytes | str] | list[bytes]) -> Job:
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    values = {_text(k): json.loads(v) for k, v in pairs}
    return Job(**{k: v for k, v in values.items() if k in JOB_FIELDS})


class RedisJobStore:
    """Jobs in Redis at `url` (`redis://[:PASSWORD@]HOST:PORT/DB[?namespace=NAME]`, or `rediss://` for TLS), through
    `redis` (the process's client, see the module doc; None: one of its own). The connection is made on first use."""

    def __init__(self, url: str, redis: aioredis.Redis | None = None) -> None:
        self.prefix = split_url(url)[1]
        self._owned = redis is None
        self._redis: aioredis.Redis = redis if redis is not None else connect(url)
        self._save = self._redis.register_script(SAVE)
        self._claim = self._redis.register_script(CLAIM)
        self._mark = self._redis.register_script(MARK)
        self._items = self._redis.register_script(ITEMS)
        self._jobs = self._redis.register_script(JOBS)
        self._delete = self._redis.register_script(DELETE)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _index(self, status: Status | None, tenant: str | None) -> str:
        if status is None:
            return self._key("jobs", "all") if tenant is None else self._key("jobs", f"by-tenant:{tenant}")
        base = self._key("jobs", f"by-status:{status}")
        return base if tenant is None else f"{base}:tenant:{tenant}"

    async def create(self, job: Job, keys: list[str]) -> None:
        record: dict[EncodableT, EncodableT] = {k: _dumps(v) for k, v in asdict(job).items()}
        record["updated"] = _dumps(job.updated or job.created)
        jk = self._key("job", job.id)
        async with self._redis.pipeline(transaction=True) as tx:  # MULTI/EXEC: the job with all its items, or none
            tx.hset(jk, mapping=record)
            for index in (
                self._index(None, None),
                self._index(job.status, None),
                self._index(None, job.tenant),
                self._index(job.status, job.tenant),
            ):
                tx.zadd(index, {job.id: job.created})
            if keys:
                pending = _dumps({"state": "pending", "outcome": "", "reason": "", "data": {}})
                tx.hset(f"{jk}:items", mapping=dict.fromkeys(keys, pending))
                positions = {key: n for n, key in enumerate(keys)}
                tx.zadd(f"{jk}:seq", positions)
                tx.zadd(f"{jk}:state:pending", positions)
                tx.hset(f"{jk}:counts", "pending", len(keys))
            await tx.execute()

    async def get(self, job_id: str) -> Job | None:
        raw = await self._redis.hgetall(self._key("job", job_id))
        return _job(raw) if raw else None

    async def save(self, job: Job) -> None:
        result = _dumps(job.result) if job.result is not None else "null"
        await self._save(
            args=[
                self.prefix,
                job.id,
                _dumps(job.status),
                _dumps(job.updated),
                _dumps(job.owner),
                _dumps(job.lease_until),
                _dumps(job.cancel_requested),
                result,
                _dumps(job.error),
            ]
        )

    async def jobs(self, status: Status | None = None, limit: int = 50, tenant: str | None = None) -> list[Job]:
        if limit == 0:
            return []
        replies = await self._jobs(keys=[self._index(status, tenant)], args=[limit - 1, self._key("job", "")])
        return [_job(raw) for raw in replies if raw]

    async def items(self, job_id: str, state: ItemState | None = None, limit: int | None = None) -> list[Item]:
        if limit == 0:
            return []
        jk = self._key("job", job_id)
        order = f"{jk}:seq" if state is None else f"{jk}:state:{state}"
        flat = await self._items(keys=[order, f"{jk}:items"], args=[-1 if limit is None else limit - 1])
        found = []
        for key, seq, value in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
            found.append(Item(key=key.decode(), seq=int(float(seq)), **json.loads(value)))
        return found

    async def mark(
        self,
        job_id: str,
        key: str,
        state: ItemState,
        outcome: str = "",
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        jk = self._key("job", job_id)
        value = _dumps({"state": state, "outcome": outcome, "reason": reason, "data": data or {}})
        await self._mark(
            keys=[f"{jk}:items", f"{jk}:seq", f"{jk}:counts", *(f"{jk}:state:{s}" for s in ITEM_STATES)],
            args=[key, state, value, outcome if state == "settled" else state],
        )

    async def counts(self, job_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(self._key("job", job_id, "counts"))
        return {_text(k): int(v) for k, v in raw.items() if int(v) > 0}

    async def claim(self, job_id: str, owner: str, until: float, now: float) -> bool:
        args = [_dumps(owner), _dumps(until), _dumps(now)]
        return bool(await self._claim(keys=[self._key("job", job_id)], args=args))

    async def put_blob(self, name: str, data: bytes) -> None:
        job_id = name.split(".", 1)[0].split("/", 1)[0]
        await self._redis.hset(self._key("job", job_id, "blobs"), name, data)

    async def get_blob(self, name: str) -> bytes | None:
        job_id = name.split(".", 1)[0].split("/", 1)[0]
        data = await self._redis.hget(self._key("job", job_id, "blobs"), name)
        return data.encode() if isinstance(data, str) else data

    async def prune(self, now: float, max_age: float, max_count: int) -> int:
        async with self._redis.pipeline(transaction=False) as reads:
            for status in FINISHED:
                reads.zrange(self._index(status, None), 0, -1)  # type: ignore[arg-type]
            ids = sorted({i.decode() for batch in await reads.execute() for i in batch})
        if not ids:
            return 0
        async with self._redis.pipeline(transaction=False) as reads:
            for job_id in ids:
                reads.hmget(self._key("job", job_id), ["created", "updated"])
            times = await reads.execute()
        finished = sorted(
            ((float(json.loads(c)), float(json.loads(u or "0")), i) for i, (c, u) in zip(ids, times, strict=True) if c),
            reverse=True,
        )
        doomed = [i for n, (c, u, i) in enumerate(finished) if n >= max_count or now - (u or c) > max_age]
        deleted = 0
        for start in range(0, len(doomed), 200):  # each script call is atomic; a few hundred jobs at a time
            deleted += int(await self._delete(args=[self.prefix, *doomed[start : start + 200]]))
        return deleted

    async def aclose(self) -> None:
        if self._owned:
            await self._redis.aclose()
