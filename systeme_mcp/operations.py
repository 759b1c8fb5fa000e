"""Declared operations as tools: validate → build the request → confirm → execute → answer.

One handler serves every declaration; what differs per operation is data in its TOML table.
"""

from __future__ import annotations

from typing import Any

from mcp import types

from . import answers, calls, confirm, errors
from .answer_schemas import output_schema
from .calls import Outcome, OutcomeKind
from .catalog import Catalog, Operation
from .runtime import CallContext
from .schemas import ArgumentError, ArgumentsModel, input_schema
from .tools import ToolDef, tool_annotations
from .wire import build_request


async def run(ctx: CallContext, op: Operation, model: ArgumentsModel, arguments: dict[str, Any]) -> answers.Answer:
    """One call of a declared operation, answered (never raises for anything the model could fix)."""
    try:
        args = model.validate(arguments)
    except ArgumentError as exc:
        return answers.invalid_arguments(exc, write=not op.read_only)
    plan = build_request(op, args)
    if op.is_destructive and not ctx.client.settings.read_only:
        try:
            decided = await confirm.decide(ctx, op, args)
        except errors.SystemeError as exc:  # reading what would be destroyed failed: nothing was sent
            lead = f"Nothing was sent: reading what {op.name} would change failed first. "
            return answers.operation(ctx.catalog, op, args, Outcome(OutcomeKind.NOT_APPLIED, error=exc), lead=lead)
        if not isinstance(decided, confirm.Proceed):
            return answers.decision(op, decided)
    outcome = await calls.execute(ctx, op, args, plan)
    return answers.operation(ctx.catalog, op, args, outcome)


def declared_tool(catalog: Catalog, op: Operation) -> ToolDef:
    """The ToolDef of a declared operation: schema, output schema, annotations and handler all derived."""
    model = ArgumentsModel(op)

    async def handler(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        return await run(ctx, op, model, arguments)

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
        handler=handler,
        operation=op,
    )
