"""Bulk tools: one target (tag, course, community) applied to many contacts, previewable and exactly-once.

Contacts come from `contact_ids` or a `filter` (find_contacts' arguments). The target's current members are
read once, so contacts already in the target state are skipped. A dry run answers what would change and the
exact call to apply. Applying is a durable job (jobs.py), confirmed first when destructive: `BULK_CONCURRENCY`
writes at a time through `calls.execute` — the shared client, pacer and exactly-once recovery — each contact
stored with its `Outcome`, a contact in flight at a restart settled by `calls.resume`. The call answers with
the summary if the job ends within the call budget, else with the job (get_job checks it); cancelling the
call while it is open cancels the job after its writes in flight.
"""

from __future__ import annotations

from typing import Any

import anyio

from . import answers, calls, confirm
from .answer_schemas import write_schema
from .bulk_report import Selection, Tally, destroys, ids_text, preview, summary, target_words
from .bulk_targets import TARGETS, Target
from .calls import OutcomeKind
from .catalog import Catalog, Param
from .finder import filter_params, scan, scope_text
from .job_tools import follow, job_answer, runner
from .job_work import Settled, Work
from .jobstore import Item
from .policy import PAGE_SIZE
from .projection import pick
from .runtime import CallContext
from .schemas import ArgumentError
from .tools import ToolDef
from .workflow_kit import declare, param, tool_def

TOOLSET = "bulk"  # opt-in (registry.OPT_IN_TOOLSETS): one contact at a time is the default toolsets' job
BULK_CONCURRENCY = 8
MAX_CONTACTS = 5000
MEMBER_PAGES = 100  # cap on pages read to learn who is already in the target state
REASON = 300  # characters of a failure reason kept


def split(ids: list[int], members: set[int], *, adds: bool) -> tuple[list[int], list[int]]:
    """(to change, already so), in the order given: adding skips members, removing skips non-members."""
    todo = [i for i in ids if (i in members) != adds]
    return todo, [i for i in ids if (i in members) == adds]


FILTER = {"type": "object", "description": 'Or find_contacts filters, e.g. {"tag": "vip"}.'}


