"""The `jobs` toolset (get_job, list_jobs, cancel_job), how a job is shown, and `follow`: the first call of a
job waiting for it, with progress, for as long as the call budget allows.

A job's answer says what it is doing in words and the exact call that checks it (`next: get_job(...)`); its
structured content carries `job_id`, `status` (running / done / cancelled / failed), `done`, `total`, the
count per outcome, and, while it runs here, the rate and the estimated seconds left. A finished job answers
with its report (the answer its tool would have given), plus those fields.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
from mcp import types

from . import answers
from .answer_schemas import schema, write_schema
from .jobs import JobRunner
from .jobstore import STATUSES, Job
from .projection import call_text, fence
from .runtime import CallContext
from .tools import ToolDef
from .workflow_kit import Refused, declare, param, tool_def

TOOLSET = "jobs"
JOB_ID = {"type": "string", "max_length": 20, "description": ""}  # its form is checked by `_job` (fewer tokens)
JOB_ID_FORM = re.compile(r"^job_[0-9a-f]{16}$")
POLL = 1.0  # seconds between looks at a job running in another process
LISTED_JOBS = 50


def runner(ctx: CallContext) -> JobRunner:
    jobs = ctx.runtime.jobs
    assert isinstance(jobs, JobRunner)
    return jobs


def settled(counts: dict[str, int]) -> int:
    return sum(n for state, n in counts.items() if state not in ("pending", "in_flight"))


def counts_text(counts: dict[str, int]) -> str:
    shown = [f"{n} {state}" for state, n in sorted(counts.items()) if state not in ("pending", "in_flight") and n]
    return ", ".join(shown) or "nothing settled yet"


async def snapshot(jobs: JobRunner, job: Job) -> dict[str, Any]:
    """A job's state as structured content (no report)."""
    counts = await jobs.store.counts(job.id)
    done = settled(counts)
    view: dict[str, Any] = {
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "done": done,
        "total": job.total,
        "counts": {k: v for k, v in counts.items() if k not in ("pending", "in_flight")},
        "in_flight": counts.get("in_flight", 0),
        "not_started": counts.get("pending", 0),
    }
    rate = jobs.rate(job.id, done) if not job.finished else None
    if rate:
        view["rate_per_second"] = round(rate, 2)
        view["seconds_left"] = round(max(0, job.total - done) / rate)
    if job.cancel_requested and not job.finished:
        view["cancel_requested"] = True
    return view


def status_line(view: dict[str, Any]) -> str:
    total = f" of {view['total']}" if view["total"] else ""
    counts = counts_text(view["counts"])
    line = f"Job {view['job_id']} ({view['kind']}) {view['status']}: {view['done']}{total} done ({counts})"
    if "rate_per_second" in view:
        line += f"; {view['rate_per_second']:g}/s, about {view['seconds_left']} s left"
    if view.get("cancel_requested"):
        line += "; stopping after the items in flight (cancel asked)"
    return line + "."


async def job_answer(jobs: JobRunner, job: Job, lead: str = "") -> types.CallToolResult:
    """What a job answers: its report once finished, else its state and the call that checks it."""
    view = await snapshot(jobs, job)
    check_args = {"job_id": job.id}
    check = {"tool": "get_job", "arguments": check_args}
    if job.finished and job.result is not None:
        report = job.result
        structured = {**view, **report.get("structured", {}), "job_id": job.id, "status": job.status}
        head = f"Job {job.id} ({job.kind}) {job.status}." if job.status != "done" else ""
        text = "\n".join(x for x in (lead, head, str(report.get("text", ""))) if x)
        answer = answers.workflow(text, structured, error=bool(report.get("error")))
        if isinstance(link := report.get("resource"), dict):  # an export: the file, as a link the client can read
            name = link["uri"].rsplit("/", 1)[-1]
            answer.content.append(
                types.ResourceLink(
                    type="resource_link", uri=link["uri"], name=name, mime_type="text/csv", size=link.get("bytes")
                )
            )
        return answer
    if job.finished:
        text = f"{lead}\n{status_line(view)} {job.error}".strip()
        return answers.workflow(text, {**view, "error": {"kind": "job_failed"}}, error=True)
    text = f"{lead}\n{status_line(view)}\nnext: {call_text('get_job', check_args)}".strip()
    return answers.workflow(text, {**view, "next": check})


