"""Two tenants on a fleet (issue 14): 2 replicas with SYSTEME_TENANCY=per-request + 1 Redis + the sandbox over HTTP,
each client sending its own X-Systeme-Api-Key through a round-robin router (tests/fleet.py). Tenant B cannot list,
get, cancel or read tenant A's job from any replica while it runs (A's job finishes, not cancelled), nor open A's
confirmation on another replica; each tenant's requests reach the sandbox with its own key: a key the sandbox
refuses fails on every replica, never borrowing another tenant's. (The sandbox keeps one account for all its
keys: what is isolated here is the server's per-tenant state, not the data.)"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, types
from mcp.types import INVALID_PARAMS

from .fleet import KEYS, YES, Fleet, Router, open_fleet
from .helpers import running_job, text, wait_for

pytestmark = pytest.mark.anyio  # the module runs on one worker (conftest: pytest_xdist_make_scheduler)
REPLICAS = 2
A, B = ({"X-Systeme-Api-Key": key} for key in KEYS)


@pytest.fixture(scope="module")
async def fleet(redis_server: str) -> AsyncIterator[Fleet]:
    store = f"{redis_server}?namespace=fleet-tenants-{secrets.token_hex(4)}"
    async with open_fleet(store, REPLICAS, tenancy=True) as made:
        yield made


async def on_each_replica(router: Router, client: Client, tool: str, **arguments: Any) -> list[types.CallToolResult]:
    """`tool` called once through each replica."""
    answers = []
    for replica in range(REPLICAS):
        router.aim(replica)
        answers.append(await client.call_tool(tool, arguments))
    return answers


async def test_tenant_b_never_reaches_tenant_as_running_job_from_any_replica(fleet: Fleet) -> None:
    contacts = 40
    await fleet.admin("POST", "/ratelimit", {"capacity": 10, "refillPerSecond": 10})  # the job runs for seconds
    async with fleet.api() as api:
        tag_id = (await api.post("/api/tags", json={"name": "tenant-a-job"})).json()["id"]
        ids = [c["id"] for c in (await api.get("/api/contacts", params={"limit": contacts})).json()["items"]]
    arguments = {"contact_ids": ids, "tag_id": tag_id, "dry_run": False}
    b_router = Router(fleet)
    async with (
        fleet.client(headers=A) as starter,
        fleet.client(headers=A) as a,
        fleet.client(b_router, headers=B) as b,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(starter.call_tool, "bulk_add_tag", arguments)
        job_id = await running_job(a)
        for listing in await on_each_replica(b_router, b, "list_jobs"):
            assert (listing.structured_content or {})["items"] == [], text(listing)
        for tool in ("get_job", "cancel_job"):
            for refused in await on_each_replica(b_router, b, tool, job_id=job_id):
                assert refused.is_error and job_id in text(refused), text(refused)  # no such job, for B
        for replica in range(REPLICAS):
            b_router.aim(replica)
            with pytest.raises(MCPError):
                await b.read_resource(f"systeme://jobs/{job_id}")
        running = await wait_for(a, job_id, lambda state: True)
        finished = await wait_for(a, job_id, lambda state: state["status"] != "running")
    assert running["status"] == "running", running  # B's attempts were made while it ran
    assert finished["status"] == "done" and finished["done"] == contacts, finished  # B's cancel did nothing


async def test_tenant_b_cannot_use_tenant_as_confirmation_on_another_replica(fleet: Fleet) -> None:
    async with fleet.api() as api:
        tag_id = (await api.post("/api/tags", json={"name": "tenant-a-doomed"})).json()["id"]
    a_router, b_router = Router(fleet), Router(fleet)
    async with fleet.client(a_router, headers=A) as a, fleet.client(b_router, headers=B) as b:
        a_router.aim(0)
        asked = await a.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True)
        assert isinstance(asked, types.InputRequiredResult) and asked.request_state, asked
        retry: dict[str, Any] = {"input_responses": YES, "request_state": asked.request_state}
        b_router.aim(1)
        with pytest.raises(MCPError) as refused:
            await b.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True, **retry)
        assert refused.value.error.code == INVALID_PARAMS
        assert refused.value.error.data == {"reason": "invalid_request_state"}
        async with fleet.api() as api:
            assert (await api.get(f"/api/tags/{tag_id}")).status_code == 200  # B's echo deleted nothing
        a_router.aim(1)
        done = await a.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True, **retry)
    assert isinstance(done, types.CallToolResult) and (done.structured_content or {}).get("outcome") == "applied"


async def test_each_tenant_reaches_the_upstream_with_its_own_key_on_every_replica(fleet: Fleet) -> None:
    await fleet.admin("POST", "/ratelimit", {"off": True})
    stranger = {"X-Systeme-Api-Key": "fleet-key-the-sandbox-refuses-0123"}
    for sent, accepted in ((A, True), (B, True), (stranger, False), (A, True)):
        router = Router(fleet)
        async with fleet.client(router, headers=sent) as client:
            for answer in await on_each_replica(router, client, "list_tags"):
                assert answer.is_error is not accepted, text(answer)
                if not accepted:  # the sandbox's 401 for that key: no other tenant's key was used instead
                    assert "401" in text(answer) and sent["X-Systeme-Api-Key"] not in text(answer)
