"""import_contacts: create-or-update many contacts from a list, as a durable job, exactly once per email.

Every row is checked before anything is sent (the error names the row and the argument). Tag names are
resolved first, and the missing tags created once (`create_tag` reads back before it resends). Each row is
then an item of a job (jobs.py): the contact is looked up by email, created if absent (a create refused as
"already used" turns into an update), else sent only the values that differ, and given the tags it lacks. A
row in flight at a restart is run the same way, which is safe because it reads first: a contact created just
before the restart is found and not created again. The report lists each row as created / updated /
unchanged / failed, each failure with its reason.
"""

from __future__ import annotations

from typing import Any

from . import answers, calls
from .answer_schemas import write_schema
from .bulk import MAX_CONTACTS, TOOLSET
from .calls import OutcomeKind
from .catalog import Catalog
from .job_tools import follow, job_answer, runner
from .job_work import Settled, Work
from .jobstore import Item
from .policy import PAGE_SIZE
from .projection import cut, fence
from .runtime import CallContext
from .schemas import ArgumentError
from .tools import ToolDef
from .upsert import CONTACT_ARGS, changed_args
from .workflow_kit import Refused, contact_by_email, declare, param, tool_def

MAX_ROWS = MAX_CONTACTS
MAX_TAGS = 20  # tag names per row
ROW_CONCURRENCY = 4  # rows at a time (each is 1 to 4 requests)
REPORTED = 200  # rows listed in the structured report
ROW_FIELDS = ("email", *CONTACT_ARGS, "tags")
ROWS = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_ROWS,
    "description": "Contacts: {email, first_name, last_name, phone_number, locale, fields, tags: [names]}.",
    "items": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}, "required": ["email"]},
}


