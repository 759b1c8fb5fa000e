"""Bulk tools: one target (tag, course, community) applied to many contacts, previewable and exactly-once.

Contacts come from `contact_ids` or a `filter` (find_contacts' arguments). The target's current members are
read once, so contacts already in the target state are skipped. A dry run answers what would change and the
exact call to apply. Applying runs `BULK_CONCURRENCY` writes at a time through `operations.run` — the shared
client, pacer and exactly-once recovery — with MCP progress and log messages. On cancellation the work done so
far is logged (in-flight writes named as unknown) and the cancellation propagates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import types

from . import operations
from .catalog import Catalog, Param
from .finder import filter_params, scan, scope_text
from .runtime import CallContext
from .schemas import ArgumentError
from .summaries import TEXT_BUDGET, _get, call_text
from .tools import ToolDef, operation_tool
from .workflows import answer_text, declare, param, read, result, tool_def

BULK_CONCURRENCY = 8
MAX_CONTACTS = 5000
MEMBER_PAGES = 100  # cap on pages read to learn who is already in the target state
LISTED = 200  # ids per list in structured content
REASON = 300  # characters of a failure reason kept


@dataclass(frozen=True)
class Target:
    """What a bulk tool applies: the per-contact write, and how to list who already has it."""

    tool: str
    title: str
    description: str
    write: str  # the declared operation run once per contact
    target_args: tuple[str, ...]  # its arguments taken from the bulk call
    members: str  # a list operation whose items are the contacts already in the target state
    members_query: dict[str, str]  # its argument → the bulk argument giving the value
    member_id: str  # path of the contact id in its items
    state: str  # "already <state>"
    adds: bool = True
    destructive: bool = False


TARGETS = [
    Target(
        "bulk_add_tag",
        "Tag many contacts",
        "Add a tag to many contacts",
        "add_tag_to_contact",
        ("tag_id",),
        "list_contacts",
        {"tag_ids": "tag_id"},
        "id",
        "tagged",
    ),
    Target(
        "bulk_remove_tag",
        "Untag many contacts",
        "Remove a tag from many contacts (may start automations; previews unless dry_run=false)",
        "remove_tag_from_contact",
        ("tag_id",),
        "list_contacts",
        {"tag_ids": "tag_id"},
        "id",
        "without the tag",
        adds=False,
        destructive=True,
    ),
    Target(
        "bulk_enroll",
        "Enroll many contacts",
        "Enroll many contacts in a course",
        "create_enrollment",
        ("course_id", "access_type", "modules"),
        "list_enrollments",
        {"course_id": "course_id"},
        "contact.id",
        "enrolled",
    ),
    Target(
        "bulk_add_to_community",
        "Add many contacts to community",
        "Add many contacts to a community",
        "create_membership",
        ("community_id",),
        "list_memberships",
        {"community_id": "community_id"},
        "contact.id",
        "members",
    ),
]


@dataclass
class Selection:
    ids: list[int]
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)  # known records (filter selection)
    note: str = ""  # where a filter scan stopped
    next_args: dict[str, Any] | None = None  # the bulk call continuing a capped scan


@dataclass
class Tally:
    changed: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    running: set[int] = field(default_factory=set)


def _ids(ids: list[int], budget: int = 1500) -> str:
    text = ", ".join(f"#{i}" for i in ids)
    if len(text) <= budget:
        return text
    cut = text[:budget].rsplit(", ", 1)[0]
    return f"{cut} … (+{len(ids) - cut.count('#')} more)"


FILTER = {"type": "object", "description": 'Or find_contacts filters, e.g. {"email_domain": "acme.test"}.'}


class BulkTool:
    """One bulk tool: declaration, selection, preview and the concurrent apply."""

    def __init__(self, catalog: Catalog, target: Target) -> None:
        self.target = target
        write_op = catalog[target.write]
        # the bulk call is confirmed (preview first) as a whole; the per-contact write must not ask again
        self.write = operation_tool(catalog, write_op.model_copy(update={"destructive": False}))
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
            f"{target.description}, given contact_ids or a filter. Skips contacts already so; reports "
            "changed / already / failed.",
            params,
            destructive=target.destructive,
            rules=write_op.rules,
        )

    def tool(self) -> ToolDef:
        counts = {"type": "object", "additionalProperties": {"type": "integer"}}
        ids = {"type": "array", "items": {"type": "integer"}}
        output = {
            "type": "object",
            "properties": {
                "dry_run": {"type": "boolean"},
                "outcome": {"enum": ["applied", "already_applied", "not_applied"]},
                "counts": counts,
                "to_change": ids,
                "changed": ids,
                "already": ids,
                "failed": {"type": "array", "items": {"type": "object"}},
                "apply": {"type": ["object", "null"], "description": "The exact call that applies the preview."},
                "next": {"type": ["object", "null"], "description": "The call covering contacts past the scan cap."},
                "message": {"type": "string"},
            },
            "required": ["dry_run", "outcome", "counts", "message"],
        }
        return tool_def(self.decl, self.run, output, extra={"filter": FILTER})

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
        query: dict[str, Any] = {"limit": 100}
        for name, source in t.members_query.items():
            query[name] = [args[source]] if listing.params[name].type == "integer_list" else args[source]
        members: set[int] = set()
        for _ in range(MEMBER_PAGES):
            data = await read(ctx, t.members, query)
            items = (data.get("items") or []) if isinstance(data, dict) else []
            members |= {v for v in (_get(i, t.member_id) for i in items) if isinstance(v, int)}
            if not items or not data.get("hasMore"):
                return members, True
            query["starting_after"] = items[-1]["id"]
        return members, False

    # ------------------------------------------------------------------ the call
    async def run(self, ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        args, crit = self._validate(arguments)
        sel = await self._select(ctx, args, crit)
        members, complete = await self._members(ctx, args)
        t = self.target
        todo = [i for i in sel.ids if (i in members) != t.adds]
        already = [i for i in sel.ids if (i in members) == t.adds]
        if not complete:
            sel.note += f" The {t.state} list was too long to read fully; some may be rewritten."
        dry_run = args.get("dry_run")
        if dry_run is None:
            dry_run = t.destructive or len(todo) > ctx.runtime.settings.bulk_preview_above
        if dry_run:
            return self._preview(ctx, args, crit, sel, todo, already)
        tally = Tally(already=already)
        await self._apply(ctx, args, todo, tally)
        return self._summary(args, sel, tally)

    def _target_words(self, args: dict[str, Any]) -> str:
        return ", ".join(f"{n}={args[n]}" for n in self.target.target_args if n in args)

    def _preview(
        self,
        ctx: CallContext,
        args: dict[str, Any],
        crit: dict[str, Any] | None,
        sel: Selection,
        todo: list[int],
        already: list[int],
    ) -> types.CallToolResult:
        t = self.target
        apply_args = {**args, **({"filter": crit} if crit is not None else {}), "dry_run": False}
        shown = apply_args
        if len(args.get("contact_ids", [])) > 50:
            shown = {**apply_args, "contact_ids": f"<the same {len(args['contact_ids'])} ids>"}
        lines = [
            f"Preview ({t.tool} {self._target_words(args)}), nothing changed: {len(todo)} of {len(sel.ids)} "
            f"contacts would change; {len(already)} already {t.state}. {sel.note}".strip()
        ]
        budget = TEXT_BUDGET - 2500
        for cid in todo:
            row = f"#{cid} {sel.contacts[cid].get('email', '')}" if cid in sel.contacts else f"#{cid}"
            if budget - len(row) < 0:
                lines.append(f"… and {len(todo) - len(lines) + 1} more")
                break
            budget -= len(row) + 1
            lines.append(row)
        if todo:
            lines.append(f"apply: {call_text(t.tool, shown)}")
            if crit is not None:
                lines.append("(the filter is evaluated again when applied)")
        structured = {
            "dry_run": True,
            "outcome": "not_applied",
            "counts": {"selected": len(sel.ids), "to_change": len(todo), "already": len(already)},
            "to_change": todo[:LISTED],
            "already": already[:LISTED],
            "apply": {"tool": t.tool, "arguments": apply_args} if todo else None,
            "next": {"tool": t.tool, "arguments": sel.next_args} if sel.next_args else None,
        }
        return result("\n".join(lines), structured)

    async def _apply(self, ctx: CallContext, args: dict[str, Any], todo: list[int], tally: Tally) -> None:
        t = self.target
        fixed = {n: args[n] for n in t.target_args if n in args}
        queue = list(reversed(todo))
        total = len(todo)
        step = max(1, total // 10)
        settled = 0

        async def one(cid: int) -> None:
            nonlocal settled
            tally.running.add(cid)
            res = await operations.run(ctx, self.write, {**fixed, "contact_id": cid})
            tally.running.discard(cid)
            assert isinstance(res, types.CallToolResult)
            if res.is_error:
                tally.failed[cid] = " ".join(answer_text(res).split())[:REASON]
                if len(tally.failed) <= 20:
                    await ctx.log("warning", f"{t.tool}: contact #{cid} failed: {tally.failed[cid]}")
            elif (res.structured_content or {}).get("outcome") == "already_applied":
                tally.already.append(cid)
            else:
                tally.changed.append(cid)
            settled += 1
            await ctx.progress(settled, total, f"{settled}/{total} ({self._counts(tally)})")
            if settled % step == 0 and settled < total:
                await ctx.log("info", f"{t.tool}: {settled}/{total} done ({self._counts(tally)})")

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        await ctx.log("info", f"{t.tool} {self._target_words(args)}: applying to {total} contacts")
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(BULK_CONCURRENCY, total)):
                    tg.start_soon(worker)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                running = sorted(tally.running)
                unknown = f" in flight, outcome unknown (check them): {_ids(running)};" if running else ""
                await ctx.log(
                    "warning",
                    f"{t.tool} cancelled after {settled} of {total}: {self._counts(tally)}; "
                    f"changed: {_ids(tally.changed) or 'none'};{unknown} not started: {len(queue)}.",
                )
            raise

    @staticmethod
    def _counts(tally: Tally) -> str:
        return f"{len(tally.changed)} changed, {len(tally.already)} already, {len(tally.failed)} failed"

    def _summary(self, args: dict[str, Any], sel: Selection, tally: Tally) -> types.CallToolResult:
        t = self.target
        lines = [f"{t.tool} {self._target_words(args)} on {len(sel.ids)} contacts: {self._counts(tally)}. {sel.note}"]
        if tally.changed:
            lines.append(f"changed: {_ids(tally.changed)}")
        if tally.already:
            lines.append(f"already {t.state}: {_ids(tally.already, 800)}")
        by_reason: dict[str, list[int]] = defaultdict(list)
        for cid, reason in tally.failed.items():
            by_reason[reason].append(cid)
        if by_reason:
            lines.append("failed:")
            budget = TEXT_BUDGET - sum(len(x) + 1 for x in lines) - 300
            for reason, ids in by_reason.items():
                row = f"- {_ids(ids, 300)}: {reason}"
                if budget < len(row):
                    lines.append(f"- … {len(tally.failed) - sum(1 for x in lines if x.startswith('- '))} more")
                    break
                budget -= len(row) + 1
                lines.append(row)
        if sel.next_args:
            lines.append(f"next: {call_text(t.tool, sel.next_args)}")
        outcome = "applied" if tally.changed else ("already_applied" if not tally.failed else "not_applied")
        structured = {
            "dry_run": False,
            "outcome": outcome,
            "counts": {
                "selected": len(sel.ids),
                "changed": len(tally.changed),
                "already": len(tally.already),
                "failed": len(tally.failed),
            },
            "changed": tally.changed[:LISTED],
            "already": tally.already[:LISTED],
            "failed": [{"id": i, "reason": r} for i, r in list(tally.failed.items())[:LISTED]],
            "next": {"tool": t.tool, "arguments": sel.next_args} if sel.next_args else None,
        }
        error = bool(tally.failed) and not tally.changed and not tally.already
        return result("\n".join(x.strip() for x in lines), structured, error=error)


def bulk_tools(catalog: Catalog) -> list[ToolDef]:
    return [BulkTool(catalog, t).tool() for t in TARGETS]
