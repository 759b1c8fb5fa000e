"""The shared rate governor (governor_redis.py) on a real Redis: its Lua rules with small numbers on a virtual
clock, two governors as two replicas of one account, two clients against one rate-limited sandbox, and what
happens to writes and reads when Redis is down."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from systeme_mcp import governor
from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.governor import LocalGovernor, RateStateUnavailable, open_governor
from systeme_mcp.governor_redis import POLL, RedisGovernor
from systeme_mcp.pacing import BACKGROUND_RESERVE, background
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.ratelimit import RateLimit
from systeme_mcp.wire import RequestPlan

from .helpers import VirtualClock
from .processes import free_port
from .redis_server import _start

pytestmark = pytest.mark.anyio
SECRET = "s" * 64


def counts(remaining: int, refill: int = 1) -> dict[str, str]:
    return {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Refill": str(refill), "X-RateLimit-Limit": "10"}


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RedisGovernor, RedisGovernor, VirtualClock]]:
    """Two replicas' governors of one account (and one Maton account), on one virtual clock."""
    clock = VirtualClock()
    made = [
        RedisGovernor(redis_url, "acct", maton="m", slot_ttl=5.0, sleep=clock.sleep, clock=clock, shared_clock=clock)
        for _ in range(2)
    ]
    yield made[0], made[1], clock
    for gov in made:
        await gov.aclose()


async def reply(gov: RedisGovernor, now: float, slot: str, reserve: int = 0) -> tuple[str, float]:
    """The ACQUIRE script's answer at `now` (without the Maton bucket): ('go' | 'wait' | 'poll', seconds)."""
    args: list[str | float] = [repr(now), slot, gov.slot_ttl, reserve, 0.5, POLL, 0, 10]
    kind, value = await gov._acquire(keys=gov.keys, args=args)
    return kind.decode(), float(value)


async def answer(gov: RedisGovernor, now: float, slot: str, status: int = 200, **head: str) -> None:
    """The OBSERVE script, for `slot`'s answer at `now` (`head`: remaining, refill, retry as the header says)."""
    args: list[str | float] = [repr(now), slot, gov.slot_ttl, status, head.get("remaining", ""), head.get("refill", "")]
    await gov._observe(keys=gov.keys[:2], args=[*args, head.get("retry", ""), BACKGROUND_RESERVE, 0.02])


# ---------------------------------------------------------------- the scripts, with small numbers
async def test_while_the_count_is_unknown_one_request_of_the_fleet_goes(redis_url: str) -> None:
    gov = RedisGovernor(redis_url, "a")
    assert await reply(gov, 0.0, "probe") == ("go", 0.0)
    assert (await reply(gov, 0.0, "second"))[0] == "poll"  # waits for the probe's answer
    await answer(gov, 0.1, "probe", remaining="2", refill="1")
    assert [(await reply(gov, 0.2, s))[0] for s in ("x", "y", "z")] == ["go", "go", "poll"]  # 2 left, 2 in flight
    await gov.aclose()


async def test_a_429_blocks_every_request_until_its_retry_after(redis_url: str) -> None:
    gov = RedisGovernor(redis_url, "a")
    await reply(gov, 0.0, "s")
    await answer(gov, 0.0, "s", status=429, retry="3")
    assert await reply(gov, 1.0, "t") == ("wait", 2.0)
    assert (await reply(gov, 3.0, "t"))[0] == "go"
    await gov.aclose()


async def test_a_spent_bucket_blocks_until_its_refill(redis_url: str) -> None:
    gov = RedisGovernor(redis_url, "a")
    await reply(gov, 0.0, "s")
    await answer(gov, 0.0, "s", remaining="0", refill="2")
    assert await reply(gov, 0.5, "t") == ("wait", 1.5)
    assert (await reply(gov, 2.0, "t"))[0] == "go"  # then a probe learns the new count
    assert (await reply(gov, 2.0, "u"))[0] == "poll"
    await gov.aclose()


