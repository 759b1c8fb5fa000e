"""Issue 14 benchmark: the rate budget of one account shared by 1 or 2 replicas, and what the Redis governor costs.

Part 1 — N GET requests in all, split over K "replicas" (K SystemeClients in one process, each with its own
governor and CONCURRENCY requests at a time) against one sandbox whose token bucket holds CAPACITY tokens refilled
at RATE/s, LATENCY seconds per answer. Governors: `local` (each replica its own in-process Pacer, as with a
memory/SQLite store) or `redis` (the shared governor on a redis-server this script starts). Reported: 429s the
sandbox answered, accepted requests/s, and the fraction of the allowed rate used (accepted / (CAPACITY + RATE x
wall time)).
Part 2 — the per-request cost of the governor: p50/p99 of one acquire + observe (sequential, budget never spent),
in-process Pacer vs Redis governor (one Redis round trip each way, on this machine's loopback).
Run: python benchmarks/governor.py [--n 200] [--rate 10] [--capacity 10] [--latency 0.02] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

import anyio

from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.errors import SystemeError
from systeme_mcp.governor import Governor, open_governor
from systeme_mcp.sandbox import FaultPlan, RateLimit, Sandbox
from systeme_mcp.wire import RequestPlan

SECRET = "b" * 64


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("redis-server did not start")


def settings_for(sandbox: Sandbox, store: str) -> Settings:
    url = sandbox.base_url
    return Settings(backend="sandbox", store=store, state_secret=SECRET, maton_gateway_url=url, maton_ctrl_url=url)


async def share(
    replicas: int, store: str, n: int, rate: float, capacity: int, latency: float, concurrency: int
) -> dict[str, Any]:
    sb = Sandbox(rate_limit=RateLimit(capacity=capacity, refill_per_second=rate), membership_delay=0.0)
    if latency > 0:
        sb.faults.set(FaultPlan(rate=1.0, kinds=("slow",), slow_seconds=latency, seed=0))
    clients = [SystemeClient(settings_for(sb, store), transport=sb.transport()) for _ in range(replicas)]
    left, failed = [n], [0]

    async def worker(client: SystemeClient) -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                await client.send(RequestPlan("GET", "/api/tags"))
            except SystemeError:  # 429s past the retries: counted by the sandbox below
                failed[0] += 1

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for client in clients:
            for _ in range(concurrency):
                tg.start_soon(worker, client)
    wall = time.monotonic() - started
    for client in clients:
        await client.aclose()
    rejected = sum(1 for r in sb.requests if r.status == 429)
    accepted = len(sb.requests) - rejected
    return {
        "wall": wall,
        "accepted": accepted,
        "rejected": rejected,
        "used": accepted / (capacity + rate * wall),
        "failed": failed[0],
    }


async def cost(gov: Governor, rounds: int) -> tuple[float, float]:
    headers = {"X-RateLimit-Remaining": "1000000", "X-RateLimit-Refill": "0", "X-RateLimit-Limit": "1000000"}
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await gov.acquire()
        await gov.observe(headers, 200)
        times.append(time.perf_counter() - started)
    await gov.aclose()
    times.sort()
    return statistics.median(times) * 1e6, times[int(len(times) * 0.99)] * 1e6


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        proc, url = start_redis(directory)
        try:
            print(
                f"{args.n} GETs, bucket {args.capacity} tokens + {args.rate:g}/s, {args.latency * 1000:g} ms "
                f"per answer, {args.concurrency} concurrent per replica"
            )
            print(
                f"{'replicas':>8} {'governor':>8} {'429s':>5} {'accepted/s':>10} {'rate used':>9} {'failed calls':>12}"
            )
            for replicas in (1, 2):
                for name, store in (("local", "memory"), ("redis", f"{url}?namespace=bench-{replicas}")):
                    r = await share(replicas, store, args.n, args.rate, args.capacity, args.latency, args.concurrency)
                    print(
                        f"{replicas:>8} {name:>8} {r['rejected']:>5} {r['accepted'] / r['wall']:>10.1f} "
                        f"{r['used']:>9.0%} {r['failed']:>12}"
                    )
            print(f"\nper request (acquire + observe), {args.rounds} rounds: p50 / p99 in microseconds")
            local = Settings(backend="sandbox", store="memory")
            shared = Settings(backend="sandbox", store=f"{url}?namespace=cost", state_secret=SECRET)
            for name, settings in (("in-process Pacer", local), ("Redis governor", shared)):
                p50, p99 = await cost(open_governor(settings), args.rounds)
                print(f"{name:>17}: {p50:8.1f} / {p99:8.1f}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--capacity", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2000)
    anyio.run(main, parser.parse_args())
