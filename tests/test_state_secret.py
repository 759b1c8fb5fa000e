"""Confirmations sealed from a configured key ring (issue 14, item 2: SYSTEME_STATE_SECRET).

In the 2026-07-28 era a destructive call answers InputRequiredResult with a sealed `request_state`; the client
retries with the user's answer and that state. Here the question comes from one server and the retry goes to
another (two runtimes and servers over one sandbox, as two replicas or a restarted process would be): with the
same ring the delete happens once; with another key, or a ring that dropped the sealing key, it is refused
(the SDK's frozen -32602) and nothing is sent. Rotation: a ring [new, old] opens what [old] sealed. The keys
never appear in any answer, error or log, and bad settings stop start-up naming the variable, never the value."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import uvicorn
from mcp import Client, MCPError, types
from mcp.types import INVALID_PARAMS
from pydantic import ValidationError

from systeme_mcp import config
from systeme_mcp.cli import _serve_parser, load_settings
from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.transport import http_app

from .conftest import sandbox_settings
from .helpers import RawApi, requests_seen

pytestmark = pytest.mark.anyio

OLD = "state_OLD_key_planted_0123456789abcdef0123"
NEW = "state_NEW_key_planted_fedcba9876543210fedc"
OTHER = "state_OTHER_key_planted_00112233445566778899"
KEYS = (OLD, NEW, OTHER)
YES: dict[str, Any] = {"confirm": types.ElicitResult(action="accept", content={"confirm": True})}


async def accept(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


def ring(*keys: str) -> str | None:
    return ",".join(keys) if keys else None


@asynccontextmanager
async def replica(sandbox: Any, secret: str | None) -> AsyncIterator[Client]:
    """One server (its own runtime, its own RequestStateBoundary) over the shared sandbox, and a modern client."""
    settings = sandbox_settings(confirm_destructive=True, state_secret=secret)
    async with open_runtime(settings, sandbox=sandbox) as runtime:  # noqa: SIM117 (the client needs the runtime)
        async with Client(create_server(runtime), elicitation_callback=accept, cache=None) as client:
            assert client.protocol_version == "2026-07-28"
            yield client


async def ask(client: Client, tag_id: int) -> types.InputRequiredResult:
    asked = await client.session.call_tool("delete_tag", {"tag_id": tag_id}, allow_input_required=True)
    assert isinstance(asked, types.InputRequiredResult), asked
    assert asked.request_state is not None and "delete_tag" not in asked.request_state  # sealed, not readable
    assert set(asked.input_requests or {}) == {"confirm"}
    return asked


async def answer(client: Client, tag_id: int, state: str | None) -> types.CallToolResult | types.InputRequiredResult:
    return await client.session.call_tool(
        "delete_tag", {"tag_id": tag_id}, input_responses=YES, request_state=state, allow_input_required=True
    )


def deletes(sandbox: Any, tag_id: int) -> int:
    return sum(r.method == "DELETE" and r.path.endswith(f"/api/tags/{tag_id}") for r in sandbox.requests)


@pytest.mark.parametrize(
    ("asker", "answerer", "accepted"),
    [
        pytest.param((OLD,), (OLD,), True, id="same-key"),
        pytest.param((OLD,), (OTHER,), False, id="other-key"),
        pytest.param((), (), False, id="no-secret-each-process-its-own-key"),
        pytest.param((OLD,), (NEW, OLD), True, id="rotation-new-first-opens-old"),
        pytest.param((OLD,), (NEW,), False, id="rotation-old-key-dropped"),
        pytest.param((OLD, NEW), (OLD,), True, id="rollout-phase-1-seals-with-old"),
        pytest.param((NEW, OLD), (OLD,), False, id="new-first-before-every-server-knows-new"),
    ],
)
async def test_a_question_asked_by_one_server_is_answered_on_another(
    sandbox: Any, api: RawApi, asker: tuple[str, ...], answerer: tuple[str, ...], accepted: bool
) -> None:
    tag = (await api.get("/api/tags"))["items"][0]
    async with replica(sandbox, ring(*asker)) as a, replica(sandbox, ring(*answerer)) as b:
        asked = await ask(a, tag["id"])
        before = requests_seen(sandbox)
        if accepted:
            done = await answer(b, tag["id"], asked.request_state)
            assert isinstance(done, types.CallToolResult) and not done.is_error, done
            assert done.structured_content is not None and done.structured_content["outcome"] == "applied"
        else:
            with pytest.raises(MCPError) as refused:
                await answer(b, tag["id"], asked.request_state)
            assert refused.value.error.code == INVALID_PARAMS
            assert refused.value.error.data == {"reason": "invalid_request_state"}
            assert requests_seen(sandbox) == before  # refused before anything was read or sent
    assert deletes(sandbox, tag["id"]) == (1 if accepted else 0)
    assert await api.status(f"/api/tags/{tag['id']}") == (404 if accepted else 200)


async def test_a_restarted_server_with_the_ring_opens_what_it_sealed_before(sandbox: Any, api: RawApi) -> None:
    tag = (await api.get("/api/tags"))["items"][0]
    async with replica(sandbox, ring(NEW, OLD)) as before_restart:
        asked = await ask(before_restart, tag["id"])
    async with replica(sandbox, ring(NEW, OLD)) as after_restart:
        done = await answer(after_restart, tag["id"], asked.request_state)
    assert isinstance(done, types.CallToolResult) and done.structured_content is not None
    assert done.structured_content["outcome"] == "applied"
    assert deletes(sandbox, tag["id"]) == 1


@asynccontextmanager
async def http_replica(sandbox: Any, secret: str | None) -> AsyncIterator[str]:
    """A Streamable HTTP server of its own over the shared sandbox; yields its URL."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = int(sock.getsockname()[1])
        settings = sandbox_settings(confirm_destructive=True, state_secret=secret, port=port)
        async with open_runtime(settings, sandbox=sandbox) as runtime, anyio.create_task_group() as tg:
            server = uvicorn.Server(uvicorn.Config(http_app(create_server(runtime), settings), log_level="error"))
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                server.should_exit = True


