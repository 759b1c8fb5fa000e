"""Test helpers: raw access to the sandbox's HTTP API (independent of the tool declarations) and result
accessors."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import uvicorn
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

from systeme_mcp.runtime import Runtime
from systeme_mcp.server import create_server
from systeme_mcp.transport import http_app

from .processes import tls


class RawApi:
    """Talks to the sandbox like a plain HTTP client would, to set up and check state."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.http = httpx2.AsyncClient(
            transport=sandbox.transport(), base_url=sandbox.base_url, headers={"X-API-Key": "test-key"}
        )

    async def get(self, path: str, **query: Any) -> Any:
        answer = await self.http.get(path, params={k: v for k, v in query.items() if v is not None})
        return answer.json() if answer.content else None

    async def status(self, path: str) -> int:
        return (await self.http.get(path)).status_code

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = await self.http.post(path, json=body)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    async def ctrl(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = await self.http.request(
            method, path, json=body, headers={"Authorization": "Bearer test-maton-key", "X-API-Key": ""}
        )
        return answer.json() if answer.content else None

    async def first_id(self, path: str, **query: Any) -> Any:
        page = await self.get(path, **query)
        return page["items"][0]["id"]

    async def all_items(self, path: str, **query: Any) -> list[Any]:
        items: list[Any] = []
        cursor = None
        while True:
            page = await self.get(path, limit=100, startingAfter=cursor, **query)
            items += page["items"]
            if not page["hasMore"]:
                return items
            cursor = page["items"][-1]["id"]

    async def contact_with_subscription(self, *, status: str = "active") -> tuple[int, int]:
        """(contact id, subscription id) of some contact that has a subscription in `status`."""
        for contact in await self.all_items("/api/contacts", order="asc"):
            page = await self.get("/api/payment/subscriptions", contact=contact["id"])
            for sub in page.get("items", []):
                if sub["status"] == status and not sub.get("cancelledAt"):
                    return contact["id"], sub["id"]
        raise AssertionError("seed has no contact with an active subscription")

    async def aclose(self) -> None:
        await self.http.aclose()


class VirtualClock:
    """A clock for `SystemeClient(sleep=clock.sleep, clock=clock)` (and a Sandbox's `clock`): it moves only when
    `sleep` is awaited, so backoff, Retry-After and pacing waits take no wall-clock time."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = self.start = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()  # still a cancellation point, and other tasks get to run


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def requests_seen(sandbox: Any) -> int:
    return len(sandbox.requests)


async def ok(mcp: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call `tool`; it must succeed with structured content, which is returned."""
    result = await mcp.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


Case = Callable[[Any, "RawApi"], Awaitable[None]]


class Cases(dict[str, Case]):
    """Per-tool test cases by tool name; `@cases.register("tool")` adds one."""

    def register(self, name: str) -> Callable[[Case], Case]:
        def add(fn: Case) -> Case:
            self[name] = fn
            return fn

        return add


def hints(tool: types.Tool) -> dict[str, bool]:
    """A tool's behaviour hints as the MCP spec reads them: a left-out hint takes its default (readOnlyHint false,
    destructiveHint true, idempotentHint false, openWorldHint true), and a read-only tool is neither destructive
    nor anything but idempotent (the spec: those two mean something only for a tool that is not read-only)."""
    a = tool.annotations or types.ToolAnnotations()
    read_only = a.read_only_hint is True
    return {
        "read_only": read_only,
        "destructive": not read_only and a.destructive_hint is not False,
        "idempotent": read_only or a.idempotent_hint is True,
        "open_world": a.open_world_hint is not False,
    }


# a 2025-11-25 initialize over Streamable HTTP, for tests that talk to the HTTP transport by hand
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@asynccontextmanager
async def serving_http(runtime: Runtime) -> AsyncIterator[str]:
    """The server over `runtime` on Streamable HTTP at 127.0.0.1 (a free port), as in production; its URL."""
    # bound and listening before uvicorn starts: early connections wait in the backlog, no readiness polling
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = int(sock.getsockname()[1])
        app = http_app(create_server(runtime), runtime.settings.model_copy(update={"port": port}))
        server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            yield f"http://127.0.0.1:{port}/mcp"
            server.should_exit = True


@asynccontextmanager
async def session(runtime: Runtime, era: str, transport: str, **options: Any) -> AsyncIterator[Client]:
    """A client session on the server over `transport`: in memory, or Streamable HTTP on 127.0.0.1."""
    mode = "legacy" if era == "legacy" else "auto"
    if transport == "memory":
        async with Client(create_server(runtime), mode=mode, **options) as client:
            yield client
        return
    async with (
        serving_http(runtime) as url,
        http_client() as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client


def http_client() -> httpx2.AsyncClient:
    """The HTTP client `Client(url)` would make (the SDK's timeouts), on the suite's SSL context (`tls`)."""
    return httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=300.0), verify=tls())


class Gate(httpx2.AsyncBaseTransport):
    """Holds the requests `match` selects until opened; counts those held and those let through."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, match: Callable[[httpx2.Request], bool]) -> None:
        self.inner, self.match = inner, match
        self.opened = anyio.Event()
        self.held = 0
        self.arrived = anyio.Event()  # set when `expect` requests are held
        self.expect = 1

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.match(request) and not self.opened.is_set():
            self.held += 1
            if self.held >= self.expect:
                self.arrived.set()
            await self.opened.wait()
        return await self.inner.handle_async_request(request)


# ---------------------------------------------------------------- a server in another process, the sandbox over HTTP
async def job_state(client: Client, job_id: str) -> dict[str, Any]:
    """get_job's structured answer."""
    result = await client.call_tool("get_job", {"job_id": job_id})
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


async def wait_for(client: Client, job_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """get_job until `done` holds (another process runs the job: there is no event to wait on)."""
    with anyio.fail_after(60):
        while True:
            state = await job_state(client, job_id)
            if done(state):
                return state
            await anyio.sleep(0.02)


async def running_job(client: Client) -> str:
    """The id of the one running job, once there is one (list_jobs until it shows)."""
    with anyio.fail_after(30):
        while True:
            listed = (await client.call_tool("list_jobs", {"status": "running"})).structured_content or {}
            if listed.get("items"):
                (job,) = listed["items"]
                return str(job["job_id"])
            await anyio.sleep(0.02)


async def sandbox_log(sandbox_url: str) -> list[dict[str, Any]]:
    """The request log of a sandbox served over HTTP (`RequestRecord.as_json` rows, oldest first)."""
    async with httpx2.AsyncClient(verify=tls()) as http:
        return list((await http.get(f"{sandbox_url}/__sandbox/requests")).json()["items"])


async def tag_writes(sandbox_url: str) -> Counter[str]:
    """Successful POSTs per /api/contacts/… path (tagging a contact is one), from the sandbox's log."""
    log = await sandbox_log(sandbox_url)
    return Counter(
        r["path"]
        for r in log
        if r["method"] == "POST" and r["path"].startswith("/api/contacts/") and 200 <= (r["status"] or 0) < 300
    )
