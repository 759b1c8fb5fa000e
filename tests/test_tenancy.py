"""Per-request tenancy (issue 14, item 1): one HTTP server, several tenants, each request carrying its tenant's
upstream key. Real HTTP both ways: the server under uvicorn on 127.0.0.1, the sandbox over HTTP behind a recorder
of the key each upstream request carried, real MCP clients sending their tenant's headers. Without a credential:
401 naming the header, before any MCP processing; each tenant's requests reach the upstream with its own key;
tenant B never sees A's jobs (list, get, cancel, resource) nor can replay A's confirmation; no key is ever in
an answer or a log line; the LRU of tenant clients closes the ones it evicts."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS
from pydantic import SecretStr, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from systeme_mcp import tenancy
from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.runtime import Runtime, open_runtime
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.serve import running
from systeme_mcp.server import create_server
from systeme_mcp.tenancy import Credential, Tenants, tenant_id
from systeme_mcp.transport import http_app

from .helpers import ACCEPT, INIT, text
from .processes import tls

pytestmark = pytest.mark.anyio

SECRET = "tenancy_state_secret_0123456789abcdef0123"
TENANT_SECRET = "tenancy_tenant_secret_fedcba9876543210fedc"
MATON = {"a": "maton-key-of-tenant-A-0123456789", "b": "maton-key-of-tenant-B-9876543210"}
DIRECT = {"a": "direct-key-of-tenant-A-0123456789", "b": "direct-key-of-tenant-B-9876543210"}
YES: dict[str, Any] = {"confirm": types.ElicitResult(action="accept", content={"confirm": True})}


class KeyRecorder:
    """The sandbox's ASGI app, noting the credential each upstream request carried."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.keys = app, list[str]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.lower(): v.decode() for k, v in scope["headers"]}
            self.keys.append(headers.get(b"x-api-key") or headers.get(b"authorization", "").removeprefix("Bearer "))
        await self.app(scope, receive, send)


@pytest.fixture
def upstream() -> Iterator[tuple[str, KeyRecorder]]:
    sandbox = Sandbox(rate_limit=None, membership_delay=0.0, api_keys=DIRECT.values(), maton_keys=MATON.values())
    recorder = KeyRecorder(sandbox.app)
    with running(recorder) as url:
        yield url, recorder


def tenancy_settings(url: str, backend: str = "gateway", **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "tenancy": "per-request",
        "transport": "http",
        "backend": backend,
        "state_secret": SECRET,
        "tenant_secret": TENANT_SECRET,
        "store": "memory",
        "toolsets": ["all"],
        "maton_gateway_url": url,
        "maton_ctrl_url": url,
        "systeme_api_url": url,
        **overrides,
    }
    return Settings(**options)


@asynccontextmanager
async def tenant_server(
    url: str, backend: str, transport: httpx2.AsyncBaseTransport | None = None, **overrides: Any
) -> AsyncIterator[tuple[str, Runtime]]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        settings = tenancy_settings(url, backend, port=int(sock.getsockname()[1]), **overrides)
        async with open_runtime(settings, transport=transport) as runtime:
            app = http_app(create_server(runtime), settings, runtime.tenants)
            server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", runtime
                server.should_exit = True


def headers(backend: str, tenant: str) -> dict[str, str]:
    if backend == "gateway":
        return {"Authorization": f"Bearer {MATON[tenant]}"}
    return {"X-Systeme-Api-Key": DIRECT[tenant]}


async def accept(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


@asynccontextmanager
async def tenant(url: str, sent: dict[str, str], mode: str = "auto", **options: Any) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=sent, timeout=30, verify=tls()) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None, elicitation_callback=accept, **options) as client:
            yield client


