"""MCP prompts for common jobs, and argument completions. Filled in by the workflows work."""

from __future__ import annotations

from mcp import types

from .runtime import Runtime


async def list_prompts(runtime: Runtime) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=[])


async def get_prompt(runtime: Runtime, name: str, arguments: dict[str, str]) -> types.GetPromptResult:
    from mcp import MCPError

    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name}")


async def complete(runtime: Runtime, params: types.CompleteRequestParams) -> types.CompleteResult:
    return types.CompleteResult(completion=types.Completion(values=[], total=0, has_more=False))
