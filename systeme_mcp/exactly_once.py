"""Never lose or duplicate a write whose answer was lost.

The client retries a POST only when it provably never arrived. When a POST's answer is lost after sending
(timeout, reset, 5xx), `recover` decides from the declaration:
- `verify`: read the state (e.g. list_contacts(email=...)); found → it was applied; not found → it is safe
  to send again;
- `already`: send again; the API's "already used / already cancelled" answer then means the lost attempt
  applied it;
- neither: the outcome is unknown, and the answer says how to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import errors
from .catalog import Operation
from .runtime import CallContext
from .summaries import _get
from .wire import RequestPlan, build_request

MAX_PAGES = 20  # a read-back follows at most this many pages of its list


def ambiguous(exc: errors.SystemeError) -> bool:
    """A failure after which a write may or may not have happened."""
    if isinstance(exc, errors.TransportError):
        return exc.sent
    return isinstance(exc, errors.ServerError)


@dataclass
class Recovered:
    """How a write with a lost answer ended: `outcome` applied / already_applied, and the data to show."""

    outcome: str
    data: Any
    how: str


class OutcomeUnknown(errors.SystemeError):
    def __init__(self, op: Operation, args: dict[str, Any], cause: errors.SystemeError) -> None:
        self.op, self.arguments, self.cause = op, args, cause
        super().__init__(self.message())

    def message(self) -> str:
        hint = ""
        if self.op.verify:
            hint = f" Check with {self.op.verify.tool} before retrying."
        elif self.op.name == "create_connection":
            hint = ' Call list_connections(status="PENDING") to see whether a new connection appeared.'
        return (
            f"Outcome unknown: {self.cause.message()} The {self.op.name} request may or may not have been "
            f"applied, and it could not be confirmed either way.{hint}"
        )


def _matches(item: Any, find: dict[str, str], args: dict[str, Any]) -> bool:
    for field, arg in find.items():
        have, want = _get(item, field), args.get(arg)
        if isinstance(have, str) and isinstance(want, str):
            if have.casefold() != want.casefold():
                return False
        elif have != want:
            return False
    return True


async def _find(ctx: CallContext, op: Operation, args: dict[str, Any]) -> Any | None:
    """The record the write would have made, if it exists now (reads retried by the client; pages followed)."""
    assert op.verify is not None
    check = ctx.catalog[op.verify.tool]
    check_args = {name: args[source] for name, source in op.verify.match.items() if source in args}
    if check.paginated and "limit" in check.params:
        check_args["limit"] = check.params["limit"].maximum or 100
    for _ in range(MAX_PAGES):
        answer = await ctx.client.send(build_request(check, check_args))
        data = answer.data
        items: Any = _get(data, check.items_path) if check.is_list and isinstance(data, dict) else [data]
        items = items if isinstance(items, list) else []
        for item in items:
            if _matches(item, op.verify.find, args):
                return item
        last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
        if not (check.paginated and isinstance(data, dict) and data.get("hasMore") and last is not None):
            return None
        check_args["starting_after"] = last
    return None


async def recover(
    ctx: CallContext, op: Operation, args: dict[str, Any], plan: RequestPlan, failure: errors.SystemeError
) -> Recovered:
    """Settle a non-idempotent write whose answer was lost; raise if it cannot be settled."""
    rounds = max(1, ctx.runtime.settings.max_attempts - 1)
    for _ in range(rounds):
        if op.verify is not None:
            try:
                found = await _find(ctx, op, args)
            except errors.SystemeError as unread:
                if ambiguous(unread) or isinstance(unread, errors.RateLimited):
                    continue  # the read-back itself failed for a passing reason: read again next round
                raise OutcomeUnknown(op, args, failure) from None
            if found is not None:
                await ctx.log("info", f"{op.name}: answer was lost; reading back shows it was applied")
                return Recovered("applied", found if op.shape_name else None, "confirmed by reading it back")
        elif not op.already:
            raise OutcomeUnknown(op, args, failure)
        await ctx.log("info", f"{op.name}: answer was lost and the write is not there; sending it again")
        try:
            answer = await ctx.client.send(plan)
        except errors.ApiError as exc:
            if op.already and exc.status in (400, 409, 422) and op.already in exc.message().lower():
                return Recovered("already_applied", None, "the repeat was refused as already done")
            if ambiguous(exc):
                failure = exc
                continue
            raise
        except errors.TransportError as exc:
            if not exc.sent:
                raise
            failure = exc
            continue
        return Recovered("applied", answer.data, "sent again after confirming it had not been applied")
    raise OutcomeUnknown(op, args, failure)
