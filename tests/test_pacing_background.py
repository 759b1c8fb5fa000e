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


async def test_the_hold_adapts_to_what_the_count_after_it_shows() -> None:
    clock = VirtualClock()
    pacer = Pacer(sleep=clock.sleep, clock=clock)
    pacer.observe(headers(9), 200)  # the API states a refill time of 1 s

    async def hold_then_probe(remaining_after: int) -> float:
        """Spend the budget down to the reserve, hold, probe; the probe's answer shows `remaining_after`."""
        pacer.remaining, pacer.in_flight = float(BACKGROUND_RESERVE), 0
        before = clock.now
        with background():
            await pacer.acquire()
        pacer.observe(headers(remaining_after), 200)
        return clock.now - before

    assert await hold_then_probe(9) == pytest.approx(1.0)  # the first: the whole stated refill time
    assert await hold_then_probe(9) == pytest.approx(0.75)  # plenty was left: shorter
    assert await hold_then_probe(9) == pytest.approx(0.5625)
    assert await hold_then_probe(BACKGROUND_RESERVE) == pytest.approx(0.421875)  # too short: the reserve was hit
    assert await hold_then_probe(9) == pytest.approx(0.84375)  # so twice as long
    for _ in range(40):
        await hold_then_probe(9)
    assert await hold_then_probe(9) == pytest.approx(0.02, abs=1e-5)  # never below MIN_HOLD