async def follow(ctx: CallContext, job_id: str, until: float) -> Job | None:
    """Wait for a job until it finishes or `until` (anyio time), reporting its progress to the call's client
    each time it moves."""
    jobs = runner(ctx)
    jobs.follow(job_id, ctx)
    try:
        return await _follow(ctx, jobs, job_id, until)
    finally:
        jobs.unfollow(job_id, ctx)


async def _follow(ctx: CallContext, jobs: JobRunner, job_id: str, until: float) -> Job | None:
    reported = -1
    while True:
        job = await jobs.store.get(job_id)
        if job is None:
            return None
        counts = await jobs.store.counts(job_id)
        done = settled(counts)
        if done != reported:
            reported = done
            await ctx.progress(done, job.total or None, f"{done}/{job.total} ({counts_text(counts)})")
        left = until - anyio.current_time()
        if job.finished or left <= 0:
            return job
        with anyio.move_on_after(min(left, POLL)):  # a job running elsewhere sends no local event: look again
            await jobs.changed(job_id).wait()


async def _job(ctx: CallContext, job_id: str) -> Job:
    job = await runner(ctx).get(job_id, ctx.runtime.account) if JOB_ID_FORM.match(job_id) else None
    if job is None:
        settings = ctx.runtime.settings
        raise Refused(
            f"`job_id`: no job {fence(job_id, quote=True)} (ids look like job_ and 16 hex digits). Finished jobs are "
            "kept "
            f"{settings.job_retention_days:g} days (the newest {settings.job_retention_count}); list_jobs lists "
            "those there are."
        )
    return job


def job_tools() -> list[ToolDef]:
    """get_job, list_jobs, cancel_job."""
    job_id = param("job_id", {**JOB_ID, "required": True})
    get = declare(
        "get_job",
        "Get job",
        "Get a job's progress, or its report once done.",
        [job_id],
        read_only=True,
        toolset=TOOLSET,
    )
    status = param("status", {"type": "enum", "values": list(STATUSES), "description": ""})
    listing = declare("list_jobs", "List jobs", "List jobs, newest first.", [status], read_only=True, toolset=TOOLSET)
    cancel = declare(
        "cancel_job",
        "Cancel job",
        "Cancel a job after its items in flight.",
        [job_id],
        toolset=TOOLSET,
    )

    async def get_job(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        args = get.validate(arguments)
        return await job_answer(runner(ctx), await _job(ctx, args["job_id"]))

    async def list_jobs(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        args = listing.validate(arguments)
        jobs = runner(ctx)
        found = await jobs.store.jobs(args.get("status"), limit=LISTED_JOBS, tenant=ctx.runtime.account)
        views = [await snapshot(jobs, j) for j in found]
        lines = [
            f"{len(views)} job{'s' if len(views) != 1 else ''}" + (f" {args['status']}" if "status" in args else "")
        ]
        lines += [status_line(v) for v in views]
        return answers.workflow("\n".join(lines), {"items": views, "has_more": len(found) == LISTED_JOBS})

    async def cancel_job(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        args = cancel.validate(arguments)
        jobs = runner(ctx)
        job = await _job(ctx, args["job_id"])
        if job.finished:
            answer = await job_answer(
                jobs, job, lead=f"Job {job.id} had already finished ({job.status}); nothing to cancel."
            )
            return _with_outcome(answer, "already_applied")
        if not jobs.cancel_locally(job.id):  # another process runs it (or ran it and died): it reads the flag
            job.cancel_requested = True
            await jobs.store.save(job)
        # waits for the writes in flight, but answers before the call budget would turn this call into a job
        latest = await follow(ctx, job.id, ctx.started + 0.8 * ctx.runtime.settings.call_budget) or job
        return _with_outcome(
            await job_answer(jobs, latest, lead="Cancelled." if latest.finished else "Cancel asked."), "applied"
        )

    return [
        tool_def(get, get_job, schema("job_id", "status")),
        tool_def(listing, list_jobs, schema("items", "has_more")),
        tool_def(cancel, cancel_job, write_schema("job_id", "status")),
    ]


def _with_outcome(answer: types.CallToolResult, outcome: str) -> types.CallToolResult:
    if answer.structured_content is not None:
        answer.structured_content["outcome"] = outcome
    return answer
