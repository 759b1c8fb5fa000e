"""The discovery profile (issue 12, item 2): three tools — search_tools, describe_tool, call_tool — that reach every
tool of the chosen toolsets through the tool's own handler, through real MCP sessions in both protocol eras: a
whole workflow (find a contact, tag it, enroll it, delete it with confirmation) through them alone, the
2026-07-28 confirmation round trip through call_tool, answers identical to direct calls, the target's own
validation, read-only mode and toolsets, and a tool list within its token budget."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import uvicorn
from mcp import Client, MCPError, types
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from systeme_mcp.catalog import load_catalog
from systeme_mcp.cli import _serve_parser, load_settings
from systeme_mcp.discovery import DISCOVERY_TOOLS, describe_text, search
from systeme_mcp.registry import full_registry, select
from systeme_mcp.runtime import Runtime, open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.transport import http_app

from .conftest import ERAS, sandbox_settings
from .helpers import RawApi, requests_seen, text

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
TOKEN_BUDGET = 1_200  # o200k tokens of the whole discovery tools/list (issue 12)
CHAR_BUDGET = 4_000  # characters of it: the budget's proxy where the tokenizer is not installed


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"profile": "discover", "toolsets": ["all"], "confirm_destructive": True}


class Asker:
    """An elicitation callback that accepts every confirmation, keeping the questions asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})


