"""Running one declared operation: validate → build the request → send → say plainly what happened.

Every answer says whether a write happened (`outcome`: applied / already_applied / not_applied); a failure is
an isError result whose text names what went wrong and what to do next, never a traceback.
"""

from __future__ import annotations

from typing import Any

from mcp import types

from . import confirm, errors
from .catalog import Operation
from .exactly_once import OutcomeUnknown, ambiguous, recover
from .runtime import CallContext
from .schemas import ArgumentError, validate_arguments
from .summaries import render_item, render_list
from .tools import ToolDef
from .wire import RequestPlan, build_request

VERBS = {"GET": "", "POST": "Created", "PUT": "Updated", "PATCH": "Updated", "DELETE": "Deleted"}


def text_result(text: str, structured: dict[str, Any] | None = None, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=error
    )


def error_result(text: str) -> types.CallToolResult:
    return text_result(text, error=True)


def target_words(op: Operation, args: dict[str, Any]) -> str:
    """`contact 812` / `contact field company_name` — what a path addresses, for messages."""
    noun = (op.target.noun if op.target and op.target.noun else "") or op.path_params[-1].removesuffix("_id")
    noun = noun.replace("_", " ")
    ident = args.get(op.path_params[-1]) if op.path_params else None
    return f"{noun} {ident}" if ident is not None else noun


def _failure_text(ctx: CallContext, op: Operation, args: dict[str, Any], exc: errors.SystemeError) -> str:
    """What failed, whether a write happened, and what to do next (secrets scrubbed)."""
    if isinstance(exc, errors.NotFound) and op.not_found:
        text = f"{op.not_found.format(**args)} (404)."
    else:
        if isinstance(exc, errors.NotFound):
            exc.what = target_words(op, args) if op.path_params else ""
        text = exc.message()
    if not op.read_only:
        if ambiguous(exc):
            text += f" The {op.method} may or may not have been applied: outcome unknown. " + (
                "Repeating it is safe (it cannot apply twice)."
                if op.is_idempotent
                else "Check with a read (e.g. the matching get/list tool) before retrying."
            )
        elif isinstance(exc, errors.TransportError):
            text += " The request never reached the API: nothing was changed; it is safe to retry."
        elif isinstance(exc, errors.ApiError) and exc.status < 500 and "nothing was changed" not in text:
            text += " Nothing was changed."
    return ctx.client.scrub(text)


def success(
    ctx: CallContext, op: Operation, args: dict[str, Any], data: Any, *, outcome: str, note: str = ""
) -> types.CallToolResult:
    catalog = ctx.catalog
    if op.is_list:
        text, page = render_list(catalog, op, args, data)
        return text_result(text, page)
    structured: dict[str, Any] = {}
    if op.shape_name and data not in (None, "", {}):
        verb = VERBS[op.method] if outcome == "applied" else ""
        text, structured = render_item(catalog, op, data, verb)
    elif op.success:
        text = op.success.format(**args)
    else:
        text = f"{VERBS[op.method] or 'Done:'} {target_words(op, args)}."
    if outcome == "already_applied":
        text = f"Already done (nothing changed): {text}"
    if note:
        text += f"\n(The first answer was lost; {note}.)"
    if not op.read_only:
        structured["outcome"] = outcome
    structured["message"] = text.split("\n", 1)[0]
    return text_result(text, structured)


async def run(
    ctx: CallContext, tool: ToolDef, arguments: dict[str, Any] | None
) -> types.CallToolResult | types.InputRequiredResult:
    """The handler shared by every declared operation."""
    op = tool.operation
    assert op is not None
    try:
        args = validate_arguments(op, tool.model, arguments)
    except ArgumentError as exc:
        return error_result(str(exc))
    plan = build_request(op, args)
    if op.is_destructive and not ctx.client.settings.read_only:
        try:
            decision = await confirm.decide(ctx, op, args, ctx.params)
        except errors.SystemeError as exc:
            return error_result(_failure_text(ctx, op, args, exc))
        if decision.answer is not None:
            return decision.answer
    try:
        answer = await ctx.client.send(plan)
    except errors.NotFound as exc:
        if op.method == "DELETE" and exc.attempts > 1:
            return success(ctx, op, args, None, outcome="already_applied")
        return error_result(_failure_text(ctx, op, args, exc))
    except errors.SystemeError as exc:
        if op.is_idempotent or not ambiguous(exc):
            return error_result(_failure_text(ctx, op, args, exc))
        try:
            recovered = await recover(ctx, op, args, plan, exc)
        except OutcomeUnknown as unknown:
            return error_result(ctx.client.scrub(unknown.message()))
        except errors.SystemeError as later:
            return error_result(_failure_text(ctx, op, args, later))
        return success(ctx, op, args, recovered.data, outcome=recovered.outcome, note=recovered.how)
    return success(ctx, op, args, answer.data, outcome="applied")


def plan_for(op: Operation, tool: ToolDef, arguments: dict[str, Any]) -> RequestPlan:
    """The request a call would send (validating first); used by previews and workflows."""
    return build_request(op, validate_arguments(op, tool.model, arguments))
