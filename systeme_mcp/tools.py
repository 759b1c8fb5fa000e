"""A tool record: its public definition, the toolset that loads it, and the handler that runs it.

Every MCP tool — declared operation or workflow — is a `ToolDef`; `registry.py` assembles them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp import types

from .catalog import Operation
from .runtime import CallContext

Handler = Callable[[CallContext, dict[str, Any]], Awaitable[types.CallToolResult | types.InputRequiredResult]]


@dataclass(frozen=True)
class ToolDef:
    """One MCP tool: its public definition, the toolset that loads it, and how to call it."""

    tool: types.Tool
    toolset: str
    read_only: bool
    destructive: bool
    handler: Handler
    operation: Operation | None = None  # the declaration, for a declared operation

    @property
    def name(self) -> str:
        return self.tool.name


def tool_annotations(op: Operation) -> types.ToolAnnotations:
    """The behaviour hints of a declared (or workflow) operation."""
    return types.ToolAnnotations(
        read_only_hint=op.read_only,
        destructive_hint=op.is_destructive if not op.read_only else False,
        idempotent_hint=op.is_idempotent,
        open_world_hint=True,
    )
