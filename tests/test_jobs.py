"""Durable jobs through real MCP sessions on the sandbox: the call budget, get_job / list_jobs / cancel_job, and a
job resumed by a new runtime on the same store. Writes are held at a gate in front of the sandbox, so "still
running" is a fact of the test, not a race with the clock."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from mcp import Client, types

from systeme_mcp.runtime import CallContext, Runtime, open_runtime
from systeme_mcp.server import create_server

from .conftest import sandbox_settings
from .helpers import Gate, RawApi, VirtualClock, text

pytestmark = pytest.mark.anyio
BUDGET = 0.3  # seconds: the call budget of these tests


def tag_posts(request: httpx2.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/tags") and "/contacts/" in request.url.path


def writes_per_contact(sandbox: Any) -> Counter[str]:
    return Counter(
        r.path for r in sandbox.requests if r.method == "POST" and r.path.endswith("/tags") and "/contacts/" in r.path
    )


@pytest.fixture
def gate(sandbox: Any) -> Gate:
    return Gate(sandbox.transport(), tag_posts)


@pytest.fixture
async def jobs_runtime(sandbox: Any, gate: Gate, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = sandbox_settings(toolsets=["all"], call_budget=BUDGET, store=f"sqlite://{tmp_path / 'jobs.db'}")
    clock = VirtualClock()
    async with open_runtime(settings, sandbox=sandbox, transport=gate, sleep=clock.sleep, clock=clock) as rt:
        yield rt


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store the runtimes of one test share: a file, or a namespace of its own on a real Redis (a shared store
    needs the servers' shared confirmation key, SYSTEME_STATE_SECRET)."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'jobs.db'}"
    request.getfixturevalue("monkeypatch").setenv("SYSTEME_STATE_SECRET", "s" * 64)
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["modern", "legacy"])
async def client(request: pytest.FixtureRequest, jobs_runtime: Runtime) -> AsyncIterator[Client]:
    mode = "legacy" if request.param == "legacy" else "auto"
    async with Client(create_server(jobs_runtime), mode=mode, cache=None) as session:
        yield session


async def new_tag(api: RawApi, name: str) -> int:
    return int((await api.post("/api/tags", {"name": name}))["id"])


async def tagged(api: RawApi, tag_id: int) -> set[int]:
    return {c["id"] for c in await api.all_items("/api/contacts", tags=tag_id)}


async def structured(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


async def until_finished(client: Client, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            job = await structured(client, "get_job", job_id=job_id)
            if job["status"] != "running":
                return job
            await anyio.sleep(0.05)


async def stopped_mid_job(settings: Any, sandbox: Any, ids: list[int], tag_id: int) -> dict[str, Any]:
    """A server starts a bulk tag over `ids` and stops (cleanly) with eight writes in flight, held at a gate: never
    sent. The job, as its first call answered."""
    gate = Gate(sandbox.transport(), tag_posts)
    gate.expect = 8
    async with open_runtime(settings, sandbox=sandbox, transport=gate) as life:
        session = Client(create_server(life), cache=None)
        async with session:
            job = await structured(session, "bulk_add_tag", contact_ids=ids, tag_id=tag_id, dry_run=False)
            with anyio.fail_after(10):
                await gate.arrived.wait()
    return job


async def test_a_bulk_call_past_its_budget_answers_with_a_job_that_finishes(
    client: Client, api: RawApi, sandbox: Any, gate: Gate
) -> None:
    tag_id = await new_tag(api, "job-tag")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:40]
    with anyio.fail_after(10):
        first = await client.call_tool("bulk_add_tag", {"contact_ids": ids, "tag_id": tag_id, "dry_run": False})
    job = first.structured_content
    assert not first.is_error and job is not None, text(first)
    assert job["status"] == "running" and job["done"] < job["total"] == len(ids)
    assert job["next"] == {"tool": "get_job", "arguments": {"job_id": job["job_id"]}}
    assert f'next: get_job(job_id="{job["job_id"]}")' in text(first).splitlines()

    listed = await structured(client, "list_jobs", status="running")
    assert [j["job_id"] for j in listed["items"]] == [job["job_id"]]

    gate.opened.set()
    done = await until_finished(client, job["job_id"])
    assert done["status"] == "done" and done["outcome"] == "applied"
    assert done["counts"]["changed"] == len(ids) and done["done"] == len(ids), (done["counts"], done["message"])
    assert await tagged(api, tag_id) == set(ids)
    assert set(writes_per_contact(sandbox).values()) == {1}, "a contact was written twice"


async def test_cancel_job_stops_after_the_items_in_flight_and_reports_exactly(
    client: Client, api: RawApi, sandbox: Any, gate: Gate
) -> None:
    tag_id = await new_tag(api, "cancel-tag")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:60]
    job = await structured(client, "bulk_add_tag", contact_ids=ids, tag_id=tag_id, dry_run=False)
    assert job["status"] == "running"
    with anyio.fail_after(10):
        await gate.arrived.wait()
    async with anyio.create_task_group() as tg:
        answers: list[dict[str, Any]] = []

        async def cancel() -> None:
            answers.append(await structured(client, "cancel_job", job_id=job["job_id"]))

        tg.start_soon(cancel)
        await anyio.wait_all_tasks_blocked()
        gate.opened.set()  # the writes in flight finish; nothing after them starts
    final = await until_finished(client, job["job_id"])
    assert final["status"] == "cancelled" and answers[0]["outcome"] == "applied"
    now = await tagged(api, tag_id)
    assert set(final["changed"]) == now and 0 < len(now) < len(ids)
    assert set(final["not_started"]) == set(ids) - now and final["counts"]["changed"] == len(now)
    assert sum(writes_per_contact(sandbox).values()) == len(now), "a write was sent after the cancel"
    again = await structured(client, "cancel_job", job_id=job["job_id"])
    assert again["outcome"] == "already_applied" and again["status"] == "cancelled"


async def test_cancelling_the_first_call_cancels_its_job(client: Client, api: RawApi, sandbox: Any, gate: Gate) -> None:
    tag_id = await new_tag(api, "abandon-tag")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:60]
    gate.expect = 8  # every worker holds a write
    scope = anyio.CancelScope()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                with scope:
                    await client.call_tool("bulk_add_tag", {"contact_ids": ids, "tag_id": tag_id, "dry_run": False})

            tg.start_soon(call)
            await gate.arrived.wait()
            scope.cancel()
    (job,) = (await structured(client, "list_jobs"))["items"]
    gate.opened.set()
    final = await until_finished(client, job["job_id"])
    assert final["status"] == "cancelled"
    assert set(final["changed"]) == await tagged(api, tag_id) and len(final["changed"]) == 8


async def test_any_call_past_its_budget_carries_on_as_a_job(
    jobs_runtime: Runtime, client: Client, api: RawApi, gate: Gate
) -> None:
    contact_id = (await api.all_items("/api/contacts"))[0]["id"]
    tag_id = await new_tag(api, "slow-tag")
    first = await structured(client, "add_tag_to_contact", contact_id=contact_id, tag_id=tag_id)
    assert first["status"] == "running" and first["kind"] == "call" and "outcome" not in first
    gate.opened.set()
    done = await until_finished(client, first["job_id"])
    assert done["status"] == "done" and done["outcome"] == "applied"
    assert contact_id in await tagged(api, tag_id)


async def test_a_job_is_resumed_by_the_next_runtime_on_its_store(sandbox: Any, api: RawApi, store_url: str) -> None:
    tag_id = await new_tag(api, "resume-tag")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:30]
    settings = sandbox_settings(toolsets=["all"], call_budget=BUDGET, store=store_url)
    job = await stopped_mid_job(settings, sandbox, ids, tag_id)
    assert writes_per_contact(sandbox) == Counter(), "held writes must not have reached the sandbox"
    again = Gate(sandbox.transport(), tag_posts)  # held again, to look at the job before it moves
    async with open_runtime(settings, sandbox=sandbox, transport=again) as second_life:
        session = Client(create_server(second_life), cache=None)
        async with session:
            with anyio.fail_after(10):
                await again.arrived.wait()  # resumed: the first of the in-flight writes is being checked
            before = await structured(session, "get_job", job_id=job["job_id"])
            assert before["status"] == "running" and before["in_flight"] == 8 and before["done"] == 0
            again.opened.set()
            final = await until_finished(session, job["job_id"])
    assert final["status"] == "done" and final["counts"]["changed"] == len(ids)
    assert await tagged(api, tag_id) == set(ids)
    assert set(writes_per_contact(sandbox).values()) == {1}


async def test_job_arguments_are_checked_before_anything_is_read(client: Client) -> None:
    for bad in ({"job_id": "nope"}, {}, {"job_id": "job_" + "0" * 16 + "x"}):
        result = await client.call_tool("get_job", bad)
        assert result.is_error and "job_id" in text(result), bad
    missing = await client.call_tool("get_job", {"job_id": "job_" + "0" * 16})
    assert missing.is_error and "list_jobs" in text(missing)
    status = await client.call_tool("list_jobs", {"status": "sleeping"})
    assert status.is_error and "running" in text(status)


def test_job_answers_validate_against_every_output_schema() -> None:
    import jsonschema

    from systeme_mcp.catalog import load_catalog
    from systeme_mcp.registry import full_registry

    job = {"job_id": "job_" + "0" * 16, "status": "running", "message": "…"}
    checked = 0
    for tool in full_registry(load_catalog()).values():
        assert tool.tool.output_schema is not None
        if "job_id" not in tool.tool.output_schema.get("required", []):  # the job tools answer a job, and more
            jsonschema.validate(job, tool.tool.output_schema)
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_a_job_resource_tells_its_subscribers_as_it_progresses(
    jobs_runtime: Runtime, api: RawApi, gate: Gate, era: str
) -> None:
    from .test_subscriptions import Updates, client_of, watching

    tag_id = await new_tag(api, "watched-tag")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:20]
    updates = Updates()
    async with client_of(jobs_runtime, era, "memory", updates) as session:
        job = await structured(session, "bulk_add_tag", contact_ids=ids, tag_id=tag_id, dry_run=False)
        uri = f"systeme://jobs/{job['job_id']}"
        async with watching(session, era, updates, uri):
            gate.opened.set()
            await updates.wait_for(uri)
            final = await until_finished(session, job["job_id"])
        body = await session.read_resource(uri)
    (content,) = body.contents
    assert isinstance(content, types.TextResourceContents)
    assert json.loads(content.text)["status"] == final["status"] == "done"


async def test_a_runner_keeps_nothing_of_the_jobs_it_finished(
    jobs_runtime: Runtime, client: Client, api: RawApi, gate: Gate
) -> None:
    """A hosted server runs for weeks: once its jobs end (a call past its budget, a bulk job a call waited for),
    the runner holds no state for them."""
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:4]
    tag_id = await new_tag(api, "forgotten")
    late = await structured(client, "add_tag_to_contact", contact_id=ids[0], tag_id=tag_id)
    assert late["kind"] == "call" and late["status"] == "running"
    gate.opened.set()
    bulk = await structured(client, "bulk_add_tag", contact_ids=ids, tag_id=tag_id, dry_run=False)
    for job_id in (late["job_id"], bulk["job_id"]):
        assert (await until_finished(client, job_id))["status"] == "done"
    with anyio.fail_after(10):  # the job's record is final a moment before its runner lets go of it
        while jobs_runtime.jobs.tracked():
            await anyio.lowlevel.checkpoint()
    elsewhere, waiter = "job_" + "e" * 16, CallContext(jobs_runtime)  # a job another replica runs, followed here
    jobs_runtime.jobs.follow(elsewhere, waiter)
    jobs_runtime.jobs.changed(elsewhere)
    jobs_runtime.jobs.unfollow(elsewhere, waiter)
    assert jobs_runtime.jobs.tracked() == 0


def tag_reads(request: httpx2.Request) -> bool:
    return request.method == "GET" and "/tags/" in request.url.path


async def test_a_declared_read_past_its_budget_is_read_again_as_a_job(sandbox: Any, api: RawApi) -> None:
    """A declared read runs in the request's own task: past the budget it is stopped and read again, from the
    start, as a job whose report is the read's answer; the stopped attempt never reached the API."""
    tag_id = await new_tag(api, "slow-read")
    gate = Gate(sandbox.transport(), tag_reads)
    gate.expect = 2  # the attempt cut short at the budget, then the job's
    settings = sandbox_settings(call_budget=BUDGET)
    async with open_runtime(settings, sandbox=sandbox, transport=gate) as rt, Client(create_server(rt)) as session:
        first = await structured(session, "get_tag", tag_id=tag_id)
        assert first["kind"] == "call" and first["status"] == "running"
        with anyio.fail_after(10):
            await gate.arrived.wait()
        gate.opened.set()
        done = await until_finished(session, first["job_id"])
    assert done["status"] == "done" and done["item"]["id"] == tag_id and not done.get("error")
    reads = [r for r in sandbox.requests if r.method == "GET" and r.path.endswith(f"/tags/{tag_id}")]
    assert len(reads) == 1


