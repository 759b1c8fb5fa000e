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
    job_kind: Any = None  # the jobs.JobKind of the durable jobs it starts (resumed by that name after a restart)

    @property
    def name(self) -> str:
        return self.tool.name


def tool_annotations(op: Operation) -> types.ToolAnnotations:
    """The behaviour hints of a declared (or workflow) operation, in the spec's compact form (the same facts).

    The spec's defaults: readOnlyHint false, destructiveHint true, idempotentHint false, openWorldHint true; the
    middle two mean something only for a tool that is not read-only. So a read says `readOnlyHint: true` alone; a
    write says `destructiveHint` whichever way it goes (clients key their confirmations on it) and
    `idempotentHint: true` where repeating it is harmless. Every tool reaches the account: open-world, the
    default. A hint left out reads as its default, which is also the cautious reading."""
    if op.read_only:
        return types.ToolAnnotations(read_only_hint=True)
    return types.ToolAnnotations(destructive_hint=op.is_destructive, idempotent_hint=op.is_idempotent or None)


def tool_def_of(
    op: Operation, input_schema: dict[str, Any], output_schema: dict[str, Any], handler: Handler, **fields: Any
) -> ToolDef:
    """The ToolDef of an operation (declared or workflow): its MCP definition from the declaration, its handler;
    `fields`: the rest of the record (`operation`, `job_kind`)."""
    tool = types.Tool(
        name=op.name,
        title=op.title,
        description=op.description,
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=tool_annotations(op),
    )
    return ToolDef(
        tool=tool, toolset=op.toolset, read_only=op.read_only, destructive=op.is_destructive, handler=handler, **fields
    )