@pytest.mark.parametrize(("backend", "header"), [("gateway", "Authorization"), ("direct", "X-Systeme-Api-Key")])
async def test_a_request_without_its_credential_is_401_naming_the_header(
    upstream: tuple[str, KeyRecorder], backend: str, header: str
) -> None:
    url, recorder = upstream
    async with tenant_server(url, backend) as (mcp_url, runtime), httpx2.AsyncClient(verify=tls()) as http:
        wrong = {"Authorization": "Basic abc"} if backend == "gateway" else {"Authorization": f"Bearer {MATON['a']}"}
        for sent in ({}, wrong):
            refused = await http.post(mcp_url, json=INIT, headers={**ACCEPT, **sent})
            assert refused.status_code == 401, refused.text
            challenge = refused.headers["www-authenticate"]
            assert header in challenge and challenge.split()[0] == ("Bearer" if backend == "gateway" else "ApiKey")
        assert runtime.tenants.live() == [] and recorder.keys == []  # no tenant made, nothing sent upstream
        fine = await http.post(mcp_url, json=INIT, headers={**ACCEPT, **headers(backend, "a")})
        assert fine.status_code == 200


@pytest.mark.parametrize("backend", ["gateway", "direct"])
async def test_each_tenant_reaches_the_upstream_with_its_own_key(
    upstream: tuple[str, KeyRecorder], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, recorder = upstream
    keys = MATON if backend == "gateway" else DIRECT
    async with tenant_server(url, backend) as (mcp_url, runtime):
        for name in ("a", "b", "a"):
            recorder.keys.clear()
            async with tenant(mcp_url, headers(backend, name)) as client:
                result = await client.call_tool("list_tags", {})
                assert not result.is_error, text(result)
            assert recorder.keys and set(recorder.keys) == {keys[name]}
        assert len(runtime.tenants.live()) == 2  # one client per tenant, the second visit reused it
        intruder = {"Authorization": "Bearer unknown-maton-key-0123456789"}
        if backend == "direct":
            intruder = {"X-Systeme-Api-Key": "unknown-direct-key-0123456789"}
        async with tenant(mcp_url, intruder) as client:  # a key the upstream refuses: the tool's usual 401 answer
            refused = await client.call_tool("list_tags", {})
            assert refused.is_error and "401" in text(refused), text(refused)
            assert "unknown-" not in text(refused) and "unknown-" not in str(refused.structured_content)
    for key in [*keys.values(), "unknown-maton-key-0123456789", "unknown-direct-key-0123456789", SECRET, TENANT_SECRET]:
        assert key not in caplog.text


async def test_tenants_never_see_each_others_jobs(upstream: tuple[str, KeyRecorder]) -> None:
    url, _ = upstream
    async with tenant_server(url, "direct") as (mcp_url, runtime):
        async with tenant(mcp_url, headers("direct", "a")) as a:
            started = await a.call_tool("export_contacts", {"columns": ["id", "email"]})
            job_id = (started.structured_content or {}).get("job_id")
            assert isinstance(job_id, str), text(started)
            mine = await a.call_tool("list_jobs", {})
            assert [j["job_id"] for j in (mine.structured_content or {})["items"]] == [job_id]
            assert not (await a.call_tool("get_job", {"job_id": job_id})).is_error
        async with tenant(mcp_url, headers("direct", "b")) as b:
            theirs = await b.call_tool("list_jobs", {})
            assert (theirs.structured_content or {})["items"] == []
            for tool in ("get_job", "cancel_job"):
                refused = await b.call_tool(tool, {"job_id": job_id})
                assert refused.is_error and f'no job "{job_id}"' in text(refused), text(refused)
            with pytest.raises(MCPError):
                await b.read_resource(f"systeme://jobs/{job_id}")
        job = await runtime.jobs.store.get(job_id)
        assert job is not None and job.tenant.startswith("t_") and not job.cancel_requested
        assert all(key not in repr(job.__dict__) for key in DIRECT.values())  # the store holds the id, not the key


async def test_a_tenants_write_is_never_answered_from_another_tenants(upstream: tuple[str, KeyRecorder]) -> None:
    """The repeat store (repeats.py) is per tenant: B's call identical to A's is sent, not answered from A's."""
    url, recorder = upstream
    async with tenant_server(url, "direct") as (mcp_url, _):
        outcomes = []
        for name in ("a", "a", "b"):
            recorder.keys.clear()
            async with tenant(mcp_url, headers("direct", name)) as client:
                result = await client.call_tool("create_contact", {"email": "same.call@example.com"})
            outcomes.append(((result.structured_content or {}).get("outcome"), bool(recorder.keys)))
    # A's repeat is answered from A's first call, unsent; B's is sent (the one sandbox then has the contact)
    assert outcomes[:2] == [("applied", True), ("already_applied", False)] and outcomes[2][1], outcomes


async def test_a_tenant_cannot_replay_another_tenants_confirmation(upstream: tuple[str, KeyRecorder]) -> None:
    url, _ = upstream
    async with (
        tenant_server(url, "gateway") as (mcp_url, _),
        tenant(mcp_url, headers("gateway", "a")) as a,
        tenant(mcp_url, headers("gateway", "b")) as b,
    ):
        assert a.protocol_version == "2026-07-28"
        made = await a.call_tool("create_tag", {"name": "tenancy-doomed"})
        tag_id = (made.structured_content or {})["item"]["id"]
        asked = await a.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True)
        assert isinstance(asked, types.InputRequiredResult) and asked.request_state is not None
        retry: dict[str, Any] = {"input_responses": YES, "request_state": asked.request_state}
        with pytest.raises(MCPError) as refused:  # B echoes A's sealed confirmation: bound to A, refused
            await b.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True, **retry)
        assert refused.value.error.code == INVALID_PARAMS
        assert refused.value.error.data == {"reason": "invalid_request_state"}
        done = await a.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True, **retry)
        assert isinstance(done, types.CallToolResult) and not done.is_error, done
        assert (done.structured_content or {}).get("outcome") == "applied"


