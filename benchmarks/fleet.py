"""Issue 14's fleet figures: calls/s and latency for 1, 2 and 3 replicas, and what the Redis store costs per call.

Part 1 — a fleet (tests/fleet.py: the sandbox over HTTP with its rate limit off, N server replicas as processes
sharing one Redis, every HTTP request sent to the next replica in turn) and 16 concurrent MCP clients
(2026-07-28 sessions, all in this process); per N: calls/s and p50/p99 of `get_tag` (read), then of a write mix
(3 get_tag : 1 create_tag), after warm-up calls that are discarded; the three fleets run side by side and take
turns, round after round; also the CPU per call of the fleet's processes and of the clients (from /proc).
Part 2 — one replica, one client, sequential `get_tag`, then sequential `create_tag` (a write: its identity is
claimed and settled in the store, repeats.py): p50/p99 and the replica's CPU per call (from /proc) with a memory
store vs a Redis store (both running, taking turns in blocks), and the Redis commands per call (INFO commandstats).
Part 3 — the shared rate budget: reads from 16 clients over 3 replicas against a rate-limited sandbox: its 429s
and the fraction of the allowed rate used (as benchmarks/governor.py counts it, from the sandbox's request log).

This machine has 2 cores shared by the clients, every replica, the sandbox and Redis: the fleet is CPU-bound, so
more replicas add processes, not cores, and the calls/s show the cost of the fleet, not its scaling. Figures are
from one run: read the ratios. Every connection is to 127.0.0.1.
Run: python benchmarks/fleet.py [--rounds 3] [--calls 300] [--clients 16] [--sequential 300] [--reads 400]
                               [--capacity 20]   (about 2 minutes)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import redis.asyncio as redis
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from overhead import _cpu_seconds  # benchmarks/ is on the path when run as a script

from tests.fleet import Fleet, budget_use, open_fleet
from tests.helpers import sandbox_log
from tests.redis_server import _start

Call = Callable[[Client, int], Awaitable[Any]]
WARM = 5  # calls per client, discarded


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


@dataclass
class Cell:
    """One fleet size and workload, over every round: latencies, wall time, CPU seconds (fleet, this process)."""

    times: list[float] = field(default_factory=list)
    wall: float = 0.0
    fleet_cpu: float = 0.0
    client_cpu: float = 0.0


def cpu_of(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) or 0.0 for pid in pids)


async def burst(
    fleet: Fleet, clients: int, calls: int, call: Call, cell: Cell, redis_pid: int, warm: int = WARM
) -> None:
    """`calls` calls over `clients` concurrent sessions (after `warm` each), added to `cell`."""
    left, failed = [calls], list[Any]()

    async def worker(client: Client, record: bool) -> None:
        while left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            result = await call(client, left[0])
            if result.is_error:
                failed.append(result.content)
            if record:
                cell.times.append(time.perf_counter() - started)

    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(fleet.client()) for _ in range(clients)]
        left[0] = warm * clients
        async with anyio.create_task_group() as tg:
            for client in sessions:
                tg.start_soon(worker, client, False)
        left[0] = calls
        pids = [*fleet.pids(), redis_pid]
        fleet_cpu, client_cpu, started = cpu_of(pids), time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for client in sessions:
                tg.start_soon(worker, client, True)
        cell.wall += time.perf_counter() - started
        cell.fleet_cpu += cpu_of(pids) - fleet_cpu
        cell.client_cpu += time.process_time() - client_cpu
    if failed:
        raise SystemExit(f"{len(failed)} calls failed, the first: {failed[0]}")


async def new_tag(fleet: Fleet) -> int:
    async with fleet.api() as api:
        return int((await api.post("/api/tags", json={"name": "bench"})).json()["id"])


def workloads(tag: int) -> dict[str, Call]:
    async def read(client: Client, n: int) -> Any:
        return await client.call_tool("get_tag", {"tag_id": tag})

    async def mix(client: Client, n: int) -> Any:
        if n % 4:
            return await client.call_tool("get_tag", {"tag_id": tag})
        return await client.call_tool("create_tag", {"name": f"bench-{time.perf_counter_ns()}"})

    return {"read": read, "mix 3:1": mix}


async def part1(url: str, redis_pid: int, args: argparse.Namespace) -> None:
    sizes = (1, 2, 3)
    print(
        f"Part 1: {args.clients} concurrent clients; {args.rounds} rounds of {args.calls} calls per row (after "
        f"{WARM} each to warm up), the fleet sizes alternating, so drift spreads evenly"
    )
    cells = {(n, name): Cell() for n in sizes for name in ("read", "mix 3:1")}
    async with AsyncExitStack() as stack:
        fleets = {}
        for n in sizes:  # job upkeep every 10 s (lease 30 s), not every 0.3 s
            made = open_fleet(f"{url}?namespace=bench-{n}", n, SYSTEME_JOB_LEASE="30")
            fleets[n] = await stack.enter_async_context(made)
        calls = {n: workloads(await new_tag(fleet)) for n, fleet in fleets.items()}
        for round_ in range(args.rounds):
            for n in sizes[round_ % 3 :] + sizes[: round_ % 3]:
                for name, call in calls[n].items():
                    await burst(fleets[n], args.clients, args.calls, call, cells[(n, name)], redis_pid)
    head = f"{'replicas':>8} {'workload':>9} {'calls/s':>8} {'vs 1':>6} {'p50 ms':>7} {'p99 ms':>7}"
    print(f"{head} {'fleet CPU ms/call':>17} {'client CPU ms/call':>18}")
    for (n, name), cell in cells.items():
        rate, base = len(cell.times) / cell.wall, cells[(1, name)]
        count = len(cell.times)
        print(
            f"{n:>8} {name:>9} {rate:>8.1f} {rate / (len(base.times) / base.wall):>5.2f}x "
            f"{percentile(cell.times, 0.5):>7.1f} {percentile(cell.times, 0.99):>7.1f} "
            f"{cell.fleet_cpu / count * 1000:>17.2f} {cell.client_cpu / count * 1000:>18.2f}"
        )
    print(f"(fleet CPU: the replicas, the sandbox and Redis; client CPU: this process, the {args.clients} MCP clients)")


async def sequential(client: Client, tag: int, calls: int, pid: int, cell: Cell, *, write: bool = False) -> None:
    """`calls` get_tag (`write`: create_tag of a new name) one after another through `client`, added to `cell`
    (the replica `pid`'s CPU with them)."""
    cpu = _cpu_seconds(pid) or 0.0
    for _ in range(calls):
        started = time.perf_counter()
        if write:
            await client.call_tool("create_tag", {"name": f"seq-{time.perf_counter_ns()}"})
        else:
            await client.call_tool("get_tag", {"tag_id": tag})
        cell.times.append(time.perf_counter() - started)
    cell.fleet_cpu += (_cpu_seconds(pid) or 0.0) - cpu


async def commands(db: Any) -> Counter[str]:
    """Commands Redis has run so far, by name (INFO commandstats), not counting this INFO."""
    stats = await db.info("commandstats")
    counted = Counter({name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()})
    counted["info"] -= 1
    return counted


async def part2(url: str, args: argparse.Namespace) -> None:
    for tool in ("get_tag", "create_tag"):
        await cost(url, args, tool)


async def cost(url: str, args: argparse.Namespace, tool: str) -> None:
    """What a Redis store costs one replica per sequential `tool` call, against a memory store."""
    blocks, write = 10, tool == "create_tag"
    print(
        f"\nPart 2: one replica, one client, {args.sequential} sequential {tool} per store, in {blocks} blocks "
        "taking turns (a memory store, a Redis store)"
    )
    stores = {"memory": "memory", "redis": f"{url}?namespace=bench-cost-{tool}"}
    cells = {name: Cell() for name in stores}
    async with AsyncExitStack() as stack:
        db = redis.from_url(url)
        stack.push_async_callback(db.aclose)
        sessions = {}
        for name, store in stores.items():  # job upkeep every 10 s (lease 30 s), not every 0.3 s
            fleet = await stack.enter_async_context(open_fleet(store, 1, SYSTEME_JOB_LEASE="30"))
            client = await stack.enter_async_context(fleet.client())
            tag, pid = await new_tag(fleet), fleet.pids()[-1]
            await sequential(client, tag, WARM * 4, pid, Cell(), write=write)
            sessions[name] = (client, tag, pid)
        before = await commands(db)
        for _ in range(blocks):
            for name, (client, tag, pid) in sessions.items():
                await sequential(client, tag, args.sequential // blocks, pid, cells[name], write=write)
        sent = await commands(db) - before
    print(f"{'store':>6} {'p50 ms':>7} {'p99 ms':>7} {'replica CPU ms/call':>20}")
    rows = {}
    for name, cell in cells.items():
        rows[name] = (percentile(cell.times, 0.5), cell.fleet_cpu / len(cell.times) * 1000)
        print(f"{name:>6} {rows[name][0]:>7.2f} {percentile(cell.times, 0.99):>7.2f} {rows[name][1]:>20.2f}")
    (memory_p50, memory_cpu), (redis_p50, redis_cpu) = rows["memory"], rows["redis"]
    calls = len(cells["redis"].times)
    print(
        f"Redis adds {redis_p50 - memory_p50:+.2f} ms per {tool} (p50; {redis_p50 / memory_p50:.2f}x), "
        f"{redis_cpu - memory_cpu:+.2f} ms of replica CPU; "
        f"{sent.total() / calls:.1f} Redis commands per call (INFO commandstats, which counts the commands Lua "
        "scripts run too; each EVALSHA is one round trip): "
        + ", ".join(f"{name} {count / calls:.2f}" for name, count in sent.most_common() if count)
    )


async def part3(url: str, redis_pid: int, args: argparse.Namespace) -> None:
    capacity, rate, replicas = args.capacity, float(args.capacity), 3  # the sandbox states its refill in whole seconds
    print(
        f"\nPart 3: the shared rate budget: {args.reads} get_tag from {args.clients} clients over {replicas} "
        f"replicas, the sandbox's bucket {capacity} + {rate:g}/s"
    )
    async with open_fleet(f"{url}?namespace=bench-budget", replicas, SYSTEME_JOB_LEASE="30") as fleet:
        tag = await new_tag(fleet)
        await fleet.admin("POST", "/ratelimit", {"capacity": capacity, "refillPerSecond": rate})
        cell = Cell()
        await burst(fleet, args.clients, args.reads, workloads(tag)["read"], cell, redis_pid, warm=0)
        log = [r for r in await sandbox_log(fleet.sandbox_url) if r["path"] == f"/api/tags/{tag}"]
    rejected, used = budget_use(log, capacity, rate)
    print(
        f"429s: {rejected}; {used:.0%} of the allowed rate used (accepted ÷ (capacity + rate x their span)); "
        f"{len(cell.times) / cell.wall:.1f} calls/s, p50 {percentile(cell.times, 0.5):.0f} ms, "
        f"p99 {percentile(cell.times, 0.99):.0f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    print(f"{os.cpu_count()} CPU cores, shared by the clients, the replicas, the sandbox and Redis: CPU-bound.")
    with tempfile.TemporaryDirectory() as directory:
        proc, port = _start(binary, Path(directory))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            await part1(url, proc.pid, args)
            await part2(url, args)
            await part3(url, proc.pid, args)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--capacity", type=int, default=20)
    anyio.run(main, parser.parse_args())