async def test_a_declared_read_cancelled_by_its_client_stops_and_leaves_no_job(sandbox: Any, api: RawApi) -> None:
    tag_id = await new_tag(api, "cancelled-read")
    gate = Gate(sandbox.transport(), tag_reads)
    settings = sandbox_settings(call_budget=30)
    async with open_runtime(settings, sandbox=sandbox, transport=gate) as rt, Client(create_server(rt)) as session:
        scope = anyio.CancelScope()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    with scope:
                        await session.call_tool("get_tag", {"tag_id": tag_id})

                tg.start_soon(call)
                await gate.arrived.wait()
                scope.cancel()
        assert (await structured(session, "list_jobs"))["items"] == []
        gate.opened.set()
        again = await structured(session, "get_tag", tag_id=tag_id)
    assert again["item"]["id"] == tag_id
    assert len([r for r in sandbox.requests if r.method == "GET" and r.path.endswith(f"/tags/{tag_id}")]) == 1


def contact_reads(request: httpx2.Request) -> bool:
    return request.method == "GET" and request.url.path.rstrip("/").endswith("/contacts")


async def test_a_read_past_its_budget_is_run_again_after_a_restart_and_a_write_is_not(
    sandbox: Any, api: RawApi, tmp_path: Path
) -> None:
    settings = sandbox_settings(toolsets=["all"], call_budget=BUDGET, store=f"sqlite://{tmp_path / 'jobs.db'}")
    contact_id = (await api.all_items("/api/contacts"))[0]["id"]
    tag_id = await new_tag(api, "interrupted")
    gate = Gate(sandbox.transport(), lambda r: contact_reads(r) or tag_posts(r))
    gate.expect = 2
    async with open_runtime(settings, sandbox=sandbox, transport=gate) as first_life:
        session = Client(create_server(first_life), cache=None)
        async with session:
            read = await structured(session, "find_contacts", email_domain="acme.test")
            write = await structured(session, "add_tag_to_contact", contact_id=contact_id, tag_id=tag_id)
            assert read["kind"] == write["kind"] == "call" and read["status"] == write["status"] == "running"
            with anyio.fail_after(10):
                await gate.arrived.wait()  # both still held when the server stops
    async with open_runtime(settings, sandbox=sandbox) as second_life:
        session = Client(create_server(second_life), cache=None)
        async with session:
            found = await until_finished(session, read["job_id"])
            lost = await until_finished(session, write["job_id"])
    acme = {c["id"] for c in await api.all_items("/api/contacts") if c["email"].endswith("@acme.test")}
    assert found["status"] == "done" and found["total"] == len(acme) and found["complete"]
    assert {i["id"] for i in found["items"]} <= acme and found["items"]
    assert lost["status"] == "done" and lost["outcome"] == "unknown"  # said, never sent twice (nor once here)
    assert contact_id not in await tagged(api, tag_id)


