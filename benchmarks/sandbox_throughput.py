"""Sandbox request throughput over real HTTP on loopback: one client, sequential requests, printed.

    .venv/bin/python benchmarks/sandbox_throughput.py [--seconds 3] [--path /api/tags] [--inprocess]

Starts the sandbox on uvicorn (127.0.0.1, free port, rate limit off) in a background thread and drives it with
one httpx2 client (keep-alive). Prints requests/s for a small read, a 100-contact page, and a create.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx2

from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.serve import running

KEY = {"X-API-Key": "bench"}


async def requests_per_second(
    seconds: float, call: Callable[[int], Coroutine[Any, Any, httpx2.Response]], warm_up: int = 20
) -> tuple[float, int]:
    """Sequential calls of `call(i)` for `seconds` after `warm_up` discarded ones: (requests/s, requests)."""
    for i in range(warm_up):
        (await call(-i - 1)).raise_for_status()
    count, started = 0, time.perf_counter()
    for i in itertools.count():
        answer = await call(i)
        assert answer.status_code < 300, answer.text
        count += 1
        if time.perf_counter() - started >= seconds:
            break
    return count / (time.perf_counter() - started), count


async def measure(name: str, seconds: float, call: Callable[[int], Coroutine[Any, Any, httpx2.Response]]) -> float:
    rate, count = await requests_per_second(seconds, call)
    print(f"  {name:<34} {rate:8.0f} requests/s  ({count} requests)")
    return rate


async def run(client: httpx2.AsyncClient, seconds: float) -> None:
    await measure("GET /api/tags (10 tags)", seconds, lambda i: client.get("/api/tags"))
    await measure("GET /api/contacts?limit=100", seconds, lambda i: client.get("/api/contacts", params={"limit": 100}))
    await measure("GET /api/contacts/{id}", seconds, lambda i: client.get(f"/api/contacts/{i % 300 + 1}"))
    await measure(
        "POST /api/contacts",
        seconds,
        lambda i: client.post("/api/contacts", json={"email": f"bench{i}@acme.test"}),
    )


async def main_async(args: argparse.Namespace) -> None:
    if args.inprocess:
        sb = Sandbox(rate_limit=None)
        print("in-process (httpx2 ASGI transport), one client:")
        async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as client:
            await run(client, args.seconds)
        return
    sb = Sandbox(rate_limit=None)
    with running(sb) as base:
        print(f"loopback HTTP ({base}, uvicorn), one client, keep-alive:")
        async with httpx2.AsyncClient(base_url=base, headers=KEY) as client:
            await run(client, args.seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    p.add_argument("--inprocess", action="store_true", help="measure the in-process transport instead")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
