"""A human in the loop before anything is destroyed (every operation annotated destructive).

The question names exactly what will be destroyed (read first: the contact's email, the tag's name ...; for an
operation with an `audience`, also how many contacts it reaches: `audience.py`). `examine` gives the same in
words and as structured facts (`target`, `audience`), which a dry run answers too.
- The client supports elicitation: ask. In the 2025-11-25 era that is a server→client `elicitation/create`;
  in 2026-07-28 (no back-channel) the call answers `InputRequiredResult` and the client retries it with the
  user's answer in `input_responses`, proven ours by the sealed `request_state` (sealed under
  SYSTEME_STATE_SECRET's key ring when set, so another server holding the ring accepts the retry:
  `server.state_security`).
- It does not: the call must carry `confirm: true`; without it the answer says what would be destroyed and
  how to confirm, and nothing is sent.
Confirmation can be switched off for unattended automation (SYSTEME_CONFIRM_DESTRUCTIVE=0 / --no-confirm).
What the record holds is account data, typed by strangers: the question shows every value quoted and escaped
(`projection.fence`), says it is "data from the account", and is scrubbed of secrets before it is cut.
`decide` returns a `Decision`; `answers.decision` renders it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from . import audience, calls, errors
from .catalog import Operation
from .projection import cut, cut_line, items_of, line, pick, project, target_words
from .runtime import CallContext

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean", "title": "Yes, do it", "description": "Check to proceed"}},
    "required": ["confirm"],
}
KEY = "confirm"
WHAT_BUDGET = 1_500  # characters of the record shown in a question
QUESTION_BUDGET = 2_000  # characters of a whole confirmation question


@dataclass(frozen=True)
class Proceed:
    """Send it: confirmed (or confirmation is off)."""


@dataclass(frozen=True)
class NeedsConfirm:
    """The client cannot ask the user: the model must, then repeat the call with `confirm: true`."""

    what: str
    retry: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)  # the target read and the audience, structured


@dataclass(frozen=True)
class Target:
    """What a call would change: in words (for questions), and as structured facts (`target`: the record read;
    `audience`: who it reaches)."""

    words: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """Ask the user (2026-07-28: an InputRequiredResult whose retry carries the answer)."""

    question: str
    state: str


@dataclass(frozen=True)
class Declined:
    """The user said no, or dismissed the question."""

    what: str
    reason: str


Decision = Proceed | NeedsConfirm | Ask | Declined


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


async def examine(ctx: CallContext, op: Operation, args: dict[str, Any]) -> Target:
    """What the call would change — the record read from the API where a read exists, and the audience where the
    operation declares one — in words and as structured facts."""
    words, item = await _read_target(ctx, op, args)
    facts: dict[str, Any] = {"target": item} if item else {}
    if op.audience:
        reached = await audience.count(ctx, op.audience, args)
        words, facts["audience"] = f"{words}, to {reached.words()}", reached.facts()
    return Target(words, facts)


async def describe(ctx: CallContext, op: Operation, args: dict[str, Any]) -> str:
    """What the call would destroy, in words, read from the API where a read exists."""
    return (await examine(ctx, op, args)).words


async def _read_target(ctx: CallContext, op: Operation, args: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """What the call addresses in words, and the record read (projected), where a read exists."""
    words = target_words(op, args)
    if not op.target:
        return words, None
    reader = ctx.catalog[op.target.tool]
    shape = ctx.catalog.shape(reader)
    key = op.path_params[-1]
    if shape is None or (reader.is_list and reader.params):
        return words, None  # no way to read one record by id: name it by id
    read_args = {k: v for k, v in args.items() if k in reader.params and reader.params[k].location == "path"}
    data = await calls.read(ctx, reader.name, read_args)
    data = json.loads(ctx.client.scrub(json.dumps(data)))  # secrets out before any value is cut
    if reader.is_list:
        match = [i for i in items_of(reader, data) if isinstance(i, dict) and str(i.get(shape.key)) == str(args[key])]
        if not match:
            raise errors.NotFound(status=404, detail="Not Found", request=op.path, what=words)
        data = match[0]
    elif reader.result_path:
        data = pick(data, reader.result_path)
    item = project(shape, data)
    item_line = cut_line(line(shape, item, quote=True), WHAT_BUDGET) + " (data from the account)"
    if op.target.on:
        return f"{words} on {op.target.on} {item_line}", item
    return f"{shape.noun} {item_line}", item


def _state(op: Operation, args: dict[str, Any]) -> str:
    """Names the exact call the question was about (sealed by the server's RequestStateBoundary)."""
    return json.dumps({"tool": op.name, "args": {k: v for k, v in args.items() if k != "confirm"}}, sort_keys=True)


async def decide(ctx: CallContext, op: Operation, args: dict[str, Any], what: str | None = None) -> Decision:
    """Ask (or require `confirm: true`) before a destructive call; nothing is sent unless it proceeds.
    `what` names what would be destroyed when the caller knows better than a read of the target (bulk)."""
    if not ctx.runtime.settings.confirm_destructive:
        return Proceed()
    target = Target(what) if what is not None else await examine(ctx, op, args)
    what = target.words
    if not _supports_elicitation(ctx):
        if args.get("confirm") is True:
            return Proceed()
        return NeedsConfirm(what, {k: v for k, v in args.items() if k != "confirm"} | {"confirm": True}, target.facts)
    question = cut(ctx.client.scrub(f"{op.title}: {what}? This cannot be undone."), QUESTION_BUDGET)
    if _modern(ctx):
        params = ctx.params
        reply = (getattr(params, "input_responses", None) or {}).get(KEY)
        # only an answer to our own question counts: the sealed request_state proves we asked it
        if reply is None or getattr(params, "request_state", None) != _state(op, args):
            return Ask(question, _state(op, args))
    else:
        ctx.awaiting_user = True  # the call budget does not turn a call into a job while the user decides
        try:
            reply = await ctx.request.session.elicit_form(question, SCHEMA, related_request_id=ctx.request.request_id)
        finally:
            ctx.awaiting_user = False
    action = getattr(reply, "action", None)
    content = getattr(reply, "content", None) or {}
    if action == "accept" and content.get(KEY) is True:
        return Proceed()
    return Declined(what, "declined" if action in ("decline", "accept") else "cancelled")
