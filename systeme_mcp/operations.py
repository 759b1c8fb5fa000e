"""Declared operations as tools: validate → build the request → (preview) → confirm → (steps first) → execute →
answer.

One handler serves every declaration; what differs per operation is data in its TOML table. An operation that
declares a local `dry_run` argument answers a preview when it is true (the record read and the audience, as its
confirmation names them); one that declares `before` steps runs those writes first and sends its own request
only if every one of them applied.
"""

from __future__ import annotations

from typing import Any

from . import answers, calls, confirm, errors, repeats
from .answer_schemas import output_schema
from .calls import Outcome, OutcomeKind
from .catalog import Catalog, Operation
from .runtime import CallContext
from .schemas import ArgumentError, ArgumentsModel, input_schema
from .tools import ToolDef, tool_def_of
from .wire import build_request


async def run(ctx: CallContext, op: Operation, model: ArgumentsModel, arguments: dict[str, Any]) -> answers.Answer:
    """One call of a declared operation, answered (never raises for anything the model could fix)."""
    try:
        args = model.validate(arguments)
    except ArgumentError as exc:
        return answers.invalid_arguments(exc, write=not op.read_only)
    plan = build_request(op, args)
    previewing = args.get("dry_run") is True and op.params["dry_run"].location == "local"  # ours, not the API's
    if previewing or (op.is_destructive and not ctx.client.settings.read_only):
        repeat = None if previewing else await repeats.repeated(ctx, op, args)
        if repeat is not None:  # a retry of what was done: not asked again (nor refused: the record is gone)
            return answers.operation(ctx.catalog, op, args, repeat)
        try:
            if previewing:
                return answers.preview(op, args, await confirm.examine(ctx, op, args))
            decided = await confirm.decide(ctx, op, args)
        except errors.SystemeError as exc:  # reading what would be destroyed failed: nothing was sent
            lead = f"Nothing was sent: reading what {op.name} would change failed first. "
            return answers.operation(ctx.catalog, op, args, Outcome(OutcomeKind.NOT_APPLIED, error=exc), lead=lead)
        if not isinstance(decided, confirm.Proceed):
            return answers.decision(op, decided)
    async with await repeats.claim(ctx, op, args) as ticket:
        if ticket.answer is not None:  # an identical call applied it, or is still sending it: not sent
            return answers.operation(ctx.catalog, op, args, ticket.answer)
        if ticket.doubt:  # an identical call may have applied it: settled without ever sending it twice
            ticket.outcome = await ticket.recover()
            return answers.operation(ctx.catalog, op, args, ticket.outcome)
        ticket.outcome = Outcome(OutcomeKind.NOT_APPLIED)
        done: list[str] = []
        for step in op.before:
            step_op, step_args = ctx.catalog[step.tool], step.arguments(args)
            first = await calls.execute(ctx, step_op, step_args)
            if first.error is not None:
                after = f" (after {', '.join(done)} applied)" if done else ""
                lead = f"{op.name} was not sent: {step.tool}, which it runs first, failed{after}. "
                return answers.operation(ctx.catalog, step_op, step_args, first, lead=lead)
            done.append(step.tool)
        if ticket.active:
            ticket.outcome = ticket.unsettled
        ticket.outcome = await calls.execute(ctx, op, args, plan, touch=not ticket.active)
        return answers.operation(ctx.catalog, op, args, ticket.outcome)


def declared_tool(catalog: Catalog, op: Operation) -> ToolDef:
    """The ToolDef of a declared operation: schema, output schema, annotations and handler all derived."""
    model = ArgumentsModel(op)

    async def handler(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        return await run(ctx, op, model, arguments)

    return tool_def_of(op, input_schema(op), output_schema(catalog, op), handler, operation=op)