class BulkTool:
    """One bulk tool: declaration, selection, preview and the concurrent apply."""

    def __init__(self, catalog: Catalog, target: Target) -> None:
        self.target = target
        # the bulk call is previewed as a whole; each per-contact write is executed without a question of its own
        self.write = write_op = catalog[target.write]
        self.filter = declare("filter", "", "", filter_params(catalog), read_only=True)
        dry = "Preview only; default true" + (" (false applies)" if target.destructive else " above 25 changes")
        params: list[Param] = [
            param("contact_ids", {"type": "integer_list"}, description=f"Contact ids (≤{MAX_CONTACTS})."),
            *(param(n, write_op.params[n], required=n != "modules") for n in target.target_args),
            param("dry_run", {"type": "boolean"}, description=f"{dry}."),
        ]
        self.decl = declare(
            target.tool,
            target.title,
            f"{target.description}, given contact_ids or a filter; skips contacts already so.",
            params,
            destructive=target.destructive,
            rules=write_op.rules,
            toolset=TOOLSET,
        )

    def tool(self) -> ToolDef:
        # besides dry_run and counts (by state): the ids of each state (to_change, changed, already, failed),
        # `apply`, the exact call that applies a preview, `next`, the call covering contacts past the scan cap
        output = write_schema("dry_run", "counts")
        return tool_def(self.decl, self.call, output, extra={"filter": FILTER}, job_kind=self)

    # ------------------------------------------------------------------ arguments and selection
    def _validate(self, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        arguments = dict(arguments)
        has_filter = "filter" in arguments  # a null filter is refused like any non-object, not taken as absent
        raw_filter = arguments.pop("filter", None)
        problems: list[str] = []
        try:
            args = self.decl.validate(arguments)
        except ArgumentError as exc:  # report the filter's problems too, not only the first batch
            args, problems = {}, list(exc.problems)
        if not problems and has_filter == ("contact_ids" in args):
            problems.append("(arguments): give exactly one of `contact_ids` (a list of ids) or `filter` (an object).")
        elif not problems and len(args.get("contact_ids", [])) > MAX_CONTACTS:
            problems.append(f"`contact_ids`: {len(args['contact_ids'])} ids; at most {MAX_CONTACTS} per call.")
        crit: dict[str, Any] | None = None
        if has_filter and not isinstance(raw_filter, dict):
            got = "null" if raw_filter is None else type(raw_filter).__name__
            problems.append(f"`filter`: must be an object of find_contacts filters (got {got}).")
        elif raw_filter is not None:
            try:
                crit = self.filter.validate(raw_filter)
            except ArgumentError as exc:
                problems += [p.replace("`", "`filter.", 1) for p in exc.problems]
        if problems:
            raise ArgumentError(self.target.tool, problems)
        return args, crit

    async def _select(self, ctx: CallContext, args: dict[str, Any], crit: dict[str, Any] | None) -> Selection:
        if crit is None:
            return Selection(list(dict.fromkeys(args["contact_ids"])))
        found = await scan(ctx, {"max_pages": MAX_CONTACTS // 100, **crit})
        contacts = {int(c["id"]): c for c in found.matches}
        sel = Selection(list(contacts), contacts)
        if not found.complete:
            sel.note = f"Only {scope_text(found, crit)} was covered."
            sel.next_args = {**args, "filter": {**crit, "starting_after": found.last_id}}
        return sel

    async def _members(self, ctx: CallContext, args: dict[str, Any]) -> tuple[set[int], bool]:
        """Contact ids already in the target state, and whether the listing was complete."""
        t = self.target
        listing = ctx.catalog[t.members]
        query: dict[str, Any] = {"limit": PAGE_SIZE}
        for name, source in t.members_query.items():
            query[name] = [args[source]] if listing.params[name].type == "integer_list" else args[source]
        members: set[int] = set()
        complete = True
        pages = 0
        async for page in ctx.client.pages(listing, query, MEMBER_PAGES):
            members |= {v for v in (pick(i, t.member_id) for i in page.items) if isinstance(v, int)}
            complete, pages = not page.has_more, pages + 1
            if not complete and ctx.log_due():
                await ctx.log("info", f"{t.tool}: finding contacts already {t.state} ({pages} pages read)")
        return members, complete

    # ------------------------------------------------------------------ the call
    async def call(self, ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        args, crit = self._validate(arguments)
        sel = await self._select(ctx, args, crit)
        members, complete = await self._members(ctx, args)
        t = self.target
        todo, already = split(sel.ids, members, adds=t.adds)
        if not complete:
            sel.note += f" The {t.state} list was too long to read fully; some may be rewritten."
        dry_run = args.get("dry_run")
        if dry_run is None:
            dry_run = t.destructive or len(todo) > ctx.runtime.settings.bulk_preview_above
        if dry_run:
            return answers.workflow(*preview(t, args, crit, sel, todo, already))
        jobs = runner(ctx)
        await jobs.ready()  # before the question to the user: work that cannot be kept is not started
        if self.decl.op.is_destructive and todo and not ctx.client.settings.read_only:
            call_args = {**args, **({"filter": crit} if crit is not None else {})}
            decided = await confirm.decide(ctx, self.decl.op, call_args, what=destroys(t, args, sel, todo))
            if not isinstance(decided, confirm.Proceed):
                return answers.decision(self.decl.op, decided)
        state = {"args": args, "already": already, "note": sel.note, "next_args": sel.next_args}
        job = await jobs.start(t.tool, state, [str(cid) for cid in todo], account=ctx.runtime.account)
        ctx.job_id = job.id
        await ctx.log("info", f"{t.tool} {target_words(t, args)}: applying to {len(todo)} contacts as job {job.id}")
        try:
            latest = await follow(ctx, job.id, ctx.started + ctx.runtime.settings.call_budget)
        except anyio.get_cancelled_exc_class():  # the client gave up on the call while it was open: stop too
            jobs.cancel_locally(job.id)
            raise
        return await job_answer(jobs, latest or job)

    # ------------------------------------------------------------------ the job
    async def run(self, work: Work) -> dict[str, Any]:  # a JobKind
        """Apply the write to every contact of the job (exactly once each, across restarts); the summary."""
        t, ctx, state = self.target, work.ctx, work.job.args
        fixed = {n: state["args"][n] for n in t.target_args if n in state["args"]}

        async def one(item: Item, resumed: bool) -> Settled:
            write_args = {**fixed, "contact_id": int(item.key)}
            run = calls.resume if resumed else calls.execute
            outcome = await run(ctx, self.write, write_args)
            if outcome.kind == OutcomeKind.UNKNOWN and outcome.error is None:
                return Settled("unknown", outcome.note)
            if outcome.error is not None:
                reason = answers.failure_text(self.write, write_args, outcome)
                kind = "unknown" if outcome.kind == OutcomeKind.UNKNOWN else "failed"
                return Settled(kind, ctx.client.scrub(" ".join(reason.split())[:REASON]))
            return Settled("already" if outcome.kind == OutcomeKind.ALREADY_APPLIED else "changed")

        await work.each(one, BULK_CONCURRENCY)
        items = await work.items()
        tally = Tally(already=list(state["already"]))
        for item in items:
            cid = int(item.key)
            if item.outcome == "changed":
                tally.changed.append(cid)
            elif item.outcome == "already":
                tally.already.append(cid)
            elif item.outcome in ("failed", "unknown"):
                tally.failed[cid] = item.reason
                if item.outcome == "unknown":
                    tally.unknown.append(cid)
        not_started = [int(i.key) for i in items if i.state == "pending"]
        sel = Selection([*(int(i.key) for i in items), *state["already"]], note=state["note"])
        sel.next_args = state["next_args"]
        text, structured, all_failed = summary(t, state["args"], sel, tally)
        if not_started:
            text += f"\nnot started (cancelled): {ids_text(not_started)}"
            structured["not_started"] = not_started[:200]
        return {"text": text, "structured": structured, "error": all_failed}


def bulk_tools(catalog: Catalog) -> list[ToolDef]:
    return [BulkTool(catalog, t).tool() for t in TARGETS]