async def test_over_http_the_retry_reaches_another_server_and_deletes_once(sandbox: Any, api: RawApi) -> None:
    tag = (await api.get("/api/tags"))["items"][0]
    async with (
        http_replica(sandbox, ring(NEW, OLD)) as url_a,
        http_replica(sandbox, ring(NEW, OLD)) as url_b,
    ):
        async with Client(url_a, elicitation_callback=accept, cache=None) as a:
            assert a.protocol_version == "2026-07-28"
            asked = await ask(a, tag["id"])
        async with Client(url_b, elicitation_callback=accept, cache=None) as b:
            done = await answer(b, tag["id"], asked.request_state)
    assert isinstance(done, types.CallToolResult) and done.structured_content is not None
    assert done.structured_content["outcome"] == "applied"
    assert deletes(sandbox, tag["id"]) == 1
    assert await api.status(f"/api/tags/{tag['id']}") == 404


def leaked(texts: list[str]) -> list[str]:
    return [t[:200] for t in texts if any(key in t or key[-14:] in t for key in KEYS)]


async def test_the_keys_never_appear_in_answers_errors_logs_or_settings(
    sandbox: Any, api: RawApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tag = (await api.get("/api/tags"))["items"][0]
    texts: list[str] = []
    async with replica(sandbox, ring(NEW, OLD)) as a, replica(sandbox, ring(OTHER)) as b:
        asked = await ask(a, tag["id"])
        texts.append(asked.model_dump_json())
        with pytest.raises(MCPError) as refused:
            await answer(b, tag["id"], asked.request_state)
        texts += [str(refused.value), repr(refused.value.error)]
        done = await answer(a, tag["id"], asked.request_state)
        texts.append(done.model_dump_json())
        echoed = await a.call_tool("create_tag", {"name": f"{NEW} {OLD}"})  # a key typed into account data
        texts.append(echoed.model_dump_json())
    settings = sandbox_settings(state_secret=ring(NEW, OLD))
    texts += [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    texts += [r.getMessage() + repr(r.args) for r in caplog.records]
    assert not leaked(texts), leaked(texts)
    assert {NEW, OLD} <= set(settings.secrets())  # each key on the scrub list, not only the whole value
    assert settings.state_keys == [NEW, OLD]
    assert isinstance(done, types.CallToolResult) and done.structured_content is not None
    assert done.structured_content["outcome"] == "applied"


def test_the_ring_is_read_from_the_environment_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEME_STATE_SECRET", f" {NEW} , {OLD} ,")
    assert load_settings({}).state_keys == [NEW, OLD]
    monkeypatch.setenv("SYSTEME_STATE_SECRET", "")
    assert load_settings({}).state_secret is None  # unset: each process seals with a key of its own
    flags = [a.dest for a in _serve_parser()._actions]
    assert "state_secret" not in flags  # environment or .env only: a flag would show in process lists


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("k" * 31, "key 1 of 1 is shorter than 32 characters", id="too-short"),
        pytest.param(f"{NEW},{'k' * 20}", "key 2 of 2 is shorter than 32 characters", id="second-too-short"),
        pytest.param(f"{NEW},{NEW}", "a key is listed twice", id="twice"),
    ],
)
def test_a_bad_ring_stops_start_up_naming_the_variable_never_the_value(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as error:
        config.Settings(state_secret=value)
    (only,) = error.value.errors()
    assert problem in only["msg"] and str(only["msg"]).removeprefix("Value error, ").startswith("SYSTEME_STATE_SECRET")
    assert value not in str(error.value) and NEW not in str(error.value)
    monkeypatch.setenv("SYSTEME_STATE_SECRET", value)
    with pytest.raises(SystemExit) as stopped:
        load_settings({})
    message = str(stopped.value)
    assert message.startswith("systeme-mcp: invalid configuration: SYSTEME_STATE_SECRET: ") and problem in message
    assert value not in message and NEW not in message and "k" * 20 not in message


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://cache.example.com:6380/1"])
def test_a_redis_store_without_a_state_secret_stops_start_up(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    # the Redis store itself is another change: accept its URL here, so only the state-secret check is tested
    monkeypatch.setattr(config, "parse_store_url", lambda given: ("redis", given))
    with pytest.raises(ValidationError) as error:
        config.Settings(store=url)
    (only,) = error.value.errors()
    assert "SYSTEME_STATE_SECRET" in only["msg"] and "SYSTEME_STORE" in only["msg"]
    monkeypatch.setenv("SYSTEME_STORE", url)
    with pytest.raises(
        SystemExit, match=r"invalid configuration: SYSTEME_STORE names a shared .* SYSTEME_STATE_SECRET"
    ):
        load_settings({})
    monkeypatch.setenv("SYSTEME_STATE_SECRET", NEW)
    settings = load_settings({})
    assert settings.store_url == url and settings.state_keys == [NEW]


def test_other_stores_need_no_state_secret() -> None:
    for store in ("memory", "sqlite:///tmp/jobs.sqlite3", None):
        assert config.Settings(store=store).state_secret is None
    with pytest.raises(ValidationError, match="SYSTEME_STORE must be"):  # an unknown scheme is still refused
        config.Settings(store="postgres://db/jobs")
    assert json.loads(config.Settings(state_secret=NEW).model_dump_json())["state_secret"] == "**********"
