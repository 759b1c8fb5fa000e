"""What only the Redis store has to show (tests/test_jobstore.py runs the shared suite on it too): key prefixes
that keep namespaces apart, prune leaving no key of a job behind, and one lease winner among replicas racing."""

from __future__ import annotations

import anyio
import pytest
import redis.asyncio as aioredis

from systeme_mcp.jobstore import open_store
from systeme_mcp.jobstore_redis import RedisJobStore, split_url

from .test_jobstore import job

pytestmark = pytest.mark.anyio


async def keys_of(redis_server: str, prefix: str) -> list[str]:
    client = aioredis.from_url(redis_server, decode_responses=True)
    try:
        return sorted(str(k) for k in await client.keys(prefix + "*"))
    finally:
        await client.aclose()


def test_the_namespace_is_ours_and_the_rest_of_the_url_is_redis_pys() -> None:
    assert split_url("redis://h:1/2?namespace=x&socket_timeout=3") == (
        "redis://h:1/2?socket_timeout=3",
        "systeme-mcp:x:",
    )
    assert split_url("rediss://:pw@h/0") == ("rediss://:pw@h/0", "systeme-mcp:")


async def test_namespaces_keep_stores_apart(redis_server: str) -> None:
    db = redis_server.rpartition("/")[0] + "/15"  # a database of this test's own: every key in it is the store's
    raw = aioredis.from_url(db, decode_responses=True)
    await raw.flushdb()
    one, two = RedisJobStore(f"{db}?namespace=one"), RedisJobStore(f"{db}?namespace=two")
    try:
        j = job()
        await one.create(j, ["1"])
        await one.put_blob(f"{j.id}.csv", b"x")
        assert await two.get(j.id) is None and await two.jobs() == [] and await two.get_blob(f"{j.id}.csv") is None
        written = [str(k) for k in await raw.keys("*")]
        assert written and all(k.startswith("systeme-mcp:one:job") for k in written)
    finally:
        await raw.aclose()
        await one.aclose()
        await two.aclose()


async def test_prune_leaves_no_key_of_a_job(redis_url: str, redis_server: str) -> None:
    store = open_store(redis_url)
    assert isinstance(store, RedisJobStore)
    try:
        for n in range(3):
            j = job(created=float(n), tenant="t")
            await store.create(j, ["1", "2", "3"])
            await store.mark(j.id, "1", "in_flight")
            await store.mark(j.id, "2", "settled", "changed", data={"id": 2})
            await store.put_blob(f"{j.id}.csv", b"id\r\n")
            j.status, j.updated = "done", float(n)
            await store.save(j)
        assert len(await keys_of(redis_server, store.prefix)) > 10
        assert await store.prune(now=1000.0, max_age=10.0, max_count=100) == 3
        assert await keys_of(redis_server, store.prefix) == []
    finally:
        await store.aclose()


async def test_one_of_many_replicas_racing_for_a_lease_gets_it(redis_url: str) -> None:
    replicas = [RedisJobStore(redis_url) for _ in range(8)]  # a connection each, as separate processes have
    try:
        j = job()
        await replicas[0].create(j, [])
        won: list[str] = []

        async def race(n: int) -> None:
            if await replicas[n].claim(j.id, f"r{n}", until=200.0, now=100.0):
                won.append(f"r{n}")

        for _ in range(5):  # several rounds: each one a fresh race for an expired lease
            won.clear()
            async with anyio.create_task_group() as tg:
                for n in range(len(replicas)):
                    tg.start_soon(race, n)
            assert len(won) == 1
            got = await replicas[0].get(j.id)
            assert got is not None and got.owner == won[0]
            got.lease_until = 0.0  # the winner died: its lease is over
            await replicas[0].save(got)
    finally:
        for r in replicas:
            await r.aclose()
