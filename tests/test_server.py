"""The server object: what it hands the SDK besides the handlers."""

from __future__ import annotations

import pytest

from systeme_mcp.registry import registry_for
from systeme_mcp.runtime import Runtime
from systeme_mcp.server import create_server

pytestmark = pytest.mark.anyio


async def test_one_tools_input_schema_is_looked_up_by_name(runtime: Runtime) -> None:
    """The SDK's HTTP transport needs one tool's schema per call; it must not serialise the whole list."""
    server = create_server(runtime)
    lookup = server.get_tool_input_schema
    assert lookup is not None
    registry = registry_for(runtime.settings, runtime.catalog)
    assert lookup("list_tags") == registry["list_tags"].tool.input_schema
    assert lookup("no_such_tool") is None