async def test_a_job_belongs_to_its_account_and_is_resumed_only_by_it(
    sandbox: Any, api: RawApi, store_url: str
) -> None:
    def account(key: str) -> Any:
        return sandbox_settings(
            backend="direct",
            systeme_api_key=key,
            systeme_api_url=sandbox.base_url,
            toolsets=["all"],
            call_budget=BUDGET,
            store=store_url,
        )

    tag_id = await new_tag(api, "mine")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:10]
    gate = Gate(sandbox.transport(), tag_posts)
    async with open_runtime(account("key-of-account-one"), transport=gate) as first:
        session = Client(create_server(first), cache=None)
        async with session:
            job = await structured(session, "bulk_add_tag", contact_ids=ids, tag_id=tag_id, dry_run=False)
            assert job["status"] == "running"
    async with open_runtime(account("key-of-account-two"), transport=sandbox.transport()) as other:
        session = Client(create_server(other), cache=None)
        async with session:
            await other.jobs._round()  # its maintenance round: it must leave the other account's job alone
            assert (await structured(session, "list_jobs"))["items"] == []
            assert (await session.call_tool("get_job", {"job_id": job["job_id"]})).is_error
            assert (await session.call_tool("cancel_job", {"job_id": job["job_id"]})).is_error
    assert await tagged(api, tag_id) == set()
    async with open_runtime(account("key-of-account-one"), transport=sandbox.transport()) as again:
        session = Client(create_server(again), cache=None)
        async with session:
            final = await until_finished(session, job["job_id"])
    assert final["status"] == "done" and await tagged(api, tag_id) == set(ids)


