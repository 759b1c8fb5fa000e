"""Figure (a) of issue 7: tag 1,000 contacts with the sandbox's rate limit on.

Compares `bulk_add_tag(contact_ids=[...1000], dry_run=false)` (one MCP call, 8 writes at a time through the
shared pacer) with an agent-style loop of 1,000 sequential `add_tag_to_contact` MCP calls. Both run against a
sandbox with a token bucket (capacity = refill = RATE/s) and LATENCY seconds of network delay per request.
The loop's figure leaves out the model's own turn between calls, so it is a lower bound.

Reported: wall time, requests the API accepted, 429s, and the achieved rate as a fraction of what the bucket
allowed over the run (capacity + refill x wall time).
Run: python benchmarks/bulk_tag.py [--rate 50] [--latency 0.05] [--contacts 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio
import httpx2
from mcp import Client

from systeme_mcp.config import Settings
from systeme_mcp.sandbox import FaultPlan, RateLimit, Sandbox
from systeme_mcp.server import serving


async def _prepare(contacts: int, latency: float) -> tuple[Sandbox, list[int], int]:
    """A sandbox with at least `contacts` contacts (added with the limit off), a fresh tag, then the limit on."""
    sb = Sandbox(rate_limit=None)
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers={"X-API-Key": "k"}) as raw:
        have = len(sb.store.contacts)
        for n in range(max(0, contacts - have)):
            answer = await raw.post("/api/contacts", json={"email": f"bulk{n}@bench.example.com"})
            assert answer.status_code == 201, answer.text
        tag_id = (await raw.post("/api/tags", json={"name": "bench"})).json()["id"]
    ids = sorted(sb.store.contacts)[:contacts]
    sb.faults.set(FaultPlan(rate=1.0, kinds=("slow",), slow_seconds=latency, seed=0))
    return sb, ids, tag_id


def _figures(sb: Sandbox, start_index: int, wall: float, limit: RateLimit) -> dict[str, Any]:
    seen = sb.requests[start_index:]
    accepted = sum(1 for r in seen if r.status is not None and r.status != 429)
    allowed = limit.capacity + limit.refill_per_second * wall
    return {
        "wall_s": round(wall, 2),
        "requests_accepted": accepted,
        "429s": sum(1 for r in seen if r.status == 429),
        "achieved_per_s": round(accepted / wall, 2),
        "allowed_per_s": limit.refill_per_second,
        "fraction_of_allowed": round(accepted / allowed, 3),
    }


async def _run(mode: str, contacts: int, rate: float, latency: float) -> dict[str, Any]:
    sb, ids, tag_id = await _prepare(contacts, latency)
    limit = RateLimit(capacity=int(rate), refill_per_second=rate)
    # one call that waits for the whole job (benchmarks/jobs.py measures the call budget and jobs)
    settings = Settings(backend="sandbox", confirm_destructive=False, call_budget=3600)
    async with serving(settings, sandbox=sb) as server, Client(server, cache=None) as client:
        await client.list_tools()
        sb.set_rate_limit(limit)
        start_index = len(sb.requests)
        started = time.monotonic()
        if mode == "bulk_add_tag":
            result = await client.call_tool("bulk_add_tag", {"contact_ids": ids, "tag_id": tag_id, "dry_run": False})
            assert not result.is_error and result.structured_content is not None
            outcome = result.structured_content["counts"]
        else:
            errors = 0
            for cid in ids:
                answer = await client.call_tool("add_tag_to_contact", {"contact_id": cid, "tag_id": tag_id})
                errors += bool(answer.is_error)
            outcome = {"changed": len(ids) - errors, "failed": errors}
        wall = time.monotonic() - started
    tagged = sum(1 for cid in ids if tag_id in sb.store.contacts[cid].tag_ids)
    return {"mode": mode, **_figures(sb, start_index, wall, limit), "outcome": outcome, "tagged_in_sandbox": tagged}


async def main(contacts: int, rate: float, latency: float) -> None:
    results = [await _run(mode, contacts, rate, latency) for mode in ("bulk_add_tag", "agent_loop")]
    speedup = results[1]["wall_s"] / results[0]["wall_s"]
    print(json.dumps({"contacts": contacts, "rate_limit_per_s": rate, "latency_s": latency, "runs": results,
                      "speedup_bulk_vs_loop": round(speedup, 2)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="allowed requests/s (bucket refill = capacity)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds of network delay per request")
    options = parser.parse_args()
    anyio.run(main, options.contacts, options.rate, options.latency)