@pytest.fixture(params=ERAS)
async def confirming(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[tuple[Client, Asker]]:
    """A session whose client shows confirmation questions (and accepts them), in each protocol era."""
    asker = Asker()
    mode = "legacy" if request.param == "legacy" else "auto"
    async with Client(create_server(runtime), mode=mode, cache=None, elicitation_callback=asker) as client:
        yield client, asker


TOOLS = full_registry(load_catalog())


async def discover(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """A discovery tool's answer: it succeeds, and its structured content matches its output schema."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    schema = next(t.output_schema for t in (await client.list_tools()).tools if t.name == tool)
    assert result.structured_content is not None and schema is not None
    jsonschema.validate(result.structured_content, schema)
    return {**result.structured_content, "text": text(result)}


async def through(client: Client, name: str, /, **arguments: Any) -> types.CallToolResult:
    """`name` called through call_tool; a success's structured content matches the target's own output schema
    (what the SDK client checks on a direct call)."""
    result = await client.call_tool("call_tool", {"name": name, "arguments": arguments})
    schema = TOOLS[name].tool.output_schema if name in TOOLS else None
    if not result.is_error and schema is not None:
        jsonschema.validate(result.structured_content, schema)
    return result


async def ok(client: Client, name: str, /, **arguments: Any) -> dict[str, Any]:
    result = await through(client, name, **arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


# ---------------------------------------------------------------- the tool list
async def test_the_profile_lists_exactly_the_three_tools_with_honest_annotations(mcp: Client) -> None:
    tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert list(tools) == list(DISCOVERY_TOOLS)
    for name in ("search_tools", "describe_tool"):  # they only read the catalog
        a = tools[name].annotations
        assert a is not None and a.read_only_hint is True and a.destructive_hint is False
        assert a.open_world_hint is False
        schema = tools[name].output_schema
        assert schema is not None
        jsonschema.Draft202012Validator.check_schema(schema)
    call = tools["call_tool"]
    assert call.annotations is not None
    assert call.annotations.read_only_hint is False and call.annotations.destructive_hint is True
    assert call.annotations.idempotent_hint is False and call.annotations.open_world_hint is True
    assert call.output_schema is None, "its answer is the target's: no schema of its own to reject it"
    for tool in tools.values():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["additionalProperties"] is False
        assert all(p.get("description") for p in tool.input_schema["properties"].values())


def _token_counts(texts: list[str]) -> list[int] | None:
    """o200k token counts through the benchmark's js-tiktoken (benchmarks/tokens.py), or None if not installed."""
    script = ROOT / ".bench" / "count_tokens.mjs"
    node = shutil.which("node")
    if node is None or not (ROOT / ".bench" / "node_modules" / "js-tiktoken").exists() or not script.exists():
        return None
    run = subprocess.run([node, str(script)], input=json.dumps(texts), capture_output=True, text=True, check=True)
    counts: list[int] = json.loads(run.stdout)
    return counts


async def test_the_whole_tool_list_stays_within_its_budget(sandbox: Any) -> None:
    payloads = []
    for overrides in ({"toolsets": ["all"]}, {}, {"toolsets": ["all"], "read_only": True}):
        settings = sandbox_settings(profile="discover", confirm_destructive=True, **overrides)
        async with open_runtime(settings, sandbox=sandbox) as runtime, Client(create_server(runtime)) as client:
            listed = await client.session.list_tools()
        payloads.append(listed.model_dump_json(by_alias=True, exclude_none=True))
        assert len(payloads[-1]) <= CHAR_BUDGET, (overrides, len(payloads[-1]))
    counts = _token_counts(payloads)  # one run of the tokenizer: it takes seconds to start
    if counts is None:
        pytest.skip("js-tiktoken not installed (python benchmarks/tokens.py installs it into .bench/)")
    assert max(counts) <= TOKEN_BUDGET, counts


# ---------------------------------------------------------------- the workflow, through the three tools alone
async def test_a_workflow_through_the_discovery_tools_alone(
    confirming: tuple[Client, Asker], api: RawApi, sandbox: Any
) -> None:
    client, asker = confirming
    assert [t.name for t in (await client.list_tools()).tools] == list(DISCOVERY_TOOLS)
    # find the tool, then learn its arguments
    found = await discover(client, "search_tools", query="contact by email")
    assert found["tools"][0]["name"] == "get_contact_by_email"
    assert found["text"].splitlines()[1].startswith("get_contact_by_email — ") and "[read]" in found["text"]
    described = await discover(client, "describe_tool", name="get_contact_by_email")
    assert described["input_schema"] == TOOLS["get_contact_by_email"].tool.input_schema
    assert described["output_schema"] == TOOLS["get_contact_by_email"].tool.output_schema
    assert "- email: email, required." in described["text"]
    # find the contact, tag it, enroll it
    contact = (await api.get("/api/contacts"))["items"][0]
    got = await ok(client, "get_contact_by_email", email=contact["email"].upper())
    assert got["found"] is True and got["item"]["id"] == contact["id"]
    tag = await ok(client, "create_tag", name="Found by discovery")
    assert tag["outcome"] == "applied"
    tagged = await ok(client, "add_tag_to_contact", contact_id=contact["id"], tag_id=tag["item"]["id"])
    assert tagged["outcome"] == "applied"
    tools = (await discover(client, "search_tools", query="enroll course"))["tools"]
    assert tools[0]["name"] == "create_enrollment" and tools[0]["kind"] == "write"
    course_id = (await ok(client, "list_courses"))["items"][0]["id"]
    enrolled = await ok(
        client, "create_enrollment", course_id=course_id, contact_id=contact["id"], access_type="full_access"
    )
    assert enrolled["outcome"] == "applied" and enrolled["item"]["course_id"] == course_id
    assert tag["item"]["id"] in [t["id"] for t in (await api.get(f"/api/contacts/{contact['id']}"))["tags"]]
    enrollments = await api.get("/api/school/enrollments", course=course_id, contact=contact["id"])
    assert len(enrollments["items"]) == 1
    # delete it: the user is asked (2025-11-25: elicitation/create; 2026-07-28: InputRequiredResult and retry)
    assert asker.asked == []
    deleted = await ok(client, "delete_contact", contact_id=contact["id"])
    assert deleted["outcome"] == "applied"
    assert len(asker.asked) == 1 and contact["email"] in asker.asked[0]
    assert await api.status(f"/api/contacts/{contact['id']}") == 404


async def test_the_modern_confirmation_round_trips_through_call_tool_and_binds_the_target_call(
    sandbox: Any, api: RawApi
) -> None:
    tags = (await api.get("/api/tags"))["items"]
    first_id, other_id = tags[0]["id"], tags[1]["id"]
    settings = sandbox_settings(profile="discover", confirm_destructive=True)
    async with open_runtime(settings, sandbox=sandbox) as runtime:  # noqa: SIM117 (the client needs the runtime)
        async with Client(create_server(runtime), elicitation_callback=Asker()) as client:
            assert client.protocol_version in MODERN_PROTOCOL_VERSIONS
            call = {"name": "delete_tag", "arguments": {"tag_id": first_id}}
            asked = await client.session.call_tool("call_tool", call, allow_input_required=True)
            assert isinstance(asked, types.InputRequiredResult)
            state = asked.request_state
            assert state is not None and "delete_tag" not in state  # sealed by the SDK's RequestStateBoundary
            request = (asked.input_requests or {})["confirm"]
            assert isinstance(request, types.ElicitRequest)
            assert isinstance(request.params, types.ElicitRequestFormParams)
            assert tags[0]["name"] in request.params.message
            yes: dict[str, Any] = {"confirm": types.ElicitResult(action="accept", content={"confirm": True})}
            before = requests_seen(sandbox)
            other = {"name": "delete_tag", "arguments": {"tag_id": other_id}}
            forged = json.dumps({"args": {"tag_id": first_id}, "tool": "delete_tag"}, sort_keys=True)
            for arguments, request_state in ((other, state), (call, forged)):  # another call's, or unsealed
                with pytest.raises(MCPError, match="Invalid or expired requestState"):
                    await client.session.call_tool(
                        "call_tool", arguments, input_responses=yes, request_state=request_state
                    )
            assert requests_seen(sandbox) == before
            done = await client.session.call_tool(
                "call_tool", call, input_responses=yes, request_state=state, allow_input_required=True
            )
            assert isinstance(done, types.CallToolResult) and not done.is_error, done
            assert done.structured_content is not None and done.structured_content["outcome"] == "applied"
    assert await api.status(f"/api/tags/{first_id}") == 404
    assert await api.status(f"/api/tags/{other_id}") == 200


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_confirmation_through_call_tool_over_streamable_http(sandbox: Any, api: RawApi, mode: str) -> None:
    tag = (await api.get("/api/tags"))["items"][0]
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = int(sock.getsockname()[1])
        settings = sandbox_settings(profile="discover", confirm_destructive=True, port=port)
        async with open_runtime(settings, sandbox=sandbox) as runtime, anyio.create_task_group() as tg:
            app = http_app(create_server(runtime), settings)
            server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
            tg.start_soon(server.serve, [sock])
            asker = Asker()
            async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode, elicitation_callback=asker) as client:
                assert (client.protocol_version in MODERN_PROTOCOL_VERSIONS) is (mode == "auto")
                deleted = await ok(client, "delete_tag", tag_id=tag["id"])
            server.should_exit = True
    assert deleted["outcome"] == "applied" and len(asker.asked) == 1 and tag["name"] in asker.asked[0]
    assert await api.status(f"/api/tags/{tag['id']}") == 404


async def test_without_elicitation_confirm_true_goes_inside_the_arguments(mcp: Client, api: RawApi) -> None:
    hook = (await api.get("/api/webhooks"))["items"][0]
    first = await through(mcp, "delete_webhook", webhook_id=hook["id"])
    assert first.is_error and first.structured_content is not None
    assert first.structured_content["error"] == {"kind": "needs_confirmation"}
    assert f'delete_webhook(webhook_id="{hook["id"]}", confirm=true)' in text(first)
    beside = await mcp.call_tool(
        "call_tool", {"name": "delete_webhook", "arguments": {"webhook_id": hook["id"]}, "confirm": True}
    )
    assert beside.is_error and "`confirm`: unknown argument" in text(beside) and "inside `arguments`" in text(beside)
    assert await api.status(f"/api/webhooks/{hook['id']}") == 200
    second = await ok(mcp, "delete_webhook", webhook_id=hook["id"], confirm=True)
    assert second["outcome"] == "applied"
    assert await api.status(f"/api/webhooks/{hook['id']}") == 404


# ---------------------------------------------------------------- the target's own handler: same answers
@pytest.fixture
async def direct(sandbox: Any) -> AsyncIterator[Client]:
    """A full-profile session on the same sandbox, to compare answers with."""
    settings = sandbox_settings(toolsets=["all"], confirm_destructive=True)
    async with open_runtime(settings, sandbox=sandbox) as runtime, Client(create_server(runtime)) as client:
        yield client


INVALID = [
    ("create_contact", {"email": "not-an-email"}, "email"),
    ("list_contacts", {"limit": 5}, "limit"),
    ("add_tag_to_contact", {"contact_id": 1}, "tag_id"),
    ("bulk_add_tag", {"tag_id": 1, "filter": "everyone"}, "filter"),
    ("get_tag", {"tag_id": 1, "bogus": True}, "bogus"),
]


@pytest.mark.parametrize(("name", "arguments", "culprit"), INVALID)
async def test_an_invalid_argument_is_refused_by_the_target_itself_with_nothing_sent(
    mcp: Client, direct: Client, sandbox: Any, name: str, arguments: dict[str, Any], culprit: str
) -> None:
    before = requests_seen(sandbox)
    result = await through(mcp, name, **arguments)
    assert requests_seen(sandbox) == before, "an invalid call reached the API"
    assert result.is_error and f"`{culprit}`" in text(result)
    assert f"Invalid arguments for {name} (nothing was sent)" in text(result)
    if not TOOLS[name].read_only:
        assert result.structured_content is not None
        assert result.structured_content["error"] == {"kind": "invalid_arguments"}
    same = await direct.call_tool(name, arguments)
    assert (text(result), result.structured_content) == (text(same), same.structured_content)


async def test_answers_are_those_of_a_direct_call_next_page_call_included(mcp: Client, direct: Client) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_contacts", {"limit": 10}),
        ("get_contact_by_email", {"email": "nobody@example.com"}),
    ]
    for name, arguments in calls:
        via = await through(mcp, name, **arguments)
        same = await direct.call_tool(name, arguments)
        assert (text(via), via.structured_content, via.is_error) == (text(same), same.structured_content, same.is_error)
    page = await through(mcp, "list_contacts", limit=10)
    assert page.structured_content is not None and page.structured_content["next"]["tool"] == "list_contacts"
    assert "\nmore: list_contacts(" in text(page), "the server's own next-page line is kept, not quoted"