async def test_through_the_discover_profile_a_bulk_job_carries_on_past_the_budget(
    sandbox: Any, api: RawApi, tmp_path: Path
) -> None:
    settings = sandbox_settings(toolsets=["all"], profile="discover", call_budget=BUDGET)
    gate = Gate(sandbox.transport(), tag_posts)
    tag_id = await new_tag(api, "discovered")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:20]
    async with open_runtime(settings, sandbox=sandbox, transport=gate) as rt:
        session = Client(create_server(rt), cache=None)
        async with session:
            arguments = {"contact_ids": ids, "tag_id": tag_id, "dry_run": False}
            job = await structured(session, "call_tool", name="bulk_add_tag", arguments=arguments)
            assert job["status"] == "running" and job["kind"] == "bulk_add_tag"
            gate.opened.set()
            with anyio.fail_after(30):
                while job["status"] == "running":
                    await anyio.sleep(0.05)
                    job = await structured(session, "call_tool", name="get_job", arguments={"job_id": job["job_id"]})
    assert job["status"] == "done", job  # not cancelled when the first call's wait ended
    assert await tagged(api, tag_id) == set(ids)


async def test_a_job_cancelled_while_its_server_was_down_settles_only_what_was_in_flight(
    sandbox: Any, api: RawApi, tmp_path: Path
) -> None:
    from systeme_mcp.jobstore_sqlite import SqliteJobStore

    settings = sandbox_settings(toolsets=["all"], call_budget=BUDGET, store=f"sqlite://{tmp_path / 'jobs.db'}")
    tag_id = await new_tag(api, "cancelled-offline")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:30]
    job = await stopped_mid_job(settings, sandbox, ids, tag_id)
    store = SqliteJobStore(tmp_path / "jobs.db")  # the cancel arrives while no server runs the job
    record = await store.get(job["job_id"])
    assert record is not None
    record.cancel_requested = True
    await store.save(record)
    await store.aclose()
    async with open_runtime(settings, sandbox=sandbox) as second_life:
        session = Client(create_server(second_life), cache=None)
        async with session:
            final = await until_finished(session, job["job_id"])
    assert final["status"] == "cancelled" and final["counts"]["changed"] == 8
    assert await tagged(api, tag_id) == set(final["changed"]) and len(final["not_started"]) == len(ids) - 8


