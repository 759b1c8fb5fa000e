"""The answers for a tool this server does not offer: a tool that exists but is not loaded here (a tool result
saying why and which setting loads it) and a name no setting would load (the protocol's own error)."""

from __future__ import annotations

from typing import Any

from mcp import MCPError, types

from .calls import OutcomeKind
from .projection import cut, visible


def unknown_tool(name: str, close: list[str]) -> MCPError:
    """The protocol error for a tool no setting would load (both eras' spec, server/tools "Error Handling": an
    unknown tool is a JSON-RPC error -32602, e.g. "Unknown tool: invalid_tool_name"); `data` gives the name and
    the close matches this server offers. Raised, not returned: it is not a tool result."""
    shown = cut(visible(name), 80)
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    return MCPError(types.INVALID_PARAMS, f"Unknown tool: {shown}{hint}", {"name": shown, "did_you_mean": close})


WHY_NOT_LOADED = {
    "toolset": "its toolset `{toolset}` is not loaded: restart the server with SYSTEME_TOOLSETS={toolsets} "
    "(or --toolsets {toolsets})",
    "backend": "its toolset `{toolset}` applies to other backends ({backends}) only, not to this one ({backend}); "
    "SYSTEME_BACKEND / --backend and that backend's key choose it",
    "read_only": "the server runs read-only (--read-only / SYSTEME_READ_ONLY), which loads only reads: restart it "
    "without that to write",
    "profile": "the discover profile (--profile discover / SYSTEME_PROFILE) lists three tools: run it as "
    'call_tool(name="{name}", arguments={{...}})',
}


def not_loaded(facts: dict[str, Any]) -> types.CallToolResult:
    """A tool that exists but this server does not offer (`registry.NotLoaded` as a dict): why, and the setting
    that loads it. A tool execution error, so the model can pass on what the user has to change."""
    why = "; and ".join(WHY_NOT_LOADED[r].format(**facts) for r in facts["reasons"])
    text = f"{facts['name']} exists but is not loaded on this server: {why}. Nothing was sent."
    structured: dict[str, Any] = {"message": text, "error": {"kind": "not_loaded", **facts}}
    if facts["writes"]:  # a write says its outcome, refusals included
        structured["outcome"] = OutcomeKind.NOT_APPLIED.value
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=True
    )
