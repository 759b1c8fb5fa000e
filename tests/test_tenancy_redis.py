"""Per-request tenancy on a real Redis store (issue 14): each tenant's rate budget is its own, in keys named by its
tenant id (and its Maton bucket by a keyed id too), and nothing in Redis is a tenant's key or an unkeyed hash of it;
one process keeps one Redis connection pool for the store and every tenant's governor, however many tenants come.
Real HTTP both ways (the server under uvicorn, the sandbox over HTTP), real MCP clients."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from systeme_mcp.governor import maton_account
from systeme_mcp.governor_redis import RedisGovernor
from systeme_mcp.jobstore_redis import split_url
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.serve import running
from systeme_mcp.tenancy import Credential, maton_id, tenant_id

from .test_tenancy import TENANT_SECRET, tenant, tenant_server

pytestmark = pytest.mark.anyio
KEYS = [f"maton-key-of-tenant-{n:02d}-0123456789abcdef" for n in range(20)]


@pytest.fixture
def gateway() -> Iterator[str]:
    """The sandbox over HTTP, knowing every tenant's Maton key."""
    with running(Sandbox(rate_limit=None, membership_delay=0.0, maton_keys=KEYS)) as url:
        yield url


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def visit(mcp_url: str, key: str) -> None:
    """One session of the tenant of `key`, one call that reaches the upstream."""
    async with tenant(mcp_url, bearer(key)) as client:
        result = await client.call_tool("list_tags", {})
        assert not result.is_error, result


async def redis_dump(redis_url: str) -> dict[str, str]:
    """Every key of the test's namespace with its value, as text."""
    url, prefix = split_url(redis_url)
    redis = aioredis.from_url(url, decode_responses=True)
    found: dict[str, str] = {}
    try:
        async for key in redis.scan_iter(match=f"{prefix}*"):
            kind = str(await redis.type(key))
            value: Any = None
            if kind == "hash":
                value = await redis.hgetall(key)
            elif kind == "zset":
                value = await redis.zrange(key, 0, -1, withscores=True)
            elif kind == "string":
                value = await redis.get(key)
            else:  # the store and the governor keep no other kind
                raise AssertionError(f"{key}: a {kind}")
            found[str(key)] = repr(value)
    finally:
        await redis.aclose()
    return found


async def test_each_tenants_rate_budget_is_its_own_named_by_its_tenant_id(gateway: str, redis_url: str) -> None:
    tenants = KEYS[:2]
    async with tenant_server(gateway, "gateway", store=redis_url) as (mcp_url, runtime):
        for key in tenants:
            await visit(mcp_url, key)
        credentials = [Credential(SecretStr(key)) for key in tenants]
        ids = [tenant_id(TENANT_SECRET, "gateway", c) for c in credentials]
        unkeyed = [key for key in tenants] + [hashlib.sha256(key.encode()).hexdigest()[:16] for key in tenants]
        for credential in credentials:
            settings = runtime.tenants.settings_for(credential)
            unkeyed += [settings.account, maton_account(settings)]  # the fingerprints a single tenant is named by
        pacers = [runtime.tenants.get(i).client.pacer for i in ids]
        assert all(isinstance(p, RedisGovernor) for p in pacers)
        dump = await redis_dump(redis_url)
    prefix = split_url(redis_url)[1]
    assert {f"{prefix}rate:{i}" for i in ids} <= set(dump)  # two tenants, two budgets, named by tenant id
    assert {f"{prefix}maton:{maton_id(TENANT_SECRET, c)}" for c in credentials} <= set(dump)
    assert len({maton_id(TENANT_SECRET, c) for c in credentials} | set(ids)) == 4
    everything = "\n".join(f"{key} {value}" for key, value in dump.items())
    assert [u for u in unkeyed if u in everything] == []  # no key, nor an unkeyed hash of one, in keys or values


async def connections(redis_server: str) -> int:
    """Clients connected to the Redis server now, besides the one asking."""
    probe = aioredis.from_url(redis_server)
    try:
        return len(await probe.client_list()) - 1
    finally:
        await probe.aclose()


async def test_many_tenants_share_one_redis_connection_pool(gateway: str, redis_url: str, redis_server: str) -> None:
    before = await connections(redis_server)
    async with tenant_server(gateway, "gateway", store=redis_url) as (mcp_url, runtime):
        for key in KEYS:
            await visit(mcp_url, key)
        assert len(runtime.tenants.live()) == len(KEYS)  # every tenant's client (and governor) still open
        opened = await connections(redis_server) - before
    assert 1 <= opened <= 3, opened  # the store's and 20 governors' connections: one pool