async def test_a_job_of_a_kind_this_server_lacks_ends_failed_instead_of_running_for_ever(
    sandbox: Any, tmp_path: Path
) -> None:
    from systeme_mcp.jobstore import Job, new_job_id

    settings = sandbox_settings(store=f"sqlite://{tmp_path / 'jobs.db'}")
    async with open_runtime(settings, sandbox=sandbox) as rt:
        create_server(rt)  # registers the kinds this version has
        orphan = Job(new_job_id(), "bulk_retired_tool", {}, 3, created=1.0, tenant=rt.account)
        await rt.jobs.store.create(orphan, ["1", "2", "3"])
        await rt.jobs._round()
        ended = await rt.jobs.store.get(orphan.id)
    assert ended is not None and ended.status == "failed" and "bulk_retired_tool" in ended.error


async def test_with_its_store_unreachable_no_work_is_started_and_the_answer_says_why(
    sandbox: Any, api: RawApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYSTEME_STATE_SECRET", "s" * 64)
    with socket.socket() as closed:  # a port nothing listens on: the store never answers
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = sandbox_settings(toolsets=["all"], store=f"redis://127.0.0.1:{port}/0")
    tag_id = await new_tag(api, "never")
    ids = [c["id"] for c in await api.all_items("/api/contacts")][:5]
    before = len(sandbox.requests)
    async with open_runtime(settings, sandbox=sandbox) as rt:
        session = Client(create_server(rt), cache=None)
        async with session:
            calls: list[tuple[str, dict[str, Any]]] = [
                ("bulk_add_tag", {"contact_ids": ids, "tag_id": tag_id, "dry_run": False}),
                ("import_contacts", {"contacts": [{"email": "nobody@store.test", "tags": ["brand-new-tag"]}]}),
            ]
            for tool, arguments in calls:
                result = await session.call_tool(tool, arguments)
                assert result.is_error and result.structured_content is not None, text(result)
                assert result.structured_content["error"]["kind"] == "store_unavailable"
                assert result.structured_content["outcome"] == "not_applied"
    writes = [r for r in sandbox.requests[before:] if r.method != "GET"]
    assert writes == [], "nothing may be written when the work cannot be kept"
