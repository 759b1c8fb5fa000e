"""Log notifications as a client receives them, in both eras: each event once, and long work logging how far it
got at a steady interval of the runtime's clock (a virtual one here: the sandbox's rate limit and the client's
pacing share it, so a long bulk call takes no wall-clock time)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

import anyio
import pytest
from mcp import Client, types

from systeme_mcp.runtime import LOG_EVERY, open_runtime
from systeme_mcp.server import create_server

from .conftest import ERAS, sandbox_settings
from .helpers import RawApi, VirtualClock, session

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("transport", ["memory", "http"])
@pytest.mark.parametrize("era", ERAS)
async def test_a_long_bulk_call_logs_each_line_once_at_a_steady_interval(era: str, transport: str) -> None:
    from systeme_mcp.sandbox import RateLimit, Sandbox

    clock = VirtualClock()
    # 10 requests at once, then 2 a second: 150 writes take about 70 s of the shared virtual clock
    sandbox = Sandbox(rate_limit=RateLimit(capacity=10, refill_per_second=2), membership_delay=0.0, clock=clock)
    api = RawApi(sandbox)
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:150]
    tag = await api.post("/api/tags", {"name": "steady"})
    logs: list[tuple[float, str]] = []
    seen: list[float] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append((clock(), str(params.data)))

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    # concurrent waits each move the virtual clock by their whole length: no write may run out of time for that
    settings = sandbox_settings(toolsets=["default", "bulk"], call_deadline=3600)
    arguments = {"contact_ids": ids, "tag_id": tag["id"], "dry_run": False}
    async with (
        open_runtime(settings, sandbox=sandbox, sleep=clock.sleep, clock=clock) as runtime,
        session(runtime, era, transport, log_level="info", logging_callback=on_log) as client,
    ):
        started = clock()
        with anyio.fail_after(60):
            result = await client.call_tool("bulk_add_tag", arguments, progress_callback=on_progress)
        ended = clock()
    await api.aclose()
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["counts"]["changed"] == len(ids) == 150
    assert ended - started > 10 * LOG_EVERY, "the call is long on the virtual clock"

    texts = [m for _, m in logs]
    assert len(texts) >= 10 and all(n == 1 for n in Counter(texts).values()), Counter(texts).most_common(3)
    # progress as the job moves (sampled when several contacts settle at once), never backwards, to the end
    assert seen == sorted(set(seen)) and seen[-1] == len(ids), "progress rises to the end, each value once"
    lines = [(t, m) for t, m in logs if " done (" in m]
    counts = [int(m.split(": ", 1)[1].split("/", 1)[0]) for _, m in lines]
    assert counts == sorted(set(counts)), "each line reports further than the one before"
    # a line is sent at the first contact settled after each interval: at 2 writes/s, up to ~0.5 s late each time
    assert abs(len(lines) - (ended - started) / LOG_EVERY) <= 2, "one line per interval"
    # past the first burst the sandbox lets 2 writes a second through: a line every LOG_EVERY s is ~10 contacts on
    steps = [b - a for a, b in pairwise(counts)]
    assert all(abs(step - 2 * LOG_EVERY) <= LOG_EVERY for step in steps), steps
    if transport == "memory":  # delivered as sent: the virtual time a line arrives is the time it was sent
        times = [started, *(t for t, _ in lines), ended]
        gaps = [b - a for a, b in pairwise(times)]
        assert all(gap <= 1.5 * LOG_EVERY for gap in gaps), gaps  # never silent for long
        # never bunched up (a line is sent from the job's own task: the shared virtual clock may move while it is
        # on its way, so arrival times wobble by a fraction of an interval)
        assert all(gap >= 0.8 * LOG_EVERY for gap in gaps[1:-1]), gaps


@pytest.mark.parametrize("runtime", [{"toolsets": ["default", "bulk"]}], indirect=True)
async def test_a_short_bulk_call_logs_its_start_once_and_no_progress_lines(
    runtime: Any, api: RawApi, sandbox: Any
) -> None:
    ids = [c["id"] for c in (await api.get("/api/contacts", limit=30))["items"]]
    tag = await api.post("/api/tags", {"name": "quick"})
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async with Client(create_server(runtime), mode="legacy", logging_callback=on_log) as client:
        result = await client.call_tool("bulk_add_tag", {"contact_ids": ids, "tag_id": tag["id"], "dry_run": False})
    assert not result.is_error
    assert len(logs) == 1 and "applying to 30 contacts" in logs[0], logs
