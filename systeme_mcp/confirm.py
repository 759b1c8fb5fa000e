"""A human in the loop before anything is destroyed (delete_*, cancel_subscription, remove_tag_from_contact).

The question names exactly what will be destroyed (read first: the contact's email, the tag's name ...).
- The client supports elicitation: ask. In the 2025-11-25 era that is a server→client `elicitation/create`;
  in 2026-07-28 (no back-channel) the call answers `InputRequiredResult` and the client retries it with the
  user's answer in `input_responses`.
- It does not: the call must carry `confirm: true`; without it the answer says what would be destroyed and
  how to confirm, and nothing is sent.
Confirmation can be switched off for unattended automation (SYSTEME_CONFIRM_DESTRUCTIVE=0 / --no-confirm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from . import errors
from .catalog import Operation
from .runtime import CallContext
from .summaries import _get, call_text, line, project
from .wire import build_request

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean", "title": "Yes, do it", "description": "Check to proceed"}},
    "required": ["confirm"],
}
KEY = "confirm"


@dataclass
class Decision:
    """`proceed`, or else the result to return instead (declined, needs confirmation, or a question)."""

    proceed: bool
    answer: types.CallToolResult | types.InputRequiredResult | None = None


def _modern(ctx: CallContext) -> bool:
    return getattr(ctx.request, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS


def _supports_elicitation(ctx: CallContext) -> bool:
    """The client can show a form, and (2025-11-25) this connection can carry a server→client request."""
    session = getattr(ctx.request, "session", None)
    caps = getattr(session, "client_capabilities", None)
    elicitation = getattr(caps, "elicitation", None) if caps else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    return _modern(ctx) or bool(getattr(session, "can_send_request", False))


async def describe(ctx: CallContext, op: Operation, args: dict[str, Any]) -> str:
    """What the call would destroy, in words, read from the API where a read exists."""
    from .operations import target_words

    words = target_words(op, args)
    if not op.target:
        return words
    reader = ctx.catalog[op.target.tool]
    shape = ctx.catalog.shape(reader)
    key = op.path_params[-1]
    if shape is None or (reader.is_list and reader.params):
        return words  # no way to read one record by id: name it by id
    read_args = {k: v for k, v in args.items() if k in reader.params and reader.params[k].location == "path"}
    answer = await ctx.client.send(build_request(reader, read_args))
    data = answer.data
    if reader.is_list:
        items = _get(data, reader.items_path) if isinstance(data, dict) else None
        match = [i for i in items or [] if str(i.get(shape.key)) == str(args.get(key))]
        if not match:
            raise errors.NotFound(status=404, detail="Not Found", request=op.path, what=words)
        data = match[0]
    elif reader.result_path:
        data = _get(data, reader.result_path)
    item_line = line(shape, project(shape, data))
    if reader.name == "get_contact" and op.name != "delete_contact":
        return f"{words} on contact {item_line}"
    return f"{shape.noun} {item_line}"


def _state(op: Operation, args: dict[str, Any]) -> str:
    """Names the exact call the question was about (sealed by the server's RequestStateBoundary)."""
    return json.dumps({"tool": op.name, "args": {k: v for k, v in args.items() if k != "confirm"}}, sort_keys=True)


def _text(text: str, *, error: bool = False, outcome: str | None = None) -> types.CallToolResult:
    structured = {"message": text, "outcome": outcome} if outcome else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=error
    )


async def decide(ctx: CallContext, op: Operation, args: dict[str, Any], params: Any) -> Decision:
    """Ask (or require `confirm: true`) before a destructive call; nothing is sent unless it proceeds."""
    if not ctx.runtime.settings.confirm_destructive:
        return Decision(True)
    what = await describe(ctx, op, args)
    question = f"{op.title}: {what}? This cannot be undone."
    if not _supports_elicitation(ctx):
        if args.get("confirm") is True:
            return Decision(True)
        retry = {k: v for k, v in args.items() if k != "confirm"} | {"confirm": True}
        text = (
            f"Not done yet: this would {op.title.lower()} — {what}. It cannot be undone. Ask the user; if they "
            f"agree, call {call_text(op.name, retry)}. Nothing was sent."
        )
        return Decision(False, _text(text, error=True))
    if _modern(ctx):
        reply = (getattr(params, "input_responses", None) or {}).get(KEY)
        # only an answer to our own question counts: the sealed request_state proves we asked it
        if reply is None or getattr(params, "request_state", None) != _state(op, args):
            request = types.ElicitRequest(
                params=types.ElicitRequestFormParams(message=question, requested_schema=SCHEMA)
            )
            return Decision(
                False, types.InputRequiredResult(input_requests={KEY: request}, request_state=_state(op, args))
            )
    else:
        session = ctx.request.session
        reply = await session.elicit_form(question, SCHEMA, related_request_id=ctx.request.request_id)
    action = getattr(reply, "action", None)
    content = getattr(reply, "content", None) or {}
    if action == "accept" and content.get(KEY) is True:
        return Decision(True)
    reason = "declined" if action in ("decline", "accept") else "cancelled"
    text = f"Not done: the user {reason} ({op.title.lower()} — {what}). Nothing was sent or changed."
    return Decision(False, _text(text, outcome="not_applied"))