def cred(key: str) -> Credential:
    return Credential(SecretStr(key))


async def test_the_lru_closes_the_clients_it_evicts() -> None:
    now = [0.0]
    made: list[SystemeClient] = []

    def make(settings: Settings, account: str, maton: str | None) -> SystemeClient:
        made.append(SystemeClient(settings))
        return made[-1]

    settings = tenancy_settings("http://127.0.0.1:9", "gateway")
    tenants = Tenants(settings, make, capacity=2, idle=60.0, clock=lambda: now[0])
    a = await tenants.enter(cred(MATON["a"]))
    tenants.release(a)
    b = await tenants.enter(cred(MATON["b"]))
    held = await tenants.enter(cred(MATON["a"]))
    assert held is a and len(made) == 2  # the same tenant, the same client
    tenants.release(b)
    c = await tenants.enter(cred("maton-key-of-tenant-C-000000000"))
    assert [t.id for t in tenants.live()] == [a.id, c.id]  # b, the least recently used one not in use, went
    assert made[1].is_closed and not made[0].is_closed and not made[2].is_closed
    assert made[0].scrub(f"x {MATON['a']} y") == "x [redacted] y" and MATON["a"] not in repr(cred(MATON["a"]))
    tenants.release(c)
    now[0] = 61.0
    d = await tenants.enter(cred("maton-key-of-tenant-D-000000000"))
    assert [t.id for t in tenants.live()] == [a.id, d.id]  # c idle too long: closed; a still held: kept
    assert made[2].is_closed and not made[0].is_closed
    await tenants.aclose()
    assert all(client.is_closed for client in made)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"transport": "stdio"}, "needs the HTTP transport"),
        ({"backend": "auto"}, "needs SYSTEME_BACKEND=gateway or direct"),
        ({"tenant_secret": None}, "needs SYSTEME_TENANT_SECRET"),
        ({"tenant_secret": "too-short-0123456789"}, "SYSTEME_TENANT_SECRET is shorter than 32 characters"),
        ({"tenant_secret": SECRET}, "SYSTEME_TENANT_SECRET must differ from every key of SYSTEME_STATE_SECRET"),
        ({"auth_token": "server-token-0123456789"}, "unset SYSTEME_AUTH_TOKEN"),
        ({"maton_api_key": "process-key-0123456789"}, "unset MATON_API_KEY"),
    ],
)
def test_per_request_tenancy_refuses_settings_it_cannot_honour(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as refused:
        tenancy_settings("http://127.0.0.1:9", **{"backend": "gateway", **overrides})
    assert "0123456789" not in str(refused.value) and "secret_0123" not in str(refused.value)


async def test_a_legacy_session_belongs_to_the_tenant_that_opened_it(upstream: tuple[str, KeyRecorder]) -> None:
    url, _ = upstream
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    async with tenant_server(url, "direct") as (mcp_url, _), httpx2.AsyncClient(verify=tls()) as http:
        opened = await http.post(mcp_url, json=INIT, headers={**ACCEPT, **headers("direct", "a")})
        session = opened.headers["mcp-session-id"]
        version = {"MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": session}
        theirs = await http.post(mcp_url, json=listing, headers={**ACCEPT, **version, **headers("direct", "b")})
        assert theirs.status_code == 404
        mine = await http.post(mcp_url, json=listing, headers={**ACCEPT, **version, **headers("direct", "a")})
        assert mine.status_code == 200 and "list_tags" in mine.text


async def test_a_session_whose_owner_was_forgotten_is_refused_to_every_tenant(
    upstream: tuple[str, KeyRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Owners are kept least recently used first out; one that was dropped fails closed, never open to all."""
    monkeypatch.setattr(tenancy, "SESSIONS_KEPT", 2)
    url, _ = upstream
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    async with tenant_server(url, "direct") as (mcp_url, _), httpx2.AsyncClient() as http:

        async def opened(who: str) -> dict[str, str]:
            answer = await http.post(mcp_url, json=INIT, headers={**ACCEPT, **headers("direct", who)})
            return {"MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": answer.headers["mcp-session-id"]}

        async def status(session: dict[str, str], who: str) -> int:
            answer = await http.post(mcp_url, json=listing, headers={**ACCEPT, **session, **headers("direct", who)})
            return answer.status_code

        old, kept = await opened("a"), await opened("a")
        await opened("b")
        assert await status(kept, "a") == 200  # used: now the most recent
        await opened("b")  # the third owner past the cap: `old`, least recently used, is forgotten
        assert await status(old, "b") == 404 and await status(old, "a") == 404
        assert await status(kept, "a") == 200 and await status(kept, "b") == 404


async def exported_job(url: str) -> str:
    """Tenant A's export, started: its job id."""
    async with tenant(url, headers("direct", "a")) as a:
        started = await a.call_tool("export_contacts", {"columns": ["id", "email"]})
        job_id = (started.structured_content or {}).get("job_id")
        assert isinstance(job_id, str), text(started)
        return job_id


async def jobs_of(url: str, name: str) -> list[str]:
    async with tenant(url, headers("direct", name)) as client:
        listed = await client.call_tool("list_jobs", {})
        return [j["job_id"] for j in (listed.structured_content or {})["items"]]


async def test_the_tenant_id_outlives_a_state_ring_rotation_and_a_new_tenant_secret_makes_new_tenants(
    upstream: tuple[str, KeyRecorder], tmp_path: Path
) -> None:
    url, _ = upstream
    store = f"sqlite://{tmp_path / 'jobs.db'}"
    async with tenant_server(url, "direct", store=store) as (mcp_url, _):
        job_id = await exported_job(mcp_url)
    rotated = f"tenancy_state_secret_NEW_0123456789abcdef,{SECRET}"  # NEW seals, the old one still opens
    async with tenant_server(url, "direct", store=store, state_secret=rotated) as (mcp_url, _):
        assert await jobs_of(mcp_url, "a") == [job_id]  # the same tenant: its job is still its own
        assert await jobs_of(mcp_url, "b") == []
    other = "tenancy_tenant_secret_OTHER_0123456789abcdef"
    async with tenant_server(url, "direct", store=store, tenant_secret=other) as (mcp_url, _):
        assert await jobs_of(mcp_url, "a") == []  # another tenant secret: every tenant is new
    ids = {tenant_id(key, "direct", cred(DIRECT["a"])) for key in (TENANT_SECRET, other)}
    assert len(ids) == 2 and all(i.startswith("t_") for i in ids)
