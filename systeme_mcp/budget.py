"""The call budget: a tool call still running after `call_budget` seconds answers with a job and carries on.

Most clients give up on a call after 60 s. A call runs in the job runner's task group, so it can outlive its
request; the request waits for it up to the budget (longer while a question to the user is open — that answer
belongs to this request). A declared read (one request, no side effect) is the exception: it runs in the
request's own task, sparing every read a task and two hand-overs on the event loop; past the budget it is
stopped and run again from the start as a job of kind `call` (reading twice changes nothing). Past the budget:
- a call that started a durable job of its own (bulk, import, export) answers with that job, and the job goes
  on (those tools, and the job tools, answer by the budget themselves; the grace here is a backstop);
- any other call becomes a job of kind `call`: it goes on in the background and its answer, when it comes, is
  the job's report (get_job). If the process stops first, a read is run again when the job is resumed; a write
  is reported as interrupted, outcome unknown, with how to check — it is never sent twice.
Cancelling the request while it waits cancels the call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import types

from . import answers
from .job_tools import TOOLSET, job_answer, runner
from .job_work import Work
from .runtime import CallContext
from .tools import ToolDef

KIND = "call"
GRACE = 2.0  # seconds past the budget a job-starting tool has to answer with its job before the backstop
QUESTION_POLL = 0.5  # seconds between looks at whether an open question to the user was answered

Run = Callable[[CallContext, dict[str, Any]], Awaitable[answers.Answer]]


def rerun_safe(tool: ToolDef) -> bool:
    """A declared read: one request that changes nothing, so cut short and run again it loses only time."""
    return tool.read_only and tool.operation is not None and tool.job_kind is None


def report(answer: answers.Answer) -> dict[str, Any]:
    """A (sealed) answer as a job's stored report."""
    if not isinstance(answer, types.CallToolResult):
        text = "The call needs the user's confirmation: make it again to be asked."
        return {"text": text, "structured": {"outcome": "not_applied"}, "error": True}
    text = "\n".join(b.text for b in answer.content if isinstance(b, types.TextContent))
    return {"text": text, "structured": answer.structured_content or {}, "error": bool(answer.is_error)}


async def within_budget(ctx: CallContext, tool: ToolDef, arguments: dict[str, Any], run: Run) -> answers.Answer:
    """`run(ctx, arguments)` (the whole call of `tool`, its answer sealed), answered within the budget (see the
    module doc); every answer it gives is sealed."""
    jobs, name, read_only, scrub = runner(ctx), tool.name, tool.read_only, ctx.client.scrub
    answers_by_itself = tool.job_kind is not None or tool.toolset == TOOLSET  # its own wait ends by the budget
    budget = ctx.runtime.settings.call_budget + (GRACE if answers_by_itself else 0.0)
    inline = rerun_safe(tool)
    if inline:
        with anyio.move_on_after(max(0.0, ctx.started + budget - anyio.current_time())):
            with jobs.holding(ctx.runtime.account):
                return await run(ctx, arguments)  # sealed by `run`
    done = anyio.Event()
    scope = anyio.CancelScope()
    box: dict[str, answers.Answer] = {}

    async def body() -> None:
        try:
            with scope, jobs.holding(ctx.runtime.account):  # the tenant's client stays open while the call runs
                box["answer"] = await run(ctx, arguments)
        finally:
            done.set()

    if inline:  # it ran out of time in this request: from the start, as a job (nothing was changed)
        ctx.request = None  # detached: progress and logs of the rest go to the server log only
    jobs.spawn(body)
    try:
        with anyio.move_on_after(max(0.0, ctx.started + budget - anyio.current_time())):
            await done.wait()
        while not done.is_set() and ctx.awaiting_user:
            with anyio.move_on_after(QUESTION_POLL):
                await done.wait()
    except anyio.get_cancelled_exc_class():
        scope.cancel()
        raise
    if done.is_set():
        if "answer" in box:
            return box["answer"]  # sealed by `run`
        return answers.sealed(answers.internal_error(name, RuntimeError("the call ended without an answer")), scrub)
    if ctx.job_id is not None:  # it started a job: that is the answer, and the job goes on without this wait
        # the call's own wait ends by the budget too: left to end, never cancelled (that would cancel its job)
        ctx.request = None
        job = await jobs.store.get(ctx.job_id)
        assert job is not None
        return answers.sealed(await job_answer(jobs, job), scrub)
    ctx.request = None  # detached: progress and logs of the rest go to the server log only
    # a write is never run again, so its arguments (a webhook secret, say) are not kept; a read's are, to re-run it
    kept = {"tool": name, "arguments": arguments if read_only else {}, "read_only": read_only}
    job = await jobs.adopt(KIND, kept, scope, account=ctx.runtime.account)

    async def settle() -> None:
        await done.wait()
        answer = box.get("answer")
        if answer is not None:
            await jobs.finish(job.id, report(answer), "done")
        elif job.id in jobs.cancelling:
            await jobs.finish(job.id, _cancelled(name, read_only), "cancelled")
        else:
            await jobs.finish(job.id, None, "failed", "the call ended without an answer (the server stopped)")
        jobs.release_adopted(job.id)

    jobs.spawn(settle)
    lead = f"{name} is taking longer than {ctx.runtime.settings.call_budget:g} s; it carries on as a job."
    return answers.sealed(await job_answer(jobs, job, lead=lead), scrub)


def _cancelled(name: str, read_only: bool) -> dict[str, Any]:
    if read_only:
        return {"text": f"{name} was cancelled; nothing was changed.", "structured": {}, "error": False}
    text = f"{name} was cancelled while it ran: it may or may not have been applied; read the record to check."
    return {"text": text, "structured": {"outcome": "unknown"}, "error": True}


class CallKind:
    """Resuming a `call` job after a restart: a read runs again; a write is reported, never sent twice."""

    def __init__(self, run: Callable[[str, CallContext, dict[str, Any]], Awaitable[answers.Answer] | None]) -> None:
        self._run = run

    async def run(self, work: Work) -> dict[str, Any]:
        name, arguments = work.job.args["tool"], work.job.args["arguments"]
        if not work.job.args.get("read_only"):
            text = (
                f"{name} was interrupted by a server restart before it answered: it may or may not have been "
                "applied, and it was not sent again. Read the record to check before repeating it."
            )
            return {"text": text, "structured": {"outcome": "unknown"}, "error": True}
        answer = self._run(name, work.ctx, arguments)
        if answer is None:
            return {"text": f"{name} is not a tool of this server any more.", "structured": {}, "error": True}
        return report(await answer)
