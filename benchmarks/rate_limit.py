"""Issue 5 benchmark: 1,000 tag assignments through the MCP tools against the sandbox with its rate limit on.

Eight concurrent `add_tag_to_contact` MCP calls at a time (one server, one shared client, one shared pacer)
against a sandbox token bucket of CAPACITY tokens refilled at RATE/s, with LATENCY seconds of network delay
per answer. The pacer reads the X-RateLimit-* headers and holds requests once the budget is spent, so the API
should see almost no 429s while the bucket is kept busy.

Reported: wall time; requests the API accepted; 429s seen; achieved requests/s; and the achieved rate as a
fraction of what the bucket allowed over the run (CAPACITY + RATE x wall time), plus the steady-state fraction
(accepted beyond the initial bucket, over RATE x wall time).
Run: python benchmarks/rate_limit.py [--rate 25] [--capacity 25] [--latency 0.02] [--concurrency 8] [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio
from mcp import Client

from systeme_mcp.config import Settings
from systeme_mcp.sandbox import FaultPlan, RateLimit, Sandbox
from systeme_mcp.server import serving


async def run(n: int, rate: float, capacity: int, latency: float, concurrency: int) -> dict[str, Any]:
    sb = Sandbox(rate_limit=None)
    contacts, tags = sorted(sb.store.contacts), sorted(sb.store.tags)
    pairs = [(c, t) for t in tags for c in contacts if t not in sb.store.contacts[c].tag_ids][:n]
    assert len(pairs) == n, f"the seed has only {len(pairs)} untagged contact/tag pairs"
    if latency > 0:
        sb.faults.set(FaultPlan(rate=1.0, kinds=("slow",), slow_seconds=latency, seed=0))
    limit = RateLimit(capacity=capacity, refill_per_second=rate)
    settings = Settings(backend="sandbox", confirm_destructive=False)
    failures: list[str] = []
    async with serving(settings, sandbox=sb) as server, Client(server, cache=None) as client:
        await client.list_tools()
        sb.set_rate_limit(limit)
        start_index = len(sb.requests)
        queue = iter(pairs)

        async def worker() -> None:
            for contact, tag in queue:
                result = await client.call_tool("add_tag_to_contact", {"contact_id": contact, "tag_id": tag})
                if result.is_error:
                    failures.append(str(result.content[0]))

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        wall = time.monotonic() - started
    seen = sb.requests[start_index:]
    accepted = sum(1 for r in seen if r.status is not None and r.status != 429)
    tagged = sum(1 for c, t in pairs if t in sb.store.contacts[c].tag_ids)
    return {
        "assignments": n,
        "concurrency": concurrency,
        "rate_limit": {"capacity": capacity, "refill_per_s": rate},
        "latency_s": latency,
        "wall_s": round(wall, 2),
        "requests_accepted": accepted,
        "429s": sum(1 for r in seen if r.status == 429),
        "achieved_per_s": round(accepted / wall, 2),
        "fraction_of_allowed": round(accepted / (capacity + rate * wall), 3),
        "steady_state_fraction": round((accepted - capacity) / (rate * wall), 3),
        "failed_calls": len(failures),
        "tagged_in_sandbox": tagged,
        "first_failures": failures[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1000, help="tag assignments")
    parser.add_argument("--rate", type=float, default=25.0, help="bucket refill, tokens per second")
    parser.add_argument("--capacity", type=int, default=25, help="bucket size")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds of network delay per answer")
    parser.add_argument("--concurrency", type=int, default=8)
    o = parser.parse_args()
    figures = anyio.run(run, o.n, o.rate, o.capacity, o.latency, o.concurrency)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
