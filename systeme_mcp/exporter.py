"""export_contacts: the contacts a filter selects (find_contacts' filters) as a CSV file, made by a durable job
and read as the resource `systeme://exports/{job_id}.csv`, in parts of at most `PART_BYTES`.

The export is a read, so a job interrupted by a restart simply runs again. At most `MAX_CONTACTS` contacts
(the page cap says where it stopped, and the filter that continues). Cells are account data typed by
strangers: a value a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return)
is written with a leading apostrophe, so opening the file never runs anything; line breaks inside a value
become spaces, so every row is one line and a part always ends at a row's end.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from mcp import types

from . import answers
from .answer_schemas import schema
from .bulk import FILTER, MAX_CONTACTS, TOOLSET
from .catalog import Catalog
from .finder import filter_params, scan, scope_text
from .job_tools import follow, job_answer, runner
from .job_work import Work
from .projection import fence, project
from .runtime import CallContext
from .schemas import ArgumentError
from .tools import ToolDef
from .workflow_kit import declare, tool_def

PART_BYTES = 256 * 1024  # one part of the CSV resource
MAX_BYTES = 20 * 1024 * 1024  # the whole file; past it rows are left out, and the answer says so
COLUMNS = ("id", "email", "first_name", "surname", "phone_number", "tags", "registered_at")
BUILT_IN = (
    "id",
    "email",
    "tags",
    "locale",
    "registered_at",
    "unsubscribed",
    "bounced",
    "needs_confirmation",
    "source_url",
)
SLUG = re.compile(r"^[a-z0-9_]{1,64}$")
FORMULA = ("=", "+", "-", "@", "\t", "\r")
COLUMNS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": 100,
    "items": {"type": "string", "pattern": SLUG.pattern},
    "description": f"Default {', '.join(COLUMNS)}; or others of {', '.join(BUILT_IN)}, field slugs.",
}
URI = re.compile(r"^systeme://exports/(job_[0-9a-f]{16})\.csv(?:\?part=([1-9][0-9]{0,5}))?$")


def cell(value: Any) -> str:
    """One CSV cell: lists joined with "; ", formulas defused."""
    if isinstance(value, list):
        value = "; ".join(str(v.get("name", v.get("id")) if isinstance(v, dict) else v) for v in value)
    text = " ".join(("" if value is None else str(value)).splitlines())  # a row is one line: parts split at line ends
    return "'" + text if text.startswith(FORMULA) else text


def row(contact: dict[str, Any], columns: list[str]) -> list[str]:
    fields = contact.get("fields") or {}
    return [cell(contact.get(c) if c in BUILT_IN else fields.get(c)) for c in columns]


class Exporter:
    """The tool, and the job kind that runs it."""

    def __init__(self, catalog: Catalog) -> None:
        self.shape = catalog.shapes["contact"]
        self.filter = declare("filter", "", "", filter_params(catalog), read_only=True)
        self.decl = declare(
            "export_contacts",
            "Export contacts",
            "Export the contacts a filter selects (or all) as a CSV resource.",
            [],
            read_only=True,
            toolset=TOOLSET,
        )

    def tool(self) -> ToolDef:
        extra = {"filter": FILTER, "columns": COLUMNS_SCHEMA}
        return tool_def(self.decl, self.call, schema("job_id", "status"), extra=extra, job_kind=self)

    async def call(self, ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        arguments = dict(arguments)
        raw_filter = arguments.pop("filter", {})
        has_columns = "columns" in arguments  # a null is refused like any non-list, not taken as absent
        raw_columns = arguments.pop("columns", None)
        self.decl.validate(arguments)  # nothing else is an argument
        if has_columns and not (
            isinstance(raw_columns, list)
            and 0 < len(raw_columns) <= 100
            and all(isinstance(c, str) for c in raw_columns)
        ):
            raise ArgumentError("export_contacts", ["`columns`: a list of 1 to 100 column names (strings)."])
        if not isinstance(raw_filter, dict):
            raise ArgumentError("export_contacts", ["`filter`: must be an object of find_contacts filters."])
        try:
            crit = self.filter.validate(raw_filter)
        except ArgumentError as exc:
            raise ArgumentError("export_contacts", [p.replace("`", "`filter.", 1) for p in exc.problems]) from None
        columns = list(dict.fromkeys(raw_columns or COLUMNS))
        bad = [c for c in columns if not SLUG.match(c)]
        if bad:
            raise ArgumentError(
                "export_contacts", [f"`columns`: {', '.join(fence(c) for c in bad)} are not column names."]
            )
        jobs = runner(ctx)
        job = await jobs.start(
            "export_contacts", {"filter": crit, "columns": columns}, [], account=ctx.runtime.account, total=0
        )
        ctx.job_id = job.id
        latest = await follow(ctx, job.id, ctx.started + ctx.runtime.settings.call_budget)
        return await job_answer(jobs, latest or job)

    async def run(self, work: Work) -> dict[str, Any]:  # a JobKind
        crit, columns = work.job.args["filter"], work.job.args["columns"]
        found = await scan(work.ctx, {**crit, "max_pages": crit.get("max_pages", MAX_CONTACTS // 100)})
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns)
        written, cut_at = 0, None
        for contact in found.matches[:MAX_CONTACTS]:
            writer.writerow(row(project(self.shape, contact), columns))
            if out.tell() > MAX_BYTES:
                cut_at = contact.get("id")
                break
            written += 1
        data = out.getvalue().encode()
        if cut_at is not None:
            data = data[: data.rfind(b"\r\n", 0, MAX_BYTES) + 2]
        await work.runner.store.put_blob(f"{work.job.id}.csv", data)
        uri = f"systeme://exports/{work.job.id}.csv"
        parts = max(1, -(-len(data) // PART_BYTES))
        text = f"Exported {written} contacts ({scope_text(found, crit)}) to {uri}: {len(data)} bytes"
        text += f", {parts} parts (add ?part=2 … to read the rest)." if parts > 1 else "."
        if cut_at is not None:
            text += f" Stopped at {MAX_BYTES // 1024 // 1024} MiB, before contact #{cut_at}: narrow the filter."
        structured = {"uri": uri, "rows": written, "bytes": len(data), "parts": parts, "columns": columns}
        if not found.complete:
            structured["next_filter"] = {**crit, "starting_after": found.last_id}
        return {"text": text, "structured": structured, "error": False, "resource": {"uri": uri, "bytes": len(data)}}


async def read_export(store: Any, uri: str) -> types.ReadResourceResult | None:
    """The CSV part `uri` names, or None when it names no export kept."""
    match = URI.match(uri)
    if match is None:
        return None
    data = await store.get_blob(f"{match.group(1)}.csv")
    if data is None:
        return None
    part = int(match.group(2) or 1)
    start, end = (part - 1) * PART_BYTES, part * PART_BYTES
    if start >= len(data) and part > 1:
        return None
    if end < len(data):  # parts end at a row's end
        end = data.rfind(b"\r\n", start, end) + 2 or end
    if start:
        start = data.rfind(b"\r\n", 0, start) + 2
    text = data[start:end].decode(errors="replace")
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="text/csv", text=text)])


def export_tool(catalog: Catalog) -> ToolDef:
    return Exporter(catalog).tool()