# ---------------------------------------------------------------- what is not loaded
@pytest.mark.parametrize("runtime", [{"read_only": True}], indirect=True)
async def test_read_only_hides_writes_from_search_and_call_tool_refuses_them(mcp: Client, sandbox: Any) -> None:
    reads = [n for n, t in TOOLS.items() if t.read_only]
    every = await discover(mcp, "search_tools", query="*")
    assert every["total"] == len(reads)
    for query in ("delete contact", "create tag", "enroll course", "remove"):
        found = (await discover(mcp, "search_tools", query=query))["tools"]
        assert all(t["kind"] == "read" and TOOLS[t["name"]].read_only for t in found), found
    call = next(t for t in (await mcp.list_tools()).tools if t.name == "call_tool")
    assert call.annotations is not None and call.annotations.read_only_hint is True
    assert call.annotations.destructive_hint is False, "nothing it reaches can change anything"
    before = requests_seen(sandbox)
    refused = await through(mcp, "create_contact", email="new@example.com")
    assert refused.is_error and "read-only" in text(refused) and "Nothing was sent" in text(refused)
    assert refused.structured_content is not None
    assert refused.structured_content["outcome"] == "not_applied"
    assert refused.structured_content["error"] == {"kind": "not_loaded"}
    described = await mcp.call_tool("describe_tool", {"name": "delete_contact"})
    assert described.is_error and "read-only" in text(described)
    assert requests_seen(sandbox) == before