async def test_background_work_leaves_the_reserve_to_interactive_calls_of_any_replica(redis_url: str) -> None:
    gov = RedisGovernor(redis_url, "a")
    await reply(gov, 0.0, "s")
    await answer(gov, 0.0, "s", remaining=str(BACKGROUND_RESERVE + 1), refill="1")
    assert (await reply(gov, 0.0, "job", reserve=BACKGROUND_RESERVE))[0] == "go"  # the reserve and one more
    assert await reply(gov, 0.0, "job2", reserve=BACKGROUND_RESERVE) == ("wait", 1.0)  # only the reserve left
    assert [(await reply(gov, 0.0, s))[0] for s in ("i1", "i2")] == ["go", "go"]  # interactive: the reserve is theirs
    assert (await reply(gov, 0.5, "job2", reserve=BACKGROUND_RESERVE)) == ("wait", 0.5)  # the hold holds
    await gov.aclose()


async def test_a_late_answer_to_an_older_request_cannot_raise_the_count(redis_url: str) -> None:
    gov = RedisGovernor(redis_url, "a")
    await reply(gov, 0.0, "probe")
    await answer(gov, 0.0, "probe", remaining="8")
    await reply(gov, 1.0, "old")
    await reply(gov, 2.0, "new")
    await answer(gov, 2.1, "new", remaining="3")  # the newer request's answer comes first
    await answer(gov, 2.2, "old", remaining="7")  # the older one's, late: the count stays 3
    assert [(await reply(gov, 2.3, s))[0] for s in "abcd"] == ["go", "go", "go", "poll"]
    await gov.aclose()


async def test_an_upstream_without_counts_is_not_probed_one_request_at_a_time(redis_url: str) -> None:
    gov = RedisGovernor(redis_url, "a")
    await reply(gov, 0.0, "probe")
    await answer(gov, 0.0, "probe")  # no X-RateLimit-* at all
    assert [(await reply(gov, 0.0, s))[0] for s in "abc"] == ["go", "go", "go"]
    await gov.aclose()


async def test_the_slots_of_a_dead_replica_expire(pair: tuple[RedisGovernor, RedisGovernor, VirtualClock]) -> None:
    alive, dead, clock = pair
    await alive.acquire()
    await alive.observe(counts(1), 200)  # one token left
    await dead.acquire()  # takes it, and the replica dies: no answer ever
    start = clock.now
    with anyio.fail_after(10):
        await alive.acquire()  # waits for the dead request's answer, until its slot expires
    assert clock.now - start >= alive.slot_ttl - POLL
    assert alive.in_flight == 1


async def test_the_slots_of_a_dead_replica_go_with_its_heartbeat(redis_url: str) -> None:
    """A replica that dies mid-request stops holding the fleet back when its heartbeat lapses (repeats_redis
    keeps one per replica), not a request timeout later."""
    from systeme_mcp.repeats_redis import RedisRepeats

    live, dead = (RedisGovernor(redis_url, "a", replica=name, slot_ttl=35.0) for name in ("live", "dead"))
    beats = [RedisRepeats(redis_url, 120.0, replica=name) for name in ("live", "dead")]
    try:
        for beat in beats:
            await beat._heartbeat()
        assert await reply(dead, 0.0, "dead|probe") == ("go", 0.0)  # the count is unknown: its probe goes ...
        assert (await reply(live, 0.0, "live|next"))[0] == "poll"  # ... and the fleet waits for its answer
        await dead._redis.zadd(live.keys[3], {"dead": 0})  # it died: its heartbeat lapsed
        assert (await reply(live, 0.0, "live|next"))[0] == "go"  # well before its slot's 35 s
    finally:
        for beat in beats:
            await beat.aclose()
        for gov in (live, dead):
            await gov.aclose()


async def test_a_429_seen_by_one_replica_holds_the_other(
    pair: tuple[RedisGovernor, RedisGovernor, VirtualClock],
) -> None:
    first, second, clock = pair
    await first.acquire()
    await first.observe({"Retry-After": "3", **counts(0, 3)}, 429)
    start = clock.now
    await second.acquire()
    assert clock.now - start == pytest.approx(3.0)


async def test_the_maton_bucket_limits_both_replicas_together(
    pair: tuple[RedisGovernor, RedisGovernor, VirtualClock],
) -> None:
    first, second, clock = pair
    start = clock.now
    for n in range(40):  # one task: the virtual clock moves only by the waits the bucket asks for
        gov = first if n % 2 else second
        await gov.acquire()
        await gov.observe({}, 200)  # no Systeme counts (only the Maton bucket paces)
    spent = clock.now - start
    allowed = governor.MATON_BURST + governor.MATON_RATE * spent
    assert 40 - 0.01 <= allowed < 40 + 1  # never past the limit (to float precision), and close to it
    assert spent == pytest.approx((40 - governor.MATON_BURST) / governor.MATON_RATE, abs=0.05)