class Importer:
    """The tool, and the job kind that runs it."""

    def __init__(self, catalog: Catalog) -> None:
        create = catalog["create_contact"]
        self.create, self.update, self.tag = create, catalog["update_contact"], catalog["add_tag_to_contact"]
        self.row = declare("row", "", "", [param(n, create.params[n]) for n in ("email", *CONTACT_ARGS)])
        self.decl = declare(
            "import_contacts",
            "Import contacts",
            "Create or update many contacts by email (never a duplicate) and tag them; reports each row.",
            [],
            toolset=TOOLSET,
        )

    def tool(self) -> ToolDef:
        # besides outcome and counts: `rows` [{email, outcome (created/updated/unchanged/failed), id, reason}]
        tool = tool_def(self.decl, self.call, write_schema("counts"), extra={"contacts": ROWS}, job_kind=self)
        tool.tool.input_schema["required"] = ["contacts"]
        return tool

    # ------------------------------------------------------------------ the first call
    def _rows(self, arguments: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], int]:
        """The rows by email (casefolded), each checked, and how many repeated an earlier email (merged into it);
        ArgumentError naming every bad row."""
        self.decl.validate({k: v for k, v in arguments.items() if k != "contacts"})  # unknown arguments
        rows = arguments.get("contacts")
        if not isinstance(rows, list) or not rows or len(rows) > MAX_ROWS:
            got = f"{len(rows)} rows" if isinstance(rows, list) else _kind(rows)
            raise ArgumentError(
                "import_contacts",
                [f"`contacts`: required, a list of 1 to {MAX_ROWS} objects each with an email (got {got})."],
            )
        problems: list[str] = []
        checked: dict[str, dict[str, Any]] = {}
        merged = 0
        for n, row in enumerate(rows):
            where = f"contacts[{n}]"
            if not isinstance(row, dict):
                problems.append(f"`{where}`: must be an object with at least an email.")
                continue
            tags = row.get("tags", [])
            if (
                not isinstance(tags, list)
                or len(tags) > MAX_TAGS
                or not all(isinstance(t, str) and 0 < len(t.strip()) <= 255 for t in tags)
            ):
                problems.append(f"`{where}.tags`: a list of up to {MAX_TAGS} tag names (non-empty strings).")
            try:
                values = self.row.validate({k: v for k, v in row.items() if k != "tags"})
            except ArgumentError as exc:
                problems += [p.replace("`", f"`{where}.", 1) for p in exc.problems]
                continue
            key = values["email"].casefold()
            names = [t.strip() for t in tags] if isinstance(tags, list) else []
            if key in checked:  # the same email again (a list pasted twice): one contact, later values win
                earlier = checked[key]
                names = list(dict.fromkeys([*earlier["tags"], *names]))
                values = {**earlier, **values, "email": earlier["email"]}
                merged += 1
            checked[key] = {**values, "tags": names}
        if problems:
            raise ArgumentError(
                "import_contacts", problems[:50] + ([f"… and {len(problems) - 50} more"] if len(problems) > 50 else [])
            )
        return checked, merged

    async def _tag_ids(self, ctx: CallContext, names: set[str]) -> dict[str, int]:
        """Tag id by casefolded name; the missing tags created (once each)."""
        known: dict[str, int] = {}
        async for page in ctx.client.pages(ctx.catalog["list_tags"], {"limit": PAGE_SIZE}, 100):
            for tag in page.items:
                if isinstance(tag, dict) and isinstance(tag.get("name"), str):
                    known.setdefault(tag["name"].casefold(), int(tag["id"]))
        for name in sorted(names, key=str.casefold):
            if name.casefold() in known:
                continue
            outcome = await calls.execute(ctx, ctx.catalog["create_tag"], {"name": name})
            if outcome.error is not None or not isinstance(outcome.data, dict):
                why = answers.failure_text(ctx.catalog["create_tag"], {"name": name}, outcome)
                raise Refused(f"Nothing imported: the tag {fence(name, quote=True)} could not be created. {why}")
            known[name.casefold()] = int(outcome.data["id"])
        return {n.casefold(): known[n.casefold()] for n in names}

    async def call(self, ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        rows, merged = self._rows(arguments)
        jobs = runner(ctx)
        await jobs.ready()  # before the missing tags are created: nothing is written unless the job can be kept
        tags = await self._tag_ids(ctx, {t for row in rows.values() for t in row["tags"]})
        job = await jobs.start(
            "import_contacts", {"rows": rows, "tags": tags, "merged": merged}, list(rows), account=ctx.runtime.account
        )
        ctx.job_id = job.id
        latest = await follow(ctx, job.id, ctx.started + ctx.runtime.settings.call_budget)
        return await job_answer(jobs, latest or job)

    # ------------------------------------------------------------------ the job
    async def run(self, work: Work) -> dict[str, Any]:  # a JobKind
        rows, tag_ids = work.job.args["rows"], work.job.args["tags"]

        async def one(item: Item, resumed: bool) -> Settled:
            return await self._row(work.ctx, rows[item.key], tag_ids)

        await work.each(one, ROW_CONCURRENCY)
        return report(await work.items(), rows, work.job.args.get("merged", 0))

    async def _row(self, ctx: CallContext, row: dict[str, Any], tag_ids: dict[str, int]) -> Settled:
        values = {k: v for k, v in row.items() if k not in ("email", "tags")}
        contact = await _lookup(ctx, row["email"])
        action = "unchanged"
        if contact is None:
            outcome = await calls.execute(ctx, self.create, {k: v for k, v in row.items() if k != "tags"})
            if outcome.error is not None and calls.already_done(self.create, outcome.error):
                contact = await _lookup(ctx, row["email"])  # created meanwhile: update it instead
            elif outcome.error is not None or outcome.kind == OutcomeKind.UNKNOWN:
                return self._failed(ctx, self.create, row, outcome)
            else:
                contact, action = outcome.data if isinstance(outcome.data, dict) else {}, "created"
        if contact is None or "id" not in contact:
            return Settled("failed", "the contact could not be read back after its create; run the import again")
        if action != "created" and (changes := changed_args(self.update, contact, values)):
            outcome = await calls.execute(ctx, self.update, {"contact_id": contact["id"], **changes})
            if outcome.error is not None or outcome.kind == OutcomeKind.UNKNOWN:
                return self._failed(ctx, self.update, row, outcome)
            action = "updated"
        have = {t.get("id") for t in contact.get("tags") or [] if isinstance(t, dict)}
        for name in row["tags"]:
            tag_id = tag_ids[name.casefold()]
            if tag_id in have:
                continue
            outcome = await calls.execute(ctx, self.tag, {"contact_id": contact["id"], "tag_id": tag_id})
            if outcome.error is not None:
                return self._failed(ctx, self.tag, row, outcome, contact_id=contact["id"])
            action = "updated" if action == "unchanged" else action
        return Settled(action, data={"id": contact["id"]})

    def _failed(self, ctx: CallContext, op: Any, row: dict[str, Any], outcome: calls.Outcome, **data: Any) -> Settled:
        reason = outcome.note if outcome.error is None else answers.failure_text(op, row, outcome)
        unknown = " (it may have been applied: check the contact)" if outcome.kind == OutcomeKind.UNKNOWN else ""
        return Settled("failed", ctx.client.scrub(cut(" ".join(reason.split()) + unknown, 300)), data)


async def _lookup(ctx: CallContext, email: str) -> dict[str, Any] | None:
    try:
        return await contact_by_email(ctx, email)
    except Exception:
        return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def report(items: list[Item], rows: dict[str, dict[str, Any]], merged: int = 0) -> dict[str, Any]:
    """The import's report: counts, then each row that was not unchanged (failures first, with reasons)."""
    counts = {k: 0 for k in ("created", "updated", "unchanged", "failed")}
    for item in items:
        if item.state == "settled":
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
    pending = [i for i in items if i.state != "settled"]
    ordered = sorted(items, key=lambda i: (i.outcome != "failed", i.outcome == "unchanged", i.seq))
    listed = [
        {
            "email": rows[i.key]["email"],
            "outcome": i.outcome or "not_started",
            **i.data,
            **({"reason": i.reason} if i.reason else {}),
        }
        for i in ordered[:REPORTED]
    ]
    lines = [
        f"import_contacts: {len(items)} rows: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + (f", {len(pending)} not started (cancelled)" if pending else "")
        + "."
        + (f" {merged} rows repeated an email given earlier and were merged into it." if merged else "")
    ]
    budget = answers.TEXT_BUDGET - 400
    for row in listed:
        if row["outcome"] == "unchanged":
            continue
        entry = f"- {fence(cut(row['email']))}: {row['outcome']}" + (f" — {row['reason']}" if "reason" in row else "")
        if budget < len(entry):
            lines.append("- … more in structured content (rows) and get_job")
            break
        budget -= len(entry) + 1
        lines.append(entry)
    if counts["failed"]:
        lines.append("To retry the failed rows, import them again: rows already done are left as they are.")
    changed = counts["created"] + counts["updated"]
    outcome = "applied" if changed else ("not_applied" if counts["failed"] else "already_applied")
    structured = {"outcome": outcome, "counts": counts, "rows": listed, "not_started": len(pending)}
    return {"text": "\n".join(lines), "structured": structured, "error": counts["failed"] == len(items)}


def import_tool(catalog: Catalog) -> ToolDef:
    return Importer(catalog).tool()