@pytest.mark.parametrize("runtime", [{"toolsets": ["tags"]}], indirect=True)
async def test_only_the_chosen_toolsets_are_reached(mcp: Client, sandbox: Any) -> None:
    chosen = select(TOOLS, ["tags"], read_only=False)
    assert (await discover(mcp, "search_tools", query="*"))["total"] == len(chosen)
    found = await discover(mcp, "search_tools", query="contact")
    assert found["tools"] and all(t["toolset"] == "tags" for t in found["tools"])
    search = next(t for t in (await mcp.list_tools()).tools if t.name == "search_tools")
    assert "toolset" not in search.input_schema["properties"], "one toolset: nothing to choose"
    before = requests_seen(sandbox)
    refused = await through(mcp, "list_contacts")
    assert refused.is_error and "toolset `contacts` is not loaded" in text(refused)
    assert requests_seen(sandbox) == before
    assert not (await through(mcp, "list_tags")).is_error


async def test_an_unknown_name_names_the_mode_and_suggests_search_tools(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    typo = await through(mcp, "list_contact")
    assert typo.is_error and "discovery profile" in text(typo) and "search_tools" in text(typo)
    assert "Did you mean: list_contacts" in text(typo)
    nested = await through(mcp, "search_tools", query="tag")
    assert nested.is_error and "called directly" in text(nested)
    described = await mcp.call_tool("describe_tool", {"name": "no_such_tool"})
    assert described.is_error and "search_tools" in text(described)
    for arguments in ({}, {"name": 7}, {"name": "list_tags", "arguments": [1]}):
        bad = await mcp.call_tool("call_tool", arguments)
        assert bad.is_error and "Invalid arguments for call_tool" in text(bad), text(bad)
    assert requests_seen(sandbox) == before


# ---------------------------------------------------------------- search and describe, over the whole catalog
def test_every_tool_is_found_first_by_its_own_name_and_by_its_title() -> None:
    for name, tool in TOOLS.items():
        assert search(TOOLS, name)[0].name == name
        assert name in [t.name for t in search(TOOLS, tool.tool.title or "")[:5]], tool.tool.title


def test_search_ranks_the_words_given() -> None:
    assert [t.name for t in search(TOOLS, "tag a contact")][:2] == ["add_tag_to_contact", "remove_tag_from_contact"]
    assert search(TOOLS, "subscriptions cancel")[0].name == "cancel_subscription"
    assert search(TOOLS, "Newsletter schedule")[0].name == "schedule_newsletter"
    assert all(t.toolset == "school" for t in search(TOOLS, "course", toolset="school"))
    assert "get_contact_by_email" in [t.name for t in search(TOOLS, "find a contact by email")][:3]
    assert search(TOOLS, "zebra") == []
    assert len(search(TOOLS, "*")) == len(TOOLS)


def test_describe_names_every_argument_with_its_constraints() -> None:
    for name, tool in TOOLS.items():
        described = describe_text(tool)
        schema = tool.tool.input_schema
        for arg, prop in schema["properties"].items():
            line = next(x for x in described.splitlines() if x.startswith(f"- {arg}: "))
            assert (", required." in line) is (arg in schema.get("required", [])), line
            for value in prop.get("enum", []):
                assert str(value) in line
            for bound in ("minimum", "maximum", "maxLength"):
                if bound in prop:
                    assert str(prop[bound]) in line, (name, line)
    lines = describe_text(TOOLS["create_enrollment"]).splitlines()
    assert lines[0] == "create_enrollment — Enroll contact in course [write; toolset school]"
    assert "- access_type: one of full_access|partial_access|dripping_content|partial_dripping_access, required." in (
        "\n".join(lines)
    )


# ---------------------------------------------------------------- choosing the profile
def test_the_profile_is_chosen_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYSTEME_PROFILE", raising=False)
    assert load_settings(vars(_serve_parser().parse_args([]))).profile == "full"
    assert load_settings(vars(_serve_parser().parse_args(["--profile", "discover"]))).profile == "discover"
    monkeypatch.setenv("SYSTEME_PROFILE", "discover")
    assert load_settings({}).profile == "discover"
    assert load_settings(vars(_serve_parser().parse_args(["--profile", "full"]))).profile == "full"
    monkeypatch.setenv("SYSTEME_PROFILE", "everything")
    with pytest.raises(SystemExit, match="SYSTEME_PROFILE: Input should be 'full' or 'discover'"):
        load_settings({})
