"""Serving: admin endpoints, persistence, the CLI entry point, the seed, and pagination as a property."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from systeme_mcp import runtime
from systeme_mcp.runtime import SANDBOX_URL, LazySandbox
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox import seed as seeding
from systeme_mcp.sandbox.serve import build_parser, main, make_sandbox
from systeme_mcp.sandbox.validation import PageParams, paginate

from .sandbox_testkit import KEY


@pytest.mark.anyio
async def test_admin_endpoints(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    assert (await client.post("/api/tags", json={"name": "temporary"})).status_code == 201
    status = (await client.get("/__sandbox")).json()
    assert status["counts"]["tags"] == 11 and status["faults"] is None
    plan = await client.post("/__sandbox/faults", json={"rate": 1.0, "kinds": ["503"], "routes": ["GET /api/tags"]})
    assert plan.status_code == 200 and plan.json()["plan"]["kinds"] == ["503"]
    assert (await client.get("/api/tags")).status_code == 503
    assert (await client.get("/__sandbox/faults")).json()["fired"] == 1
    assert (await client.post("/__sandbox/faults", json={"kinds": ["nope"]})).status_code == 400
    assert (await client.delete("/__sandbox/faults")).status_code == 204
    log = (await client.get("/__sandbox/requests", params={"limit": 2})).json()
    assert log["count"] == 2 and [r["status"] for r in log["items"]] == [201, 503]
    assert (await client.delete("/__sandbox/requests")).status_code == 204 and len(sb.requests) == 0
    limit = await client.post("/__sandbox/ratelimit", json={"capacity": 5, "refillPerSecond": 1})
    assert limit.json() == {"capacity": 5, "refillPerSecond": 1.0}
    assert (await client.get("/api/tags")).headers["x-ratelimit-limit"] == "5"
    assert (await client.post("/__sandbox/ratelimit", json={"off": True})).json() == {"off": True}
    assert (await client.post("/__sandbox/ratelimit", json={"capacity": "x"})).status_code == 400
    settings = await client.post("/__sandbox/settings", json={"twilioConnected": True, "paymentsConfigured": False})
    assert settings.json()["twilioConnected"] is True
    assert (await client.get("/api/sms/phone-numbers")).status_code == 200
    assert (await client.get("/api/payment/subscriptions", params={"contact": 1})).status_code == 404
    assert "items" in (await client.get("/__sandbox/deliveries")).json()
    assert (await client.post("/__sandbox/reset")).status_code == 200
    assert "temporary" not in {t.name for t in sb.store.tags.values()}


@pytest.mark.anyio
async def test_index_head_and_unknown_paths(client: httpx2.AsyncClient) -> None:
    assert "families" in (await client.get("/")).json()
    head = await client.head("/api/contacts")
    assert head.status_code == 200 and head.content == b""
    assert (await client.get("/nowhere")).status_code == 404


@pytest.mark.anyio
async def test_state_file_persists(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sb = Sandbox(rate_limit=None, state_file=path)
    assert path.exists()
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        tag = (await c.post("/api/tags", json={"name": "kept"})).json()
        await c.delete("/api/contacts/1")
    again = Sandbox(rate_limit=None, state_file=path)
    assert again.store.tags[tag["id"]].name == "kept" and 1 not in again.store.contacts
    assert again.store.next_id("tags") == tag["id"] + 1  # counters survive too
    again.reset()
    assert "kept" not in {t.name for t in Sandbox(rate_limit=None, state_file=path).store.tags.values()}


def test_seed_is_deterministic() -> None:
    a = Sandbox(seed=0)
    assert a.store.to_json() == Sandbox(seed=0).store.to_json()
    assert a.store.to_json() != Sandbox(seed=1).store.to_json()
    s = a.store
    assert len(s.contacts) >= 200 and len(s.courses) == 3 and len(s.communities) == 2
    assert any(c.email.endswith("@acme.test") for c in s.contacts.values())
    assert len({c.email.casefold() for c in s.contacts.values()}) == len(s.contacts)
    assert s.webhooks and s.funnels and s.campaigns and s.newsletters and s.enrollments and s.memberships


def test_each_sandbox_has_its_own_copy_of_the_seed() -> None:
    """The seed is built once per process and copied: a change to one sandbox (in place, deep down, or a new row)
    reaches no other, and each copy is the account `seeding._build` makes."""
    a, b = Sandbox(seed=0), Sandbox(seed=0)
    first = next(iter(a.store.contacts.values()))
    first.tag_ids.append(999)
    first.fields["first_name"] = "Changed"
    a.store.twilio["messageServices"][0]["name"] = "Changed"
    a.store.tags[999] = a.store.tags[1]
    assert a.store.tags.added == {999: None} and not b.store.tags.added  # the changes are tracked per copy
    assert b.store.to_json() == Sandbox(seed=0).store.to_json() == seeding._build(0).to_json()
    a.reset()
    assert a.store.to_json() == b.store.to_json()


def test_cli_options_build_the_sandbox() -> None:
    args = build_parser().parse_args(
        ["--seed", "3", "--rate-limit", "off", "--fault-rate", "0.5", "--fault-kinds", "500,reset_after",
         "--fault-routes", "POST /api/contacts", "--no-payments", "--twilio", "--api-key", "k1"]
    )  # fmt: skip
    sb = make_sandbox(args)
    assert sb.seed == 3 and sb.rate_limit is None and sb.api_keys == frozenset({"k1"})
    assert sb.faults.plan is not None and sb.faults.plan.kinds == ("500", "reset_after")
    assert sb.faults.plan.routes == ("POST /api/contacts",)
    assert sb.env.options.payments_configured is False and sb.store.twilio["connected"] is True
    assert make_sandbox(build_parser().parse_args([])).rate_limit == Sandbox.DEFAULT_RATE_LIMIT


def test_cli_rejects_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rate-limit", "lots", "--port", "0"]) == 2
    assert main(["--fault-rate", "0.5", "--fault-kinds", "meteor", "--port", "0"]) == 2
    assert "sandbox" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BANNER = b"systeme-mcp sandbox on "


def _read_banner(stream: IO[bytes], wait: float = 60.0) -> bytes:
    """stderr up to the CLI's banner line, printed once the port is bound and listening (each line awaited
    at most `wait` seconds)."""
    seen = b""
    while BANNER not in seen:
        ready, _, _ = select.select([stream], [], [], wait)
        assert ready, f"no banner from the sandbox CLI; stderr so far: {seen!r}"
        line = stream.readline()
        assert line, f"the sandbox CLI exited before serving; stderr: {seen!r}"
        seen += line
    return seen


def test_cli_serves_over_http() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from systeme_mcp.sandbox.serve import main; sys.exit(main(sys.argv[1:]))",
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: select() sees every line readline() has not consumed
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    try:
        banner = _read_banner(proc.stderr)
        # the socket listens before the banner is printed: this request waits in its backlog, no polling
        answer = httpx2.get(f"http://127.0.0.1:{port}/api/contacts", headers={"X-API-Key": "x"}, timeout=60.0)
        assert answer.status_code == 200
        assert len(answer.json()["items"]) == 10 and answer.headers["x-ratelimit-limit"] == "100"
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=10)
    err = banner + rest
    assert f"http://127.0.0.1:{port}".encode() in banner and b"Traceback" not in err


@given(
    ids=st.lists(st.integers(min_value=1, max_value=500), unique=True, max_size=120),
    limit=st.integers(min_value=10, max_value=100),
    order=st.sampled_from(["asc", "desc"]),
)
def test_pagination_walks_every_item_once(ids: list[int], limit: int, order: str) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        page, more = paginate(ids, PageParams(limit, cursor, order), key=lambda i: i)
        assert len(page) <= limit
        seen += page
        if not more:
            break
        cursor = page[-1]
    assert seen == sorted(ids, reverse=order == "desc")


@pytest.mark.anyio
async def test_the_embedded_sandbox_remembers_only_the_latest_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server's own sandbox (no key set) lives as long as the server: its request log and its webhook deliveries
    used to keep every one; a sandbox made by a test still keeps all."""
    monkeypatch.setattr(runtime, "SANDBOX_LOG", 3)
    embedded = LazySandbox()
    async with httpx2.AsyncClient(transport=embedded, base_url=SANDBOX_URL, headers=KEY) as client:
        for i in range(5):
            assert (await client.post("/api/contacts", json={"email": f"kept{i}@acme.test"})).status_code == 201
    sandbox = embedded.sandbox
    assert [r.path for r in sandbox.requests] == ["/api/contacts"] * 3
    delivered = [d.body for d in sandbox.webhooks.deliveries]  # the seeded webhook hears CONTACT_CREATED
    assert len(delivered) == 3 and all(f"kept{i}@".encode() in body for i, body in enumerate(delivered, start=2))
    assert Sandbox().requests.keep is None and Sandbox().webhooks.keep is None
