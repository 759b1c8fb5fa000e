"""MCP resources: templates for a contact and the tag/course/community lists, and an account overview.
Filled in by the workflows work; the server registers these handlers."""

from __future__ import annotations

from mcp import types

from .runtime import Runtime


async def list_resources(runtime: Runtime) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[])


async def list_resource_templates(runtime: Runtime) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=[])


async def read_resource(runtime: Runtime, uri: str) -> types.ReadResourceResult:
    from mcp import MCPError

    raise MCPError(code=types.INVALID_PARAMS, message=f"Resource not found: {uri}", data={"uri": uri})
