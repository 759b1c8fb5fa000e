"""Median in-memory MCP tools/call time ÷ a raw httpx2 call to the same sandbox route, and cold start
(spawn → initialize answered) over stdio. Ratios are measured in one run (noisy 2-core machines).

Run: python benchmarks/latency.py [calls]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx2


async def _overhead(calls: int, over_http: bool) -> dict[str, Any]:
    """Interleaved medians: raw httpx2 GET /api/tags vs MCP tools/call list_tags (in-memory client) on the
    same sandbox — in-process (ASGI transport) or served over real HTTP on 127.0.0.1."""
    from contextlib import nullcontext

    from mcp import Client

    from systeme_mcp.config import Settings
    from systeme_mcp.sandbox import Sandbox
    from systeme_mcp.sandbox.serve import running
    from systeme_mcp.server import serving

    sandbox = Sandbox(rate_limit=None)
    raw_times: list[float] = []
    mcp_times: list[float] = []
    with running(sandbox) if over_http else nullcontext(sandbox.base_url) as base:
        transport = None if over_http else sandbox.transport()
        if over_http:
            settings = Settings(backend="direct", systeme_api_key="bench-key", systeme_api_url=base)
        else:
            settings = Settings(backend="sandbox")
        raw = httpx2.AsyncClient(transport=transport, base_url=base)
        async with raw, serving(settings, sandbox=sandbox) as server, Client(server) as client:
            for i in range(calls + 20):  # interleaved, after 20 warm-up rounds
                t0 = time.perf_counter()
                await raw.get("/api/tags", params={"limit": 10}, headers={"X-API-Key": "k"})
                t1 = time.perf_counter()
                result = await client.call_tool("list_tags", {"limit": 10})
                t2 = time.perf_counter()
                assert not result.is_error
                if i >= 20:
                    raw_times.append(t1 - t0)
                    mcp_times.append(t2 - t1)
    raw_ms = statistics.median(raw_times) * 1000
    mcp_ms = statistics.median(mcp_times) * 1000
    return {
        "sandbox": "loopback HTTP" if over_http else "in-process",
        "calls": calls,
        "raw_httpx2_median_ms": round(raw_ms, 3),
        "mcp_tools_call_median_ms": round(mcp_ms, 3),
        "ratio": round(mcp_ms / raw_ms, 2),
    }


def cold_start(runs: int = 5) -> dict[str, Any]:
    """Seconds from spawning `python -m systeme_mcp.cli` to its initialize answer on stdout."""
    init = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        }
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MATON_API_KEY", "SYSTEME_API_KEY")}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "systeme_mcp.cli"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write(init + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        times.append(time.perf_counter() - t0)
        assert '"result"' in line, line
        proc.kill()
        proc.wait()
    return {
        "runs": runs,
        "cold_start_median_s": round(statistics.median(times), 3),
        "cold_start_max_s": round(max(times), 3),
    }


if __name__ == "__main__":
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    figures = [anyio.run(_overhead, calls, False), anyio.run(_overhead, calls, True), cold_start()]
    print(json.dumps(figures, indent=2))
