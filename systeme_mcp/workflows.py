"""Workflow tools no single API endpoint offers: find, get-by-email, upsert (here) and bulk (`bulk.py`).

Each workflow tool is declared like an operation — `catalog.Param`s, many reused from the catalog's own
declarations — so its input schema, argument model and error messages come from `schemas.py` exactly as for
the declared operations. Writes run through `operations.run`, so they keep the exactly-once guarantee.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp import types
from pydantic import BaseModel

from . import errors, operations
from .catalog import Catalog, Operation, Param, Rule
from .runtime import CallContext
from .schemas import ArgumentError, arguments_model, input_schema, validate_arguments
from .summaries import _get, item_schema, line, project
from .tools import ToolDef, operation_tool
from .wire import build_request

TOOLSET = "workflows"


class Refused(Exception):
    """A workflow cannot proceed; the message says why and what to do (an isError answer)."""


@dataclass(frozen=True)
class Declared:
    """A workflow tool's declaration: an Operation-shaped argument list plus its pydantic model."""

    op: Operation
    model: type[BaseModel]

    def validate(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        return validate_arguments(self.op, self.model, arguments)


def param(name: str, spec: Param | dict[str, Any], **changes: Any) -> Param:
    """A local (server-side) argument: a fresh spec, or a catalog Param reused with `changes`."""
    if isinstance(spec, Param):
        return spec.model_copy(update={"name": name, "location": "local", **changes})
    return Param.model_validate({"name": name, "in": "local", **spec, **changes})


def declare(
    name: str,
    title: str,
    description: str,
    params: list[Param],
    *,
    read_only: bool = False,
    destructive: bool = False,
    rules: list[Rule] | None = None,
) -> Declared:
    op = Operation(
        name=name,
        title=title,
        description=description,
        toolset=TOOLSET,
        method="GET" if read_only else "POST",
        path="",
        result="none",
        params={p.name: p for p in params},
        rules=rules or [],
        idempotent=True,
        destructive=destructive,
    )
    return Declared(op, arguments_model(op))


Impl = Callable[[CallContext, dict[str, Any]], Awaitable[types.CallToolResult]]


def tool_def(decl: Declared, impl: Impl, output: dict[str, Any], *, extra: dict[str, Any] | None = None) -> ToolDef:
    """The ToolDef: derived input schema (+ `extra` hand-checked properties), annotations, a handler that
    validates first and turns refusals and API failures into isError answers."""
    op = decl.op
    schema = input_schema(op)
    schema["properties"].update(extra or {})

    async def handler(ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            return await impl(ctx, arguments)
        except ArgumentError as exc:
            return operations.error_result(str(exc))
        except Refused as exc:
            return operations.error_result(ctx.client.scrub(str(exc)))
        except errors.SystemeError as exc:
            return operations.error_result(ctx.client.scrub(exc.message()))

    tool = types.Tool(
        name=op.name,
        title=op.title,
        description=op.description,
        input_schema=schema,
        output_schema=output,
        annotations=types.ToolAnnotations(
            read_only_hint=op.read_only,
            destructive_hint=op.is_destructive and not op.read_only,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    return ToolDef(tool=tool, toolset=TOOLSET, read_only=op.read_only, destructive=op.is_destructive, handler=handler)


def result(text: str, structured: dict[str, Any], *, error: bool = False) -> types.CallToolResult:
    return operations.text_result(text, {**structured, "message": text.split("\n", 1)[0]}, error=error)


def answer_text(res: types.CallToolResult) -> str:
    return "\n".join(c.text for c in res.content if isinstance(c, types.TextContent))


def contact_schema(catalog: Catalog) -> dict[str, Any]:
    return item_schema(catalog.shapes["contact"])


def contact_line(catalog: Catalog, contact: Any) -> str:
    shape = catalog.shapes["contact"]
    return line(shape, project(shape, contact))


async def read(ctx: CallContext, tool: str, args: dict[str, Any]) -> Any:
    """One declared read (retried by the client); the answer's data."""
    return (await ctx.client.send(build_request(ctx.catalog[tool], args))).data


async def contact_by_email(ctx: CallContext, email: str) -> dict[str, Any] | None:
    data = await read(ctx, "list_contacts", {"email": email})
    items = _get(data, "items") if isinstance(data, dict) else None
    found = [c for c in items or [] if str(c.get("email", "")).casefold() == email.casefold()]
    return found[0] if found else None


# ---------------------------------------------------------------- get_contact_by_email / upsert_contact
CONTACT_ARGS = ("first_name", "last_name", "phone_number", "locale", "fields")


def _get_by_email(catalog: Catalog) -> ToolDef:
    decl = declare(
        "get_contact_by_email",
        "Get contact by email",
        "The contact with this email (case-insensitive), with fields and tags; says plainly if there is none.",
        [param("email", catalog["create_contact"].params["email"], description="Email address.")],
        read_only=True,
    )

    async def impl(ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        email = decl.validate(arguments)["email"]
        contact = await contact_by_email(ctx, email)
        if contact is None:
            return result(f"No contact has the email {email}.", {"found": False})
        shape = ctx.catalog.shapes["contact"]
        return result(f"contact {contact_line(ctx.catalog, contact)}", {"found": True, "item": project(shape, contact)})

    output = {
        "type": "object",
        "properties": {"found": {"type": "boolean"}, "item": contact_schema(catalog), "message": {"type": "string"}},
        "required": ["found", "message"],
    }
    return tool_def(decl, impl, output)


def _changed_args(update: Operation, contact: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
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


def _upsert(catalog: Catalog) -> ToolDef:
    create = catalog["create_contact"]
    decl = declare(
        "upsert_contact",
        "Create or update contact by email",
        "Create the contact with this email, or update the existing one with only the values given (never a "
        "duplicate). Says which happened.",
        [param(n, create.params[n]) for n in ("email", *CONTACT_ARGS)],
    )
    create_tool = operation_tool(catalog, create)
    update_tool = operation_tool(catalog, catalog["update_contact"])
    shape = catalog.shapes["contact"]

    async def updated(ctx: CallContext, contact: dict[str, Any], args: dict[str, Any]) -> types.CallToolResult:
        changes = _changed_args(update_tool.operation or create, contact, args)
        if not changes:
            text = f"Unchanged: contact {contact_line(ctx.catalog, contact)} already has these values."
            return result(text, {"action": "unchanged", "outcome": "already_applied", "item": project(shape, contact)})
        res = await operations.run(ctx, update_tool, {"contact_id": contact["id"], **changes})
        return _relabel(res, "updated", f"The email exists; changed {', '.join(changes)}. ")

    async def impl(ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        args = decl.validate(arguments)
        fields = {k: v for k, v in args.items() if k != "email"}
        existing = await contact_by_email(ctx, args["email"])
        if existing is not None:
            return await updated(ctx, existing, fields)
        res = await operations.run(ctx, create_tool, args)
        if isinstance(res, types.CallToolResult) and res.is_error and "already used" in answer_text(res):
            existing = await contact_by_email(ctx, args["email"])  # created meanwhile by someone else
            if existing is not None:
                return await updated(ctx, existing, fields)
        return _relabel(res, "created", "No contact had this email. ")

    output = {
        "type": "object",
        "properties": {
            "action": {"enum": ["created", "updated", "unchanged"]},
            "outcome": {"enum": ["applied", "already_applied", "not_applied"]},
            "item": item_schema(shape),
            "message": {"type": "string"},
        },
        "required": ["action", "outcome", "message"],
    }
    return tool_def(decl, impl, output)


def _relabel(res: types.CallToolResult | types.InputRequiredResult, action: str, prefix: str) -> types.CallToolResult:
    """An operations.run answer with what the upsert did said first."""
    assert isinstance(res, types.CallToolResult)  # create/update never ask for confirmation
    if res.is_error:
        return res
    structured = dict(res.structured_content or {})
    return result(prefix + answer_text(res), {**structured, "action": action})


def workflow_tools(catalog: Catalog) -> list[ToolDef]:
    """Workflow ToolDefs to register beside the declared operations."""
    from .bulk import bulk_tools
    from .finder import find_tool

    return [find_tool(catalog), _get_by_email(catalog), _upsert(catalog), *bulk_tools(catalog)]
