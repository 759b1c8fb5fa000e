"""find_contacts: the API's own filters (email, tags, registration dates) where they exist, the rest
(name, email domain, custom field value, tag by name) matched server-side while paging, with a cap on the
pages scanned and the exact call to continue when the cap is hit. `scan` is shared with the bulk tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp import types

from . import answers, calls
from .answer_schemas import list_schema
from .catalog import Catalog, Param
from .policy import PAGE_SIZE
from .projection import call_text, cut, fence, items_of, project
from .runtime import CallContext
from .tools import ToolDef
from .workflow_kit import Declared, Refused, contact_line, declare, param, tool_def

MAX_PAGES = 10  # default cap on pages scanned per call
SHOW = 20  # default number of matches shown
API_FILTERS = ("email", "registered_after", "registered_before", "starting_after")  # the rest are matched here


def filter_params(catalog: Catalog) -> list[Param]:
    """find_contacts' filter arguments (also what a bulk tool's `filter` object accepts)."""
    listing = catalog["list_contacts"].params
    return [
        param("email", listing["email"]),
        param("email_domain", {"type": "string", "max_length": 255}, description="Email domain, e.g. acme.test."),
        param("name", {"type": "string", "max_length": 255}, description="First or last name contains this."),
        param("tag_id", {"type": "integer", "minimum": 1}, description="Has this tag id."),
        param("tag", {"type": "string", "max_length": 64}, description="Has the tag named this."),
        param(
            "field", {"type": "string", "pattern": r"^\w+=", "max_length": 2000}, description="Custom field slug=value."
        ),
        param("registered_after", listing["registered_after"]),
        param("registered_before", listing["registered_before"]),
        param("max_pages", {"type": "integer", "minimum": 1, "maximum": 50}, description="Pages to scan (default 10)."),
        param("starting_after", listing["starting_after"], description="Continue after this contact id."),
    ]


@dataclass
class Scan:
    """What one bounded pass over the contacts found."""

    matches: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    complete: bool = False  # reached the last contact (else stopped at the page cap)
    last_id: int | None = None  # the last contact examined: where a continuation starts


def _fields(contact: dict[str, Any]) -> dict[str, str]:
    return {str(f.get("slug")): str(f.get("value") or "") for f in contact.get("fields") or [] if isinstance(f, dict)}


def matches(contact: dict[str, Any], crit: dict[str, Any]) -> bool:
    """The criteria the API cannot filter on, checked on one contact."""
    if "email_domain" in crit:
        domain = "@" + crit["email_domain"].lstrip("@").casefold()
        if not str(contact.get("email", "")).casefold().endswith(domain):
            return False
    values = _fields(contact)
    if "name" in crit:
        first, last = values.get("first_name", ""), values.get("surname", "")
        if crit["name"].casefold() not in f"{first} {last}\n{last} {first}".casefold():
            return False
    if "field" in crit:
        slug, _, want = crit["field"].partition("=")
        if values.get(slug, "").casefold() != want.strip().casefold():
            return False
    return True


async def tag_id_by_name(ctx: CallContext, name: str) -> int:
    listing = ctx.catalog["list_tags"]
    data = await calls.read(ctx, listing.name, {"query": name, "limit": PAGE_SIZE})
    tags = [t for t in items_of(listing, data) if isinstance(t, dict)]
    for tag in tags:
        if str(tag.get("name", "")).casefold() == name.casefold():
            return int(tag["id"])
    similar = ", ".join(f"{fence(cut(str(t.get('name'))))}#{fence(t.get('id'))}" for t in tags[:10])
    raise Refused(
        f"`tag`: no tag is named {fence(name, quote=True)}." + (f" Tags containing it: {similar}." if similar else "")
    )


async def scan(ctx: CallContext, crit: dict[str, Any]) -> Scan:
    """Page through the contacts the API's filters select, keeping those matching the rest."""
    query: dict[str, Any] = {k: v for k, v in crit.items() if k in API_FILTERS}
    tags = [crit["tag_id"]] if "tag_id" in crit else []
    if "tag" in crit:
        tags.append(await tag_id_by_name(ctx, crit["tag"]))
    if tags:
        query["tag_ids"] = sorted(set(tags))
    out = Scan()
    async for page in ctx.client.pages(ctx.catalog["list_contacts"], query, crit.get("max_pages", MAX_PAGES)):
        items = [c for c in page.items if isinstance(c, dict)]
        out.pages += 1
        out.matches += [c for c in items if matches(c, crit)]
        if items:
            out.last_id = int(items[-1]["id"])
        out.complete = not page.has_more
    return out


def scope_text(found: Scan, crit: dict[str, Any]) -> str:
    """Where the scan looked, in words."""
    where = f"after #{crit['starting_after']}" if "starting_after" in crit else ""
    if found.complete:
        return f"all contacts {where}".strip()
    return f"the {found.pages} pages scanned {where} (page cap; stopped at contact #{found.last_id})".replace("  ", " ")


def _find(catalog: Catalog) -> tuple[Declared, dict[str, Any]]:
    params = [
        *filter_params(catalog),
        param("limit", {"type": "integer", "minimum": 1, "maximum": 100}, description="Matches shown (default 20)."),
    ]
    decl = declare(
        "find_contacts",
        "Find contacts",
        "Find contacts matching all given filters (scanned server-side), newest first; says how many.",
        params,
        read_only=True,
    )
    # total: matches in the contacts scanned; complete: scanned to the last contact; next: the call to continue
    return decl, list_schema("total", "complete", "message")


def find_tool(catalog: Catalog) -> ToolDef:
    decl, output = _find(catalog)
    shape = catalog.shapes["contact"]

    async def impl(ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        crit = decl.validate(arguments)
        found = await scan(ctx, crit)
        limit = crit.get("limit", SHOW)
        lines: list[str] = []
        for contact in found.matches[:limit]:
            text = contact_line(ctx.catalog, contact)
            if sum(len(x) + 1 for x in lines) + len(text) > answers.TEXT_BUDGET - 600 and lines:
                break
            lines.append(text)
        shown = found.matches[: len(lines)]
        total = len(found.matches)
        cursor: int | None = None
        if len(shown) < total:
            cursor = int(shown[-1]["id"])
        elif not found.complete:
            cursor = found.last_id
        nxt_args = {**crit, "starting_after": cursor}
        nxt = {"tool": "find_contacts", "arguments": nxt_args} if cursor else None
        head = f"{total} contact{'s' if total != 1 else ''} match in {scope_text(found, crit)}"
        head += f"; showing {len(shown)}:" if shown else "."
        tail = f"more: {call_text('find_contacts', nxt_args)}" if nxt else ("last page." if shown else "")
        structured = {
            "items": [project(shape, c) for c in shown],
            "total": total,
            "complete": found.complete,
            "has_more": nxt is not None,
            "next": nxt,
        }
        return answers.workflow("\n".join(x for x in [head, *lines, tail] if x), structured)

    return tool_def(decl, impl, output)
