"""Executing one planned request → a typed `Outcome`: did the write happen, and what came back.

This is the only place that decides what a failure means for a write:
- `ambiguous`: after a timeout, a reset or a 5xx the write may or may not have happened;
- a non-idempotent write (POST) with an ambiguous failure is settled from its declaration (`_settle`):
  `verify` reads the state back (found → applied; absent → safe to send again), `already` resends and takes
  the API's "already used / already cancelled" refusal as proof the lost attempt applied it; neither → unknown;
- "already done" is recognised on the API's own error detail and violations, never on our wording;
- an answer is believed only if it can be the declared result (`SystemeClient.expect`: JSON where a result is
  declared, a list of items for a list, an object for an item); otherwise it is an UnexpectedAnswer — for a
  write, like a 3xx or an over-large answer, one after which the write may have happened;
- one call shares one deadline (`call_deadline`): the request, its retries and any read-back to settle it.
Nothing here renders text: `answers.py` turns an `Outcome` into what the model reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import errors
from .catalog import Operation
from .policy import READ_BACK_PAGES
from .projection import pick
from .runtime import CallContext
from .subscriptions import changed_uris
from .wire import RequestPlan, build_request
from .write_identity import touched_ids


class OutcomeKind(StrEnum):
    """What a call did to the account."""

    APPLIED = "applied"  # done now (a read: answered)
    ALREADY_APPLIED = "already_applied"  # it was already so (e.g. an earlier attempt whose answer was lost)
    NOT_APPLIED = "not_applied"  # nothing changed
    UNKNOWN = "unknown"  # it may or may not have happened, and it could not be confirmed either way


OUTCOMES = tuple(kind.value for kind in OutcomeKind)


@dataclass(frozen=True)
class Outcome:
    """The typed result of one call. `note` says how a lost answer was settled; `error` why it failed."""

    kind: OutcomeKind
    data: Any = None
    note: str = ""
    error: errors.SystemeError | None = None
    repeat_of: float | None = None  # answered from an identical call made this many seconds ago (repeats.py)


def ambiguous(exc: errors.SystemeError) -> bool:
    """A failure after which a write may or may not have happened: no answer after sending, a 5xx, or an answer
    that cannot be believed (a 3xx a proxy may have sent after forwarding it, not JSON, the wrong shape, too
    large to read)."""
    if isinstance(exc, errors.TransportError):
        return exc.sent
    return isinstance(exc, (errors.ServerError, errors.UnexpectedAnswer))


def already_done(op: Operation, exc: errors.SystemeError) -> bool:
    """The API refused the request because what it asks for is already so (its own words, per `already`)."""
    if not op.already or not isinstance(exc, errors.ApiError) or exc.status not in (400, 409, 422):
        return False
    said = [exc.detail, *(str(v.get("message") or "") for v in exc.violations)]
    return any(op.already in text.lower() for text in said)


def _classify(op: Operation, exc: errors.SystemeError) -> errors.SystemeError:
    """The error as the declaration reads it (a status the operation declares as "not configured")."""
    spec = op.not_configured
    if spec and isinstance(exc, errors.ApiError) and exc.status in spec.statuses:
        return errors.NotConfigured(
            status=exc.status, detail=exc.detail, request=exc.request, feature=spec.feature, where=spec.where
        )
    return exc


def failed(op: Operation, exc: errors.SystemeError) -> Outcome:
    """The outcome of a call that ended in `exc`: unknown for a write whose failure is ambiguous."""
    exc = _classify(op, exc)
    kind = OutcomeKind.UNKNOWN if not op.read_only and ambiguous(exc) else OutcomeKind.NOT_APPLIED
    return Outcome(kind, error=exc)


async def execute(
    ctx: CallContext, op: Operation, args: dict[str, Any], plan: RequestPlan | None = None, *, touch: bool = True
) -> Outcome:
    """Send one validated call of `op` under the exactly-once rules; never raises a SystemeError. A write that
    may have applied (any outcome but not_applied) is announced to the sessions watching what it changes, and
    (`touch`) counts as touching its records (`repeats.py`: results of identical calls naming them are forgotten)."""
    outcome = await _execute(ctx, op, args, plan)
    if not op.read_only and outcome.kind != OutcomeKind.NOT_APPLIED:
        if touch:
            await ctx.runtime.touched(touched_ids(ctx.catalog, op, args, outcome.data))
        await ctx.runtime.subscriptions.notify_updated(*changed_uris(op, args), account=ctx.runtime.account)
    return outcome


async def _execute(ctx: CallContext, op: Operation, args: dict[str, Any], plan: RequestPlan | None) -> Outcome:
    plan = plan or build_request(op, args)
    deadline = ctx.client.deadline()
    try:
        answer = ctx.client.expect(op, plan, await ctx.client.send(plan, deadline=deadline), ctx.catalog.shape(op))
    except errors.NotFound as exc:
        if op.method == "DELETE" and exc.attempts > 1:
            # A DELETE is only retried after a failure that may have come after the delete was done (a lost
            # answer). A 404 on the retry then means the record is gone: most likely our first attempt deleted
            # it, and if it never existed the account is in the same state. Either way there is nothing to do.
            return Outcome(OutcomeKind.ALREADY_APPLIED, note="an earlier attempt had already deleted it")
        return failed(op, exc)
    except errors.SystemeError as exc:
        if op.read_only or op.is_idempotent or not ambiguous(exc) or isinstance(exc, errors.DeadlineExceeded):
            return failed(op, exc)  # past the deadline there is no time left to read back
        return await _settle(ctx, op, args, plan, exc, deadline)
    return Outcome(OutcomeKind.APPLIED, answer.data)


async def read(ctx: CallContext, tool: str, args: dict[str, Any]) -> Any:
    """The data of one declared read (retried by the client), checked against its declaration; raises the
    SystemeError if it fails."""
    op = ctx.catalog[tool]
    plan = build_request(op, args)
    return ctx.client.expect(op, plan, await ctx.client.send(plan), ctx.catalog.shape(op)).data


def _matches(item: Any, find: dict[str, str], args: dict[str, Any]) -> bool:
    for field, arg in find.items():
        have, want = pick(item, field), args.get(arg)
        if isinstance(have, str) and isinstance(want, str):
            if have.casefold() != want.casefold():
                return False
        elif have != want:
            return False
    return True


async def _find(ctx: CallContext, op: Operation, args: dict[str, Any], deadline: float) -> Any | None:
    """The record the write would have made, if it exists now (the `verify` list, pages followed)."""
    assert op.verify is not None
    check = ctx.catalog[op.verify.tool]
    check_args = {name: args[source] for name, source in op.verify.match.items() if source in args}
    for name, value in check_args.items():  # one id given where the read takes a list of them
        if check.params[name].type == "integer_list" and not isinstance(value, list):
            check_args[name] = [value]
    pages = ctx.client.pages(check, check_args, READ_BACK_PAGES, deadline=deadline, shape=ctx.catalog.shape(check))
    async for page in pages:
        for item in page.items:
            if _matches(item, op.verify.find, args):
                return item
    return None


async def _settle(
    ctx: CallContext,
    op: Operation,
    args: dict[str, Any],
    plan: RequestPlan,
    failure: errors.SystemeError,
    deadline: float,
) -> Outcome:
    """Settle a non-idempotent write whose answer was lost: read back, resend only if absent."""
    rounds = max(1, ctx.runtime.settings.max_attempts - 1)
    for _ in range(rounds):
        if op.verify is not None:
            try:
                found = await _find(ctx, op, args, deadline)
            except errors.SystemeError as unread:
                if ambiguous(unread) or isinstance(unread, errors.RateLimited):
                    continue  # the read-back itself failed for a passing reason: read again next round
                return Outcome(OutcomeKind.UNKNOWN, error=failure)
            if found is not None:
                await ctx.log("info", f"{op.name}: answer was lost; reading back shows it was applied")
                data = found if op.shape_name else None
                return Outcome(OutcomeKind.APPLIED, data, note="confirmed by reading it back")
        elif not op.already:
            return Outcome(OutcomeKind.UNKNOWN, error=failure)
        await ctx.log("info", f"{op.name}: answer was lost and the write is not there; sending it again")
        try:
            answer = ctx.client.expect(op, plan, await ctx.client.send(plan, deadline=deadline), ctx.catalog.shape(op))
        except errors.SystemeError as exc:
            if already_done(op, exc):
                return Outcome(OutcomeKind.ALREADY_APPLIED, note="the repeat was refused as already done")
            if ambiguous(exc):
                failure = exc
                continue
            if op.verify is None and isinstance(exc, errors.TransportError):
                break  # the repeat never arrived, and nothing read back tells whether the lost attempt applied
            return failed(op, exc)
        return Outcome(OutcomeKind.APPLIED, answer.data, note="sent again after confirming it had not been applied")
    return Outcome(OutcomeKind.UNKNOWN, error=failure)


async def resume(
    ctx: CallContext, op: Operation, args: dict[str, Any], *, found: OutcomeKind = OutcomeKind.APPLIED
) -> Outcome:
    """A write that was in flight when its runner stopped (a durable job resumed after a restart): it may or may
    not have been applied. Settled as a lost answer is: idempotent writes are sent again; otherwise read back
    where declared (found → applied, absent → sent), or resent where the API refuses a repeat as already done;
    with neither, it stays unknown rather than risk a duplicate. A declared read-back comes first even for an
    idempotent write: what is already there is not sent again. `found`: the outcome when reading back finds it
    (applied for the job's own write; already_applied when it was an earlier identical call's)."""
    if op.is_idempotent and op.verify is None:
        outcome = await execute(ctx, op, args)
        if op.method == "DELETE" and isinstance(outcome.error, errors.NotFound):
            return Outcome(OutcomeKind.ALREADY_APPLIED, note="already gone (deleted before the restart)")
        return outcome
    if op.verify is not None:
        try:
            there = await _find(ctx, op, args, ctx.client.deadline())
        except errors.SystemeError as exc:
            if op.is_idempotent:  # unread, but repeating it is harmless
                return await execute(ctx, op, args)
            return Outcome(OutcomeKind.UNKNOWN, error=exc)
        if there is not None:
            return Outcome(found, there if op.shape_name else None, note="confirmed by reading it back")
        return await execute(ctx, op, args)
    if op.already:
        outcome = await execute(ctx, op, args)
        if outcome.error is not None and already_done(op, outcome.error):
            return Outcome(OutcomeKind.ALREADY_APPLIED, note="the repeat was refused as already done")
        return outcome
    return Outcome(OutcomeKind.UNKNOWN, note="it was in flight when the server stopped, and cannot be checked")
