"""Honest refusals through real MCP sessions in both eras: a tool that exists but is not loaded says why (read-only
mode, a toolset not chosen, a backend it does not apply to, the discover profile) and the setting that loads it;
a name no setting would load is the protocol error both eras' specification defines (JSON-RPC -32602, "Unknown
tool"), with the close matches in its data."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client, MCPError, types

from systeme_mcp.cli import _serve_parser
from systeme_mcp.config import Settings
from systeme_mcp.registry import registry_for
from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server

from .conftest import ERAS
from .helpers import requests_seen

pytestmark = pytest.mark.anyio


def _refusal(result: types.CallToolResult) -> dict[str, Any]:
    """The structured `error` of a not-loaded refusal (it must be one)."""
    assert result.is_error and result.structured_content is not None
    error = result.structured_content["error"]
    assert error["kind"] == "not_loaded"
    return dict(error)


@pytest.mark.parametrize("runtime", [{"read_only": True}], indirect=True)
async def test_read_only_mode_names_itself_when_a_write_is_called(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    result = await mcp.call_tool("create_tag", {"name": "vip"})
    error = _refusal(result)
    assert (error["name"], error["toolset"], error["reasons"]) == ("create_tag", "tags", ["read_only"])
    assert error["writes"] is True
    assert result.structured_content is not None and result.structured_content["outcome"] == "not_applied"
    assert requests_seen(sandbox) == before, "nothing was sent"
    listed = {t.name for t in (await mcp.list_tools()).tools}
    assert "create_tag" not in listed and "list_tags" in listed


async def test_a_tool_of_an_unloaded_toolset_names_the_toolset_and_the_setting_that_loads_it(
    mcp: Client, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = requests_seen(sandbox)
    error = _refusal(await mcp.call_tool("bulk_add_tag", {"tag_id": 1, "contact_ids": [1]}))
    assert (error["toolset"], error["reasons"], error["toolsets"]) == ("bulk", ["toolset"], "default,bulk")
    assert requests_seen(sandbox) == before
    # the setting it names is real and loads the tool: as the environment variable and as the CLI flag
    monkeypatch.setenv("SYSTEME_TOOLSETS", error["toolsets"])
    assert "bulk_add_tag" in registry_for(Settings(backend="sandbox"))
    flag = _serve_parser().parse_args(["--toolsets", error["toolsets"]])
    assert "bulk_add_tag" in registry_for(Settings(backend="sandbox", toolsets=flag.toolsets))


@pytest.mark.parametrize("runtime", [{"toolsets": ["contacts", "tags"], "read_only": True}], indirect=True)
async def test_every_reason_is_given_and_the_named_toolsets_are_kept(mcp: Client) -> None:
    error = _refusal(await mcp.call_tool("create_enrollment", {"course_id": 1, "contact_id": 1}))
    assert error["reasons"] == ["toolset", "read_only"]
    assert error["toolsets"] == "contacts,tags,school", "the toolsets already chosen stay chosen"
    read = _refusal(await mcp.call_tool("list_courses", {}))
    assert read["reasons"] == ["toolset"] and read["writes"] is False
    assert await mcp.call_tool("list_tags", {}), "a loaded read still answers"


@pytest.mark.parametrize("mode", ERAS)
async def test_a_toolset_for_other_backends_says_so(mode: str) -> None:
    settings = Settings(backend="direct", systeme_api_key="direct-key-0123456789")
    async with open_runtime(settings) as runtime:
        client = Client(create_server(runtime), mode="legacy" if mode == "legacy" else "auto", cache=None)
        async with client:
            error = _refusal(await client.call_tool("list_connections", {}))
    assert (error["reasons"], error["backend"], error["backends"]) == (["backend"], "direct", "gateway, sandbox")


@pytest.mark.parametrize("runtime", [{"profile": "discover"}], indirect=True)
async def test_the_discover_profile_points_a_direct_call_to_call_tool(mcp: Client) -> None:
    error = _refusal(await mcp.call_tool("list_tags", {}))
    assert error["reasons"] == ["profile"] and error["writes"] is False
    through = await mcp.call_tool("call_tool", {"name": "list_tags", "arguments": {}})
    assert not through.is_error


async def test_an_unknown_tool_is_the_protocol_error_with_close_matches(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    with pytest.raises(MCPError) as refused:
        await mcp.call_tool("create_tga", {"name": "vip"})
    error = refused.value.error
    assert error.code == types.INVALID_PARAMS
    assert error.data["name"] == "create_tga" and "create_tag" in error.data["did_you_mean"]
    assert error.message.startswith("Unknown tool: create_tga")  # the wording of both eras' spec example
    with pytest.raises(MCPError) as nothing_close:
        await mcp.call_tool("zzzzzz", {})
    nothing = nothing_close.value.error
    assert nothing.code == types.INVALID_PARAMS and nothing.data["did_you_mean"] == []
    assert requests_seen(sandbox) == before
    assert not (await mcp.call_tool("list_tags", {})).is_error, "the session goes on"


@pytest.mark.parametrize("runtime", [{"read_only": True}], indirect=True)
async def test_a_long_or_invisible_unknown_name_is_bounded_and_shown(mcp: Client) -> None:
    for name in ("x\u202ey", "y" * 500):
        with pytest.raises(MCPError) as refused:
            await mcp.call_tool(name, {})
        error = refused.value.error
        assert error.code == types.INVALID_PARAMS and len(error.data["name"]) < 100 and len(error.message) < 200
        assert "\u202e" not in error.message + error.data["name"]
    assert error.data["name"].endswith("[+500 chars]"), "a cut says how much it left out"
