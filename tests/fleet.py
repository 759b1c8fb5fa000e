"""A fleet for tests and benchmarks (issue 14): the sandbox over HTTP and N server replicas, each a process of
its own on 127.0.0.1, sharing one Redis store and one SYSTEME_STATE_SECRET, and MCP clients behind a load
balancer that lives in the client (`Router`, an httpx2 transport): every HTTP request goes to the next live
replica in turn, or — with `affinity` — a request naming a Mcp-Session-Id goes to the replica that issued it
(what HAProxy's `stick store-response res.hdr(mcp-session-id)` does). A replica that drops a request (killed
under it) is answered 502, as a load balancer would.

Faults: the sandbox's admin API (`admin("POST", "/faults", plan)`, `/ratelimit`, `/requests`); replicas are
killed (SIGKILL, no clean shutdown) and started again by index (`kill`, `start`, `revive`)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

from .processes import clean_env, free_port, process, ready, spawn, stop, tls

KEYS = ("fleet-key-of-tenant-A-0123456789", "fleet-key-of-tenant-B-9876543210")  # the sandbox accepts these
SECRET = "fleet_state_secret_0123456789abcdef0123456789"
TENANT_SECRET = "fleet_tenant_secret_0123456789abcdef012345678"


ACCEPTED = types.ElicitResult(action="accept", content={"confirm": True})
YES: dict[str, Any] = {"confirm": ACCEPTED}  # a confirmation's input_responses (2026-07-28)


async def accept(context: Any, params: Any) -> types.ElicitResult:
    """The user says yes to every confirmation (2025-11-25 elicitation, or 2026-07-28 input requests)."""
    return ACCEPTED


@dataclass
class Replica:
    """One server process and its port (kept across restarts, as a load balancer's backend address is)."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@dataclass
class Hop:
    """One HTTP request the router sent: to which replica, what it was, and the answer's status (None until
    its head arrives, or if it never does)."""

    replica: int
    method: str  # the HTTP method
    mcp_method: str | None  # the Mcp-Method header (2026-07-28 requests carry it)
    session: str | None  # the Mcp-Session-Id it named (2025-11-25)
    status: int | None = None


class Router(httpx2.AsyncBaseTransport):
    """The client's load balancer over `fleet` (see the module doc). `aim(i)` makes replica i the next one;
    `served` lists every request sent."""

    def __init__(self, fleet: Fleet, *, affinity: bool = False) -> None:
        self.fleet, self.affinity = fleet, affinity
        self.inner = httpx2.AsyncHTTPTransport(verify=tls())
        self.pinned: dict[str, int] = {}  # session id → the replica that issued it
        self.served: list[Hop] = []
        self._turn = 0

    def aim(self, index: int) -> None:
        self._turn = index

    def _next(self) -> int:
        replicas = self.fleet.replicas
        for step in range(len(replicas)):
            index = (self._turn + step) % len(replicas)
            if replicas[index].alive:
                self._turn = index + 1
                return index
        raise httpx2.ConnectError("no replica of the fleet is alive")

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = request.headers.get("mcp-session-id")
        index = self.pinned.get(session or "") if self.affinity else None
        if index is None or not self.fleet.replicas[index].alive:
            index = self._next()
        port = self.fleet.replicas[index].port
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        hop = Hop(index, request.method, request.headers.get("mcp-method"), session)
        self.served.append(hop)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx2.TransportError:  # the replica died under the request: a load balancer answers 502
            response = httpx2.Response(502, request=request, text="the replica did not answer")
        hop.status = response.status_code
        issued = response.headers.get("mcp-session-id")
        if self.affinity and issued:
            self.pinned[issued] = index
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Fleet:
    """The running fleet (made by `open_fleet`)."""

    sandbox_url: str
    env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)
    sandbox: subprocess.Popen[bytes] | None = None

    def pids(self) -> list[int]:
        """The running processes: the sandbox and every live replica."""
        procs = [self.sandbox, *(r.proc for r in self.replicas if r.alive)]
        return [proc.pid for proc in procs if proc is not None]

    def spawn(self, index: int) -> None:
        replica = self.replicas[index]
        replica.proc = spawn(["--transport", "http", "--port", str(replica.port)], self.env)

    async def start(self, index: int) -> None:
        """Start replica `index` (again) on its port; returns once it serves."""
        self.spawn(index)
        await self.ready(index)

    async def ready(self, index: int) -> None:
        replica = self.replicas[index]
        await ready(replica.url, replica.proc)

    def kill(self, index: int) -> None:
        """SIGKILL replica `index` (its leases are left to expire) and reap it."""
        proc = self.replicas[index].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    async def revive(self) -> None:
        """Start every replica that is not running."""
        async with anyio.create_task_group() as tg:
            for index, replica in enumerate(self.replicas):
                if not replica.alive:
                    tg.start_soon(self.start, index)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.proc is not None:
                stop(replica.proc)

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        """The sandbox's admin API (`/__sandbox` + path): faults, rate limit, request log."""
        async with httpx2.AsyncClient(base_url=f"{self.sandbox_url}/__sandbox", verify=tls()) as http:
            answer = await http.request(method, path, json=body)
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else None

    def api(self, key: str = KEYS[0]) -> httpx2.AsyncClient:
        """The sandbox's API as a plain client (with tenant `key`'s credential), to set up and check state."""
        return httpx2.AsyncClient(base_url=self.sandbox_url, headers={"X-API-Key": key}, timeout=30, verify=tls())

    @asynccontextmanager
    async def client(
        self, router: Router | None = None, *, headers: dict[str, str] | None = None, **options: Any
    ) -> AsyncIterator[Client]:
        """An MCP client session over `router` (a round-robin one by default) that accepts every confirmation;
        `options` go to `mcp.Client` (`mode="legacy"` for 2025-11-25)."""
        router = router or Router(self)
        async with httpx2.AsyncClient(transport=router, headers=headers, timeout=30) as http:
            transport = streamable_http_client(self.replicas[0].url, http_client=http)
            options = {"cache": None, "elicitation_callback": accept, **options}
            async with Client(transport, **options) as client:
                yield client


