"""The pacer's background class (durable jobs): it leaves a reserve of tokens to interactive calls, sends one
request at a time while the count is unknown, and shortens its hold to the refill rate it measured."""

from __future__ import annotations

import anyio
import pytest

from systeme_mcp.pacing import BACKGROUND_RESERVE, Pacer, background

from .helpers import VirtualClock

pytestmark = pytest.mark.anyio


def headers(remaining: int, refill: int = 1) -> dict[str, str]:
    return {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Refill": str(refill), "X-RateLimit-Limit": "10"}


async def test_background_work_leaves_the_reserve_to_interactive_calls() -> None:
    clock = VirtualClock()
    pacer = Pacer(sleep=clock.sleep, clock=clock)
    await pacer.acquire()
    pacer.observe(headers(BACKGROUND_RESERVE), 200)  # only the reserve is left
    start = clock.now
    await pacer.acquire()  # interactive: at once
    assert clock.now == start
    pacer.observe(headers(BACKGROUND_RESERVE), 200)
    with background():
        await pacer.acquire()  # background: held for the refill first
    assert clock.now - start == pytest.approx(1.0)


async def test_background_work_sends_one_request_while_the_count_is_unknown() -> None:
    pacer = Pacer()
    order: list[str] = []

    async def job(name: str) -> None:
        with background():
            await pacer.acquire()
        order.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(job, "probe")
            tg.start_soon(job, "second")
            await anyio.wait_all_tasks_blocked()
            assert order == ["probe"]  # the second waits for the probe's answer
            pacer.observe(headers(50), 200)
    assert order == ["probe", "second"]


async def test_the_hold_shrinks_to_the_measured_refill_rate() -> None:
    clock = VirtualClock()
    pacer = Pacer(sleep=clock.sleep, clock=clock)
    await pacer.acquire()
    pacer.observe(headers(BACKGROUND_RESERVE), 200)
    start = clock.now
    with background():
        await pacer.acquire()  # the first hold: the whole stated refill (1 s)
        first = clock.now - start
        pacer.observe(headers(9), 200)  # the bucket gained 8 tokens in that second: 8/s
        for _ in range(9 - BACKGROUND_RESERVE):
            await pacer.acquire()
            pacer.observe(headers(int(pacer.remaining or 0) - 1), 200)
        before = clock.now
        await pacer.acquire()  # held again, now only for what two tokens take at 8/s
    assert first == pytest.approx(1.0) and 0 < clock.now - before < 0.5
