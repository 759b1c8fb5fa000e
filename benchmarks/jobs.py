"""Issue 13's figures: a 1,000-contact bulk tag as a durable job at a limit of 10 requests/s.

Part 1 (server in-process, the sandbox over real HTTP on 127.0.0.1 with a token bucket of capacity 10 refilled
at 10/s): the fraction of the allowed rate the job used (requests the API accepted from the first call to the
job's end ÷ (capacity + 10/s x that time)); the longest any call took to answer (the bulk call, get_job every
0.5 s, get_contact every second); and get_contact's median latency while the job runs ÷ its median when idle.
Part 2 (the server as a subprocess on Streamable HTTP, SQLite store): the same job, the server SIGKILLed at about
40% and started again on the same store; lost = contacts left untagged, duplicated = extra tag writes sent
(a tag added twice is still one tag: the count shows the exactly-once check at work).

Run: python benchmarks/jobs.py [--contacts 1000] [--rate 10] [--lease 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import anyio
import httpx2
from mcp import Client

from systeme_mcp.config import Settings
from systeme_mcp.sandbox import RateLimit, Sandbox
from systeme_mcp.sandbox.serve import running
from systeme_mcp.server import serving

KEY = "bench-key-for-jobs"


async def prepare(contacts: int) -> tuple[Sandbox, list[int], int]:
    sb = Sandbox(rate_limit=None)
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers={"X-API-Key": KEY}) as raw:
        for n in range(max(0, contacts - len(sb.store.contacts))):
            assert (await raw.post("/api/contacts", json={"email": f"job{n}@bench.example.com"})).status_code == 201
        tag_id = int((await raw.post("/api/tags", json={"name": "job-bench"})).json()["id"])
    return sb, sorted(sb.store.contacts)[:contacts], tag_id


async def timed(client: Client, tool: str, args: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None, result
    return time.perf_counter() - started, dict(result.structured_content)


async def in_process(contacts: int, rate: float) -> dict[str, Any]:
    sb, ids, tag_id = await prepare(contacts)
    limit = RateLimit(capacity=int(rate), refill_per_second=rate)
    with running(sb) as base:
        settings = Settings(
            backend="direct", systeme_api_key=KEY, systeme_api_url=base, toolsets=["all"], store="memory"
        )
        async with serving(settings) as server, Client(server, cache=None) as client:
            idle = [(await timed(client, "get_contact", {"contact_id": ids[i % 50]}))[0] for i in range(30)]
            sb.set_rate_limit(limit)
            await anyio.sleep(1.5)  # the bucket refills after the idle calls
            first_index, started = len(sb.requests), time.monotonic()
            answers: list[float] = []
            busy: list[float] = []
            job: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:

                async def interactive() -> None:  # from the moment the job starts, through its first call
                    while True:
                        took, _ = await timed(client, "get_contact", {"contact_id": ids[len(busy) % 50]})
                        busy.append(took)
                        answers.append(took)
                        await anyio.sleep(1.0)  # an agent's turn between calls takes seconds

                tg.start_soon(interactive)
                args = {"contact_ids": ids, "tag_id": tag_id, "dry_run": False}
                first_s, job = await timed(client, "bulk_add_tag", args)
                answers.append(first_s)
                while job.get("status") == "running":
                    await anyio.sleep(0.5)
                    took, job = await timed(client, "get_job", {"job_id": job["job_id"]})
                    answers.append(took)
                tg.cancel_scope.cancel()
            wall = time.monotonic() - started
    seen = sb.requests[first_index:]
    accepted = sum(1 for r in seen if r.status is not None and r.status != 429)
    allowed = limit.capacity + rate * wall
    return {
        "job_status": job.get("status"),
        "counts": job.get("counts"),
        "wall_s": round(wall, 1),
        "requests_accepted": accepted,
        "interactive_requests": len(busy),
        "429s": sum(1 for r in seen if r.status == 429),
        "fraction_of_allowed_rate": round(accepted / allowed, 3),
        "first_answer_s": round(first_s, 2),
        "longest_answer_s": round(max(answers), 2),
        "call_budget_s": Settings().call_budget,
        "get_contact_idle_p50_ms": round(statistics.median(idle) * 1000, 1),
        "get_contact_busy_p50_ms": round(statistics.median(busy) * 1000, 1) if busy else None,
        "get_contact_busy_max_ms": round(max(busy) * 1000, 1) if busy else None,
        "busy_over_idle_p50": round(statistics.median(busy) / statistics.median(idle), 2) if busy else None,
        "tagged_in_sandbox": sum(1 for cid in ids if tag_id in sb.store.contacts[cid].tag_ids),
    }


def spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the server (Popen returns at once; nothing here blocks the event loop for long)."""
    return subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def across_a_kill(contacts: int, rate: float, lease: float, store: str) -> dict[str, Any]:
    sb, ids, tag_id = await prepare(contacts)
    sb.set_rate_limit(RateLimit(capacity=int(rate), refill_per_second=rate))
    with running(sb) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEME_", "MATON_"))}
        env.update(SYSTEME_BACKEND="direct", SYSTEME_API_KEY=KEY, SYSTEME_API_URL=base, SYSTEME_STORE=store)
        env.update(SYSTEME_JOB_LEASE=str(lease), SYSTEME_TOOLSETS="default,bulk", SYSTEME_CALL_BUDGET="2")
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        downtime = 0.0
        for life in (1, 2):
            port = free_port()
            cmd = [sys.executable, "-m", "systeme_mcp.cli", "--transport", "http", "--port", str(port)]
            proc = spawn(cmd, env)
            url = f"http://127.0.0.1:{port}/mcp"
            try:
                async with httpx2.AsyncClient() as http:
                    while True:
                        try:
                            await http.get(url)
                            break
                        except httpx2.TransportError:
                            await anyio.sleep(0.05)
                async with Client(url) as client:
                    if life == 1:
                        _, job = await timed(
                            client, "bulk_add_tag", {"contact_ids": ids, "tag_id": tag_id, "dry_run": False}
                        )
                        job_id = job["job_id"]
                        while job["done"] < 0.4 * contacts:
                            await anyio.sleep(0.1)
                            _, job = await timed(client, "get_job", {"job_id": job_id})
                        before = job
                        os.kill(proc.pid, signal.SIGKILL)
                        killed = time.monotonic()
                    else:
                        while True:
                            _, after = await timed(client, "get_job", {"job_id": job_id})
                            if after["status"] != "running":
                                break
                            if not downtime and after["done"] > before["done"] + 8:
                                downtime = time.monotonic() - killed  # it moves again: resumed
                            await anyio.sleep(0.1)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    writes = Counter(
        r.path
        for r in sb.requests
        if r.method == "POST" and r.path.startswith("/api/contacts/") and 200 <= (r.status or 0) < 300
    )
    tagged = {cid for cid in ids if tag_id in sb.store.contacts[cid].tag_ids}
    return {
        "killed_at_done": before.get("done"),
        "job_status": after.get("status"),
        "counts": after.get("counts"),
        "lost": len(set(ids) - tagged),
        "contacts_written_twice": sum(1 for n in writes.values() if n > 1),
        "extra_writes": sum(writes.values()) - len(writes),
        "job_lease_s": lease,
        "kill_to_progress_s": round(downtime, 1),
    }


async def main(contacts: int, rate: float, lease: float) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            "contacts": contacts,
            "rate_limit_per_s": rate,
            "in_process": await in_process(contacts, rate),
            "sigkill_restart": await across_a_kill(contacts, rate, lease, f"sqlite://{tmp}/jobs.db"),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="allowed requests/s (bucket capacity = refill)")
    parser.add_argument("--lease", type=float, default=5.0, help="SYSTEME_JOB_LEASE of the killed server")
    options = parser.parse_args()
    anyio.run(main, options.contacts, options.rate, options.lease)
