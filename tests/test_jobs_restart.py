"""A job survives the server being killed: the sandbox served over real HTTP (`systeme-mcp sandbox --state`,
rate-limited), the server as a subprocess on Streamable HTTP with an SQLite job store. SIGKILL mid-job, start
it again on the same store: the job finishes, every contact is tagged, none is written more often than the
exactly-once rules allow, and get_job tells the truth before and after."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from .helpers import tag_writes, text, wait_for
from .processes import clean_env, free_port, process, ready, tls

pytestmark = pytest.mark.anyio
KEY = "sandbox-key-for-restart-test"
CONTACTS = 60


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    args = ["sandbox", "--port", str(port), "--state", str(tmp_path / "sandbox.db"), "--rate-limit", "10:40/s"]
    with process([*args, "--api-key", KEY], dict(os.environ)):
        yield f"http://127.0.0.1:{port}"


def server_env(sandbox_url: str, store: Path) -> dict[str, str]:
    return clean_env(
        SYSTEME_BACKEND="direct",
        SYSTEME_API_KEY=KEY,
        SYSTEME_API_URL=sandbox_url,
        SYSTEME_STORE=f"sqlite://{store}",
        SYSTEME_CALL_BUDGET="1",
        SYSTEME_JOB_LEASE="1",
        SYSTEME_TOOLSETS="default,bulk",
    )


@asynccontextmanager
async def server(env: dict[str, str]) -> AsyncIterator[tuple[subprocess.Popen[bytes], Client]]:
    port = free_port()
    with process(["--transport", "http", "--port", str(port)], env) as proc:
        await ready(f"http://127.0.0.1:{port}/mcp")
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            yield proc, client


async def test_a_job_finishes_exactly_once_across_a_sigkill(sandbox_url: str, tmp_path: Path) -> None:
    env = server_env(sandbox_url, tmp_path / "jobs.db")
    async with httpx2.AsyncClient(base_url=sandbox_url, headers={"X-API-Key": KEY}, verify=tls()) as api:
        await ready(sandbox_url)
        tag_id = (await api.post("/api/tags", json={"name": "survivor"})).json()["id"]
        ids = [c["id"] for c in (await api.get("/api/contacts", params={"limit": 100})).json()["items"]][:CONTACTS]
    async with server(env) as (proc, client):
        first = await client.call_tool("bulk_add_tag", {"contact_ids": ids, "tag_id": tag_id, "dry_run": False})
        job = first.structured_content
        assert job is not None and job["status"] == "running", text(first)
        before = await wait_for(client, job["job_id"], lambda state: state["done"] >= 10)
        os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown: the lease is left to expire
    assert before["status"] == "running" and before["done"] < CONTACTS
    async with server(env) as (_, client):
        after = await wait_for(client, job["job_id"], lambda state: state["status"] != "running")
    assert after["status"] == "done" and after["done"] == CONTACTS, after
    assert after["counts"]["changed"] + after["counts"]["already"] == CONTACTS and not after["counts"]["failed"]
    writes = await tag_writes(sandbox_url)
    async with httpx2.AsyncClient(base_url=sandbox_url, headers={"X-API-Key": KEY}, verify=tls()) as api:
        tagged = {
            c["id"] for c in (await api.get("/api/contacts", params={"tags": tag_id, "limit": 100})).json()["items"]
        }
    assert tagged == set(ids), "a contact was lost"
    # a write in flight at the kill is read back before it is sent again: each contact was written once
    assert len(writes) == CONTACTS and set(writes.values()) == {1}, writes