def budget_use(log: list[dict[str, Any]], capacity: int, rate: float) -> tuple[int, float]:
    """Of these upstream requests (sandbox log rows) against a bucket of `capacity` + `rate`/s: (the 429s, the
    fraction of the allowed rate used: accepted ÷ (capacity + rate x the span from the first to the last))."""
    accepted = sorted(r["at"] for r in log if r["status"] != 429)
    span = accepted[-1] - accepted[0] if accepted else 0.0
    return sum(r["status"] == 429 for r in log), len(accepted) / (capacity + rate * span)


@asynccontextmanager
async def open_fleet(
    store: str, replicas: int = 3, *, tenancy: bool = False, sandbox: tuple[str, ...] = (), **settings: str
) -> AsyncIterator[Fleet]:
    """The sandbox (rate limit off; `sandbox`: more of its CLI flags) and `replicas` servers on the direct
    backend, sharing the Redis `store`; single-tenant on KEYS[0], or per-request (each client sends its key).
    `settings`: more SYSTEME_* variables for the servers (a job lease of 1 s unless given). Everything is
    stopped when the block ends."""
    port = free_port()
    keys = [arg for key in KEYS for arg in ("--api-key", key)]
    args = ["sandbox", "--port", str(port), "--rate-limit", "off", *keys, *sandbox]
    defaults = {"SYSTEME_JOB_LEASE": "1", "SYSTEME_TOOLSETS": "default,bulk"}
    env = clean_env(
        SYSTEME_BACKEND="direct",
        SYSTEME_API_URL=f"http://127.0.0.1:{port}",
        SYSTEME_STORE=store,
        SYSTEME_STATE_SECRET=SECRET,
        **(
            {"SYSTEME_TENANCY": "per-request", "SYSTEME_TENANT_SECRET": TENANT_SECRET}
            if tenancy
            else {"SYSTEME_API_KEY": KEYS[0]}
        ),
        **{**defaults, **settings},
    )
    fleet = Fleet(f"http://127.0.0.1:{port}", env, [Replica(free_port()) for _ in range(replicas)])
    async with AsyncExitStack() as stack:
        fleet.sandbox = stack.enter_context(process(args, clean_env()))
        stack.callback(fleet.stop)
        for index in range(replicas):
            fleet.spawn(index)
        await ready(fleet.sandbox_url, fleet.sandbox)
        async with anyio.create_task_group() as tg:
            for index in range(replicas):
                tg.start_soon(fleet.ready, index)
        yield fleet
