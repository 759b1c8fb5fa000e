"""The tool registry: every MCP tool as (definition, handler), built once from the catalog (+ workflows).

A `ToolDef` carries what the server needs to list, filter (toolsets, read-only) and call a tool. Declared
operations all share one handler (`operations.run`); workflow tools bring their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp import types

from .catalog import TOOLSET_ORDER, Catalog, Operation
from .schemas import arguments_model, input_schema
from .summaries import output_schema

if TYPE_CHECKING:
    from .runtime import CallContext

Handler = Callable[["CallContext", dict[str, Any]], Awaitable[types.CallToolResult | types.InputRequiredResult]]


@dataclass(frozen=True)
class ToolDef:
    """One MCP tool: its public definition, the toolset that loads it, and how to call it."""

    tool: types.Tool
    toolset: str
    read_only: bool
    destructive: bool
    handler: Handler | None = None  # None: a declared operation, run by operations.run
    operation: Operation | None = None
    _models: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def model(self) -> Any:
        """The pydantic arguments model of a declared operation, built on first use (keeps start-up fast)."""
        if "model" not in self._models:
            assert self.operation is not None
            self._models["model"] = arguments_model(self.operation)
        return self._models["model"]


def tool_annotations(op: Operation) -> types.ToolAnnotations:
    return types.ToolAnnotations(
        read_only_hint=op.read_only,
        destructive_hint=op.is_destructive if not op.read_only else False,
        idempotent_hint=op.is_idempotent,
        open_world_hint=True,
    )


def operation_tool(catalog: Catalog, op: Operation) -> ToolDef:
    """The ToolDef of a declared operation: schema, output schema and annotations all derived."""
    tool = types.Tool(
        name=op.name,
        title=op.title,
        description=op.description,
        input_schema=input_schema(op),
        output_schema=output_schema(catalog, op),
        annotations=tool_annotations(op),
    )
    return ToolDef(
        tool=tool,
        toolset=op.toolset,
        read_only=op.read_only,
        destructive=op.is_destructive,
        operation=op,
    )


def build_registry(catalog: Catalog, extra: list[ToolDef] | None = None) -> dict[str, ToolDef]:
    """Every tool the server can offer, by name, in declaration order."""
    registry = {op.name: operation_tool(catalog, op) for op in catalog}
    for tool in extra or []:
        if tool.name in registry:
            raise ValueError(f"tool {tool.name} is defined twice")
        registry[tool.name] = tool
    return registry


# Loaded when SYSTEME_TOOLSETS / --toolsets is not set: the core account tools. funnels, mailing and sms are
# opt-in (e.g. SYSTEME_TOOLSETS=all, or contacts,tags,mailing) so the default tool list stays affordable.
OPT_IN_TOOLSETS = ("funnels", "mailing", "sms")
DEFAULT_TOOLSETS = tuple(t for t in TOOLSET_ORDER if t not in OPT_IN_TOOLSETS)
ALL = "all"


def select(registry: dict[str, ToolDef], toolsets: list[str] | None, read_only: bool) -> dict[str, ToolDef]:
    """The tools to expose: the chosen toolsets (DEFAULT_TOOLSETS if none, every one for `all`), only
    read-only ones if asked."""
    known = sorted({t.toolset for t in registry.values()})
    unknown = [name for name in toolsets or [] if name not in known and name != ALL]
    if unknown:
        raise ValueError(f"unknown toolset(s): {', '.join(unknown)}; valid toolsets: {', '.join(known)} (or `{ALL}`)")
    chosen = set(known) if toolsets and ALL in toolsets else set(toolsets or DEFAULT_TOOLSETS)
    return {name: t for name, t in registry.items() if t.toolset in chosen and (t.read_only or not read_only)}
