"""Our server's overhead over a bare low-level SDK server, per transport, in one run.

For each transport — in-memory (`mcp.Client(server)`), stdio (a subprocess), Streamable HTTP in the 2026-07-28
era and in the 2025-11-25 era (uvicorn on a free 127.0.0.1 port) — and 1, 4 and 16 concurrent clients: per-call
latency p50/p99 and throughput (calls/s) of `get_tag(tag_id=1)` on four servers (overhead_servers.py):
- bare: a low-level SDK `Server` with one trivial tool answering a constant (no output schema);
- floor: a low-level SDK `Server` whose one tool GETs the tag through httpx2 from the same MockTransport as
  mock and answers it (text + structured content, output schema): the least any server of an HTTP API does;
- ours: create_server over the embedded sandbox (toolsets all; the sandbox's rate limit off);
- mock: create_server, backend direct, its upstream an httpx2.MockTransport answering a constant tag at once —
  the server's own cost, without the sandbox's work.
Rounds of each server alternate (bare/floor/ours/mock, the order rotating each round) after warm-up calls that are
discarded, so drift on a noisy machine spreads evenly. A client is a session of its own (in-memory and HTTP: 16
clients are 16 sessions); stdio serves one client per process, so there the clients are concurrent callers
sharing one stdio session. Client and server share one process in-memory; over stdio and HTTP the server is
a process of its own (the client side, identical for every server, runs here).
Also the server process's CPU per call over stdio and HTTP (from /proc, Linux): the client is Python too and
shares the 2 cores, so at 16 clients the calls/s of both servers are partly client-bound.
Cold start: spawn → the first tools/list answer over stdio, bare (overhead_servers.py) vs ours (the real CLI,
`python -m systeme_mcp.cli --toolsets all`: with no key, the embedded sandbox; with a dummy key, the direct
backend, never called); the median of 5, interleaved, after a warm-up round (OS file cache, bytecode).
Every connection is to 127.0.0.1 (or in-process); the mock upstream is never dialled.
Targets (issue 12, item 5): ours ≤ 1.10x bare per call (p50), 16 HTTP clients ≥ 0.9x bare's calls/s, cold
start ≤ 1.1x; the same per-call and throughput targets are checked for mock ÷ floor (the project's own cost over
the least an API-reading tool costs), and floor ÷ bare shows what reading an API costs at all.

Run: python benchmarks/overhead.py [--rounds N] [--round-seconds S]   (defaults: about 3 minutes in all)
     python benchmarks/overhead.py --profile [--calls N]   (cProfile of the in-memory case, top 15 entries)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from overhead_servers import ARGUMENTS, DUMMY_KEY, TOOL, VARIANTS, Variant, open_server

HERE = Path(__file__).resolve().parent
SITE_PACKAGES = str(Path(anyio.__file__).resolve().parent.parent)
SERVERS = HERE / "overhead_servers.py"
HOST = "127.0.0.1"
LEVELS = (1, 4, 16)
MODERN, LEGACY = "2026-07-28", "2025-11-25"
TRANSPORTS = ("in-memory", "stdio", f"HTTP {MODERN}", f"HTTP {LEGACY}")
WARM_CALLS = 15  # per client and level, discarded
COLD_RUNS = 5
PER_CALL, HTTP_THROUGHPUT, COLD_START = 1.10, 0.90, 1.10  # the targets
COMPARED: tuple[tuple[Variant, Variant, str], ...] = (  # (measured, baseline, title)
    ("ours", "bare", "ours = create_server over the embedded sandbox (its work included) ÷ bare"),
    ("mock", "bare", "ours = create_server, upstream an httpx2.MockTransport answering at once ÷ bare"),
    ("floor", "bare", "floor (an SDK tool that GETs the tag with httpx2, same MockTransport) ÷ bare"),
    ("mock", "floor", "ours (mock) ÷ floor: what the project adds to the least an API-reading tool does"),
)


def _environment() -> dict[str, str]:
    """This environment without credentials or settings that would change the servers' backend, and without
    PYTHONDONTWRITEBYTECODE: an installed package has its bytecode compiled (pip does it at install, as it did
    for the SDK's), while an editable checkout under that variable recompiles every module at each start —
    ~180 ms of a cold start that no installed server pays. The warm-up round writes the bytecode."""
    drop = ("SYSTEME_", "MATON_", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


# ---------------------------------------------------------------------------------------------- measurements
@dataclass
class Cell:
    """One server at one transport and level: every measured call's latency, and the rounds' wall time."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float | None = None  # CPU seconds of the server process in the rounds (stdio, HTTP)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else float("nan")

    @property
    def cpu_per_call(self) -> float:
        return self.server_cpu / len(self.latencies) if self.server_cpu is not None and self.latencies else float("nan")


Results = dict[tuple[str, int, Variant], Cell]


@dataclass
class Pool:
    """The sessions one server is measured through (several clients, or one shared by every caller)."""

    clients: list[Client]
    protocol: str
    pid: int | None  # the server's process, when it has one of its own


async def _call(client: Client) -> None:
    result = await client.call_tool(TOOL, ARGUMENTS)
    if result.is_error:
        raise RuntimeError(f"{TOOL} failed: {result.content}")


async def _round(pool: Pool, callers: int, seconds: float, cell: Cell | None) -> None:
    """`callers` loops calling the tool until `seconds` have passed; recorded into `cell` (None: warm-up)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller(client: Client) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await _call(client)
            latencies.append(time.perf_counter() - t0)

    cpu = _cpu_seconds(pool.pid)
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(callers):
            tg.start_soon(caller, pool.clients[i % len(pool.clients)])
    if cell is not None:
        cell.seconds += time.perf_counter() - start
        cell.latencies += latencies
        after = _cpu_seconds(pool.pid)
        if cpu is not None and after is not None:
            cell.server_cpu = (cell.server_cpu or 0.0) + after - cpu


async def _warm(pool: Pool, callers: int) -> None:
    async def caller(client: Client) -> None:
        for _ in range(WARM_CALLS):
            await _call(client)

    async with anyio.create_task_group() as tg:
        for i in range(callers):
            tg.start_soon(caller, pool.clients[i % len(pool.clients)])


@dataclass
class Servers:
    """What the clients connect to: in-process servers (open for the run) and HTTP ports (subprocesses)."""

    inproc: dict[Variant, Any]
    http: dict[Variant, tuple[int, int]]  # port, pid


def _client(transport: str, variant: Variant, servers: Servers) -> Client:
    if transport == "in-memory":
        return Client(servers.inproc[variant])
    if transport == "stdio":
        params = StdioServerParameters(
            command=sys.executable, args=[str(SERVERS), "stdio", variant], env=_environment(), cwd=HERE.parent
        )
        return Client(stdio_client(params, errlog=sys.stderr))
    url = f"http://{HOST}:{servers.http[variant][0]}/mcp"
    return Client(url, mode="auto" if transport.endswith(MODERN) else "legacy")


async def _pool(stack: AsyncExitStack, transport: str, variant: Variant, count: int, servers: Servers) -> Pool:
    clients: list[Client] = []
    for _ in range(count):
        client = await stack.enter_async_context(_client(transport, variant, servers))
        tools = await client.list_tools()
        if TOOL not in {t.name for t in tools.tools}:
            raise RuntimeError(f"{variant} over {transport} does not list {TOOL}")
        expected = transport.split()[-1] if transport.startswith("HTTP") else client.protocol_version
        if client.protocol_version != expected:
            raise RuntimeError(f"{variant} over {transport} negotiated {client.protocol_version}")
        clients.append(client)
    if transport == "stdio":
        pid = _child_pid([str(SERVERS), "stdio", variant])
    else:
        pid = servers.http[variant][1] if transport.startswith("HTTP") else None
    return Pool(clients, clients[0].protocol_version, pid)


async def measure(servers: Servers, rounds: int, seconds: float, results: Results, protocols: dict[str, str]) -> None:
    """Every transport x level x server, the servers' rounds interleaved (rotating order)."""
    for transport in TRANSPORTS:
        shared = transport == "stdio"  # one process serves one client: callers share its session
        async with AsyncExitStack() as kept:
            fixed = {v: await _pool(kept, transport, v, 1, servers) for v in VARIANTS} if shared else None
            for level in LEVELS:
                async with AsyncExitStack() as stack:
                    pools = fixed or {v: await _pool(stack, transport, v, level, servers) for v in VARIANTS}
                    protocols[transport] = pools["bare"].protocol
                    for variant in VARIANTS:
                        await _warm(pools[variant], level)
                    for r in range(rounds):
                        turn = r % len(VARIANTS)
                        for variant in VARIANTS[turn:] + VARIANTS[:turn]:
                            cell = results.setdefault((transport, level, variant), Cell())
                            await _round(pools[variant], level, seconds, cell)
                print(f"  {transport}, {level} client(s): done", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- subprocesses
def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process `pid` so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pid(args: list[str]) -> int | None:
    """The pid of this process's child whose command line ends with `args` (Linux /proc), or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and command[-len(args) :] == args:
            return int(entry.name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no server listening on {HOST}:{port} after {timeout:g} s")


@contextmanager
def http_servers() -> Iterator[dict[Variant, tuple[int, int]]]:
    """One uvicorn process per server on a free loopback port; both eras are served by the same process."""
    ports = {v: _free_port() for v in VARIANTS}
    procs = {
        v: subprocess.Popen(
            [sys.executable, str(SERVERS), "http", v, str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
            env=_environment(),
            cwd=HERE.parent,
        )
        for v, port in ports.items()
    }
    try:
        for v, proc in procs.items():
            _wait_listening(ports[v], proc)
        yield {v: (ports[v], procs[v].pid) for v in VARIANTS}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _first_tools_list(command: Sequence[str], env: dict[str, str]) -> float:
    """Seconds from spawning `command` to its answer to tools/list (after the 2025-11-25 handshake)."""
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=HERE.parent,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(line) + "\n" for line in lines))
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{command} closed stdout before answering tools/list")
            message = json.loads(line)
            if message.get("id") == 2:
                elapsed = time.perf_counter() - t0
                if "result" not in message:
                    raise RuntimeError(f"tools/list failed: {line}")
                return elapsed
    finally:
        proc.kill()
        proc.wait()


COLD = {  # name: command, extra environment
    "bare": ([sys.executable, str(SERVERS), "stdio", "bare"], {}),
    "ours": ([sys.executable, "-m", "systeme_mcp.cli", "--toolsets", "all"], {}),  # no key: the embedded sandbox
    "ours, direct backend": (  # a key: no sandbox is built (the API is never called for tools/list)
        [sys.executable, "-m", "systeme_mcp.cli", "--toolsets", "all"],
        {"SYSTEME_API_KEY": DUMMY_KEY, "SYSTEME_API_URL": "http://127.0.0.1:9"},
    ),
}


def cold_start(runs: int = COLD_RUNS) -> dict[str, float]:
    """Median seconds to the first tools/list answer over stdio per server, interleaved (order rotating)."""
    times: dict[str, list[float]] = {name: [] for name in COLD}
    names = list(COLD)
    for i in range(runs + 1):  # the first round only warms the OS file cache
        for name in names[i % len(names) :] + names[: i % len(names)]:
            command, extra = COLD[name]
            elapsed = _first_tools_list(command, _environment() | extra)
            if i:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


# ---------------------------------------------------------------------------------------------- report
def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def table(results: Results, protocols: dict[str, str], ours: Variant, base: Variant) -> list[str]:
    lines = [
        f"| transport | clients | {base} p50/p99 (ms) | {ours} p50/p99 (ms) | ratio p50 "
        f"| {base} calls/s | {ours} calls/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for transport in TRANSPORTS:
        label = transport if transport.startswith("HTTP") else f"{transport} ({protocols.get(transport, '?')})"
        for level in LEVELS:
            bare, mine = results[(transport, level, base)], results[(transport, level, ours)]
            lines.append(
                f"| {label} | {level} | {_ms(bare.quantile(0.5))}/{_ms(bare.quantile(0.99))} "
                f"| {_ms(mine.quantile(0.5))}/{_ms(mine.quantile(0.99))} "
                f"| {mine.quantile(0.5) / bare.quantile(0.5):.2f} | {bare.rate:,.0f} | {mine.rate:,.0f} "
                f"| {mine.rate / bare.rate:.2f} |"
            )
    return lines


def misses(results: Results, ours: Variant, base: Variant) -> list[str]:
    found = []
    for transport in TRANSPORTS:
        for level in LEVELS:
            bare, mine = results[(transport, level, base)], results[(transport, level, ours)]
            p50 = mine.quantile(0.5) / bare.quantile(0.5)
            p99 = mine.quantile(0.99) / bare.quantile(0.99)
            rate = mine.rate / bare.rate
            if p50 > PER_CALL:
                found.append(f"{transport}, {level} client(s): p50 {p50:.2f}x {base} (target ≤ {PER_CALL:.2f}x)")
            if p99 > PER_CALL:
                found.append(f"{transport}, {level} client(s): p99 {p99:.2f}x {base} (informative)")
            if transport.startswith("HTTP") and level == 16 and rate < HTTP_THROUGHPUT:
                target = f"target ≥ {HTTP_THROUGHPUT:.2f}x"
                found.append(f"{transport}, 16 clients: {rate:.2f}x {base}'s calls/s ({target})")
    return found


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def cpu_table(results: Results) -> list[str]:
    lines = [
        "| transport | clients | bare (µs) | floor (µs) | ours (µs) | ours ÷ bare | mock (µs) | mock ÷ bare "
        "| mock ÷ floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for transport in TRANSPORTS[1:]:
        for level in LEVELS:
            cpu = {v: results[(transport, level, v)].cpu_per_call * 1e6 for v in VARIANTS}
            bare, floor, ours, mock = cpu["bare"], cpu["floor"], cpu["ours"], cpu["mock"]
            ratios = f"{ours:.0f} | {_ratio(ours, bare)} | {mock:.0f} | {_ratio(mock, bare)} | {_ratio(mock, floor)}"
            lines.append(f"| {transport} | {level} | {bare:.0f} | {floor:.0f} | {ratios} |")
    return lines


def report(results: Results, protocols: dict[str, str], cold: dict[str, float], calls_note: str) -> None:
    for ours, base, title in COMPARED:
        print(f"\n### get_tag(tag_id=1): {title}\n")
        print("\n".join(table(results, protocols, ours, base)))
    print("\n### Server process CPU per call (user + system, /proc; the client side excluded)\n")
    print("\n".join(cpu_table(results)))
    print("\n### Cold start over stdio (spawn → first tools/list answer, median of 5)\n")
    print("| server | seconds | ÷ bare |\n|---|---:|---:|")
    for name, seconds in cold.items():
        print(f"| {name} | {seconds:.3f} | {seconds / cold['bare']:.2f} |")
    print(f"\n{calls_note}")
    for ours, base, _ in COMPARED:
        found = misses(results, ours, base)
        for name in ("ours", "ours, direct backend"):
            ratio = cold[name] / cold["bare"]
            if ours == "ours" and ratio > COLD_START:
                found.append(f"cold start ({name}) {ratio:.2f}x bare (target ≤ {COLD_START:.2f}x)")
        missed = "".join(f"\n- {m}" for m in found) if found else " none"
        print(f"\nTargets missed ({ours} ÷ {base}):{missed}")


async def _run(rounds: int, seconds: float, http: dict[Variant, tuple[int, int]]) -> tuple[Results, dict[str, str]]:
    results: Results = {}
    protocols: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        inproc = {v: await stack.enter_async_context(open_server(v)) for v in VARIANTS}
        await measure(Servers(inproc, http), rounds, seconds, results, protocols)
    return results, protocols


# ---------------------------------------------------------------------------------------------- profile
async def _split(variant: Variant, calls: int) -> tuple[float, float]:
    """Median µs of a whole in-memory call and of the tools/call handler inside it (no profiler)."""
    async with open_server(variant) as server:
        entry = server.get_request_handler("tools/call")
        assert entry is not None
        inner, handler_times = entry.handler, []

        async def timed(ctx: Any, params: types.CallToolRequestParams) -> Any:
            t0 = time.perf_counter()
            try:
                return await inner(ctx, params)
            finally:
                handler_times.append(time.perf_counter() - t0)

        server.add_request_handler("tools/call", types.CallToolRequestParams, timed)
        async with Client(server) as client:
            await client.list_tools()
            call_times = []
            for _ in range(calls + WARM_CALLS * 10):
                t0 = time.perf_counter()
                await _call(client)
                call_times.append(time.perf_counter() - t0)
    skip = WARM_CALLS * 10
    return statistics.median(call_times[skip:]) * 1e6, statistics.median(handler_times[skip:]) * 1e6


async def _profiled(variant: Variant, calls: int) -> cProfile.Profile:
    async with open_server(variant) as server, Client(server) as client:
        await client.list_tools()
        for _ in range(WARM_CALLS * 10):
            await _call(client)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(calls):
            await _call(client)
        profile.disable()
    return profile


def _top(profile: cProfile.Profile, pattern: str, title: str) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(pattern, 15)
    text = out.getvalue().replace(SITE_PACKAGES + os.sep, "").replace(str(HERE.parent) + os.sep, "")
    print(f"\n{title}\n\n```\n{text.strip()}\n```")


def profile(calls: int) -> None:
    """Where an in-memory call's time goes: the handler's share of a call (unprofiled medians), then the top 15
    cumulative cProfile entries of systeme_mcp and the SDK (mcp, mcp_types) per server. ncalls count coroutine
    resumptions too (an awaited coroutine that suspends once counts twice)."""
    print("| server | whole call (µs) | tools/call handler (µs) | SDK + client around it (µs) |\n|---|---:|---:|---:|")
    for variant in VARIANTS:
        whole, handler = anyio.run(_split, variant, calls)
        print(f"| {variant} | {whole:.0f} | {handler:.0f} | {whole - handler:.0f} |")
    for variant in VARIANTS:
        prof = anyio.run(_profiled, variant, calls)
        _top(prof, r"systeme_mcp|site-packages/mcp/|site-packages/mcp_types/", f"#### {variant}: systeme_mcp + SDK")
        if variant != "bare":
            _top(prof, r"systeme_mcp", f"#### {variant}: systeme_mcp only")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per server, transport and level")
    parser.add_argument("--round-seconds", type=float, default=0.75, help="length of one round")
    parser.add_argument("--profile", action="store_true", help="profile the in-memory case instead")
    parser.add_argument("--calls", type=int, default=2000, help="calls per server when profiling")
    args = parser.parse_args()
    if args.profile:
        profile(args.calls)
        return 0
    started = time.perf_counter()
    cold = cold_start()
    with http_servers() as http:
        results, protocols = anyio.run(_run, args.rounds, args.round_seconds, http)
    calls = sum(len(c.latencies) for c in results.values())
    note = (
        f"{calls:,} measured calls in {args.rounds} rounds of {args.round_seconds:g} s per server, transport and "
        f"level; {time.perf_counter() - started:.0f} s in all. Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs."
    )
    report(results, protocols, cold, note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