async def test_background_hold_in_one_replica_leaves_the_reserve_to_the_other(
    pair: tuple[RedisGovernor, RedisGovernor, VirtualClock],
) -> None:
    job_replica, interactive, clock = pair
    await interactive.acquire()
    await interactive.observe(counts(BACKGROUND_RESERVE), 200)
    start = clock.now
    await interactive.acquire()  # interactive, on either replica: at once
    assert clock.now == start
    await interactive.observe(counts(BACKGROUND_RESERVE), 200)
    with background():
        await job_replica.acquire()  # background: held for the refill first
    assert clock.now - start == pytest.approx(1.0)


# ---------------------------------------------------------------- two clients, one rate-limited sandbox
def fleet_settings(sandbox: Sandbox, store: str) -> Settings:
    url = sandbox.base_url
    return Settings(backend="sandbox", store=store, state_secret=SECRET, maton_gateway_url=url, maton_ctrl_url=url)


async def run_two_replicas(sandbox: Sandbox, store: str, per_replica: int = 20) -> list[SystemeClient]:
    clients = [SystemeClient(fleet_settings(sandbox, store), transport=sandbox.transport()) for _ in range(2)]
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for client in clients:
                    for _ in range(per_replica):
                        tg.start_soon(client.send, RequestPlan("GET", "/api/tags"))
    finally:
        for client in clients:
            await client.aclose()
    return clients


def rejected(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.status == 429)


async def test_two_replicas_sharing_the_governor_never_overrun_the_account(redis_url: str) -> None:
    sandbox = Sandbox(rate_limit=RateLimit(capacity=10, refill_per_second=10), membership_delay=0.0)
    clients = await run_two_replicas(sandbox, redis_url)
    assert all(isinstance(c.pacer, RedisGovernor) for c in clients)
    assert rejected(sandbox) == 0  # the sandbox's bucket is the limit: no 429 means never over it
    assert len(sandbox.requests) == 40  # and nothing was sent twice


async def test_two_replicas_pacing_alone_overrun_the_account() -> None:
    """The control: the same load from two in-process pacers collects 429s (each thinks it owns the quota)."""
    sandbox = Sandbox(rate_limit=RateLimit(capacity=10, refill_per_second=10), membership_delay=0.0)
    clients = await run_two_replicas(sandbox, "memory")
    assert all(isinstance(c.pacer, LocalGovernor) for c in clients)
    assert rejected(sandbox) > 0


# ---------------------------------------------------------------- Redis down
async def test_with_redis_unreachable_writes_are_refused_unsent_and_reads_proceed() -> None:
    gov = open_governor(Settings(backend="sandbox", store=f"redis://127.0.0.1:{free_port()}/0", state_secret=SECRET))
    assert isinstance(gov, RedisGovernor)
    with anyio.fail_after(10), pytest.raises(RateStateUnavailable) as refused:
        await gov.acquire(write=True)
    assert "nothing was sent" in refused.value.message()
    assert gov.in_flight == 0
    with anyio.fail_after(10):
        await gov.acquire()  # a read: paced by this process alone
    assert gov.in_flight == 1
    await gov.observe(counts(5), 200)
    assert gov.in_flight == 0
    await gov.aclose()


async def test_redis_stopping_mid_run_refuses_the_next_write_before_it_is_sent(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")  # the redis_url tests above fail under CI=true for it
    proc, port = _start(binary, tmp_path)
    sandbox = Sandbox(rate_limit=RateLimit(capacity=10, refill_per_second=10), membership_delay=0.0)
    client = SystemeClient(fleet_settings(sandbox, f"redis://127.0.0.1:{port}/0"), transport=sandbox.transport())
    try:
        post = RequestPlan("POST", "/api/tags", body={"name": "while-redis-is-up"})
        await client.send(post)
        proc.kill()
        proc.wait()
        sent = len(sandbox.requests)
        with anyio.fail_after(10), pytest.raises(RateStateUnavailable):
            await client.send(RequestPlan("POST", "/api/tags", body={"name": "while-redis-is-down"}))
        assert len(sandbox.requests) == sent  # refused before anything was sent
        with anyio.fail_after(10):
            answer_: Any = await client.send(RequestPlan("GET", "/api/tags"))
        assert answer_.status == 200
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await client.aclose()
