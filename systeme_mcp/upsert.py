"""get_contact_by_email and upsert_contact: a contact addressed by its email, never duplicated.

upsert reads first, then creates or sends only the changed values; a create refused because the email was
taken meanwhile (the API's own "already used") turns into an update. Writes run through `calls.execute`, so
they keep the exactly-once guarantee, and are answered by `answers.operation`.
"""

from __future__ import annotations

from typing import Any

from mcp import types

from . import answers, calls
from .answer_schemas import schema, write_schema
from .catalog import Catalog, Operation
from .projection import project
from .runtime import CallContext
from .tools import ToolDef
from .workflow_kit import contact_by_email, contact_line, declare, param, tool_def

CONTACT_ARGS = ("first_name", "last_name", "phone_number", "locale", "fields")


def get_by_email_tool(catalog: Catalog) -> ToolDef:
    decl = declare(
        "get_contact_by_email",
        "Get contact by email",
        "Get the contact with this email (case-insensitive), fields and tags, or say there is none.",
        [param("email", catalog["create_contact"].params["email"], description="Email address.")],
        read_only=True,
    )
    shape = catalog.shapes["contact"]

    async def impl(ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        email = decl.validate(arguments)["email"]
        contact = await contact_by_email(ctx, email)
        if contact is None:
            return answers.workflow(f"No contact has the email {email}.", {"found": False})
        text = f"contact {contact_line(ctx.catalog, contact)}"
        return answers.workflow(text, {"found": True, "item": project(shape, contact)})

    return tool_def(decl, impl, schema("found", "message"))  # and the contact as `item` when found


def changed_args(update: Operation, contact: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The subset of `args` that would change `contact` (a merge-patch sends only these)."""
    have = {f.get("slug"): f.get("value") or None for f in contact.get("fields") or [] if isinstance(f, dict)}
    changed: dict[str, Any] = {}
    for name, value in args.items():
        p = update.params[name]
        if p.location == "field" and have.get(p.wire_name) != (value or None):
            changed[name] = value
        elif p.location == "fields":
            diff = {slug: v for slug, v in (value or {}).items() if have.get(slug) != (v or None)}
            if diff:
                changed[name] = diff
        elif p.location == "body" and contact.get(p.wire_name) != value:
            changed[name] = value
    return changed


def upsert_tool(catalog: Catalog) -> ToolDef:
    create, update = catalog["create_contact"], catalog["update_contact"]
    decl = declare(
        "upsert_contact",
        "Create or update contact by email",
        "Create a contact by email, or update only the given values if it exists (never a duplicate).",
        [param(n, create.params[n]) for n in ("email", *CONTACT_ARGS)],
    )
    shape = catalog.shapes["contact"]

    async def updated(ctx: CallContext, contact: dict[str, Any], args: dict[str, Any]) -> types.CallToolResult:
        changes = changed_args(update, contact, args)
        if not changes:
            text = f"Unchanged: contact {contact_line(ctx.catalog, contact)} already has these values."
            item = project(shape, contact)
            return answers.workflow(text, {"action": "unchanged", "outcome": "already_applied", "item": item})
        update_args = {"contact_id": contact["id"], **changes}
        outcome = await calls.execute(ctx, update, update_args)
        lead = f"The email exists; changed {', '.join(changes)}. "
        return answers.operation(ctx.catalog, update, update_args, outcome, lead=lead, extra={"action": "updated"})

    async def impl(ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        args = decl.validate(arguments)
        fields = {k: v for k, v in args.items() if k != "email"}
        existing = await contact_by_email(ctx, args["email"])
        if existing is not None:
            return await updated(ctx, existing, fields)
        outcome = await calls.execute(ctx, create, args)
        if outcome.error is not None and calls.already_done(create, outcome.error):
            existing = await contact_by_email(ctx, args["email"])  # created meanwhile by someone else
            if existing is not None:
                return await updated(ctx, existing, fields)
        lead = "No contact had this email. "
        return answers.operation(ctx.catalog, create, args, outcome, lead=lead, extra={"action": "created"})

    return tool_def(decl, impl, write_schema("action"))  # action: created / updated / unchanged; and `item`
