"""What workflow tools (find, upsert, bulk) are built from: declarations shaped like operations, a handler
wrapper that turns refusals and API failures into answers, and shared contact reads.

A workflow tool is declared like an operation — `catalog.Param`s, many reused from the catalog's own
declarations — so its input schema, argument model and error messages come from `schemas.py` exactly as for
the declared operations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import answers, calls, errors
from .catalog import Catalog, Operation, Param, Rule, confirmable
from .projection import items_of, line, project
from .runtime import CallContext
from .schemas import ArgumentError, ArgumentsModel, input_schema
from .tools import ToolDef, tool_def_of

TOOLSET = "workflows"


class Refused(Exception):
    """A workflow cannot proceed; the message says why and what to do (an isError answer, its `error.kind`)."""

    def __init__(self, message: str, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Declared:
    """A workflow tool's declaration: an Operation-shaped argument list and its (lazily built) model."""

    op: Operation
    model: ArgumentsModel = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", ArgumentsModel(self.op))

    def validate(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        return self.model.validate(arguments)


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
    toolset: str = TOOLSET,
) -> Declared:
    op = Operation(
        name=name,
        title=title,
        description=description,
        toolset=toolset,
        method="GET" if read_only else "POST",
        path="",
        result="none",
        params={p.name: p for p in params},
        rules=rules or [],
        idempotent=True,
        destructive=destructive,
    )
    return Declared(confirmable(op))


Impl = Callable[[CallContext, dict[str, Any]], Awaitable[answers.Answer]]


def tool_def(
    decl: Declared, impl: Impl, output: dict[str, Any], *, extra: dict[str, Any] | None = None, job_kind: Any = None
) -> ToolDef:
    """The ToolDef: derived input schema (+ `extra` hand-checked properties), annotations, and a handler that
    turns argument problems, refusals and API failures into answers; `job_kind`: the jobs it starts."""
    op = decl.op
    schema = input_schema(op)
    schema["properties"].update(extra or {})
    write = not op.read_only

    async def handler(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        try:
            return await impl(ctx, arguments)
        except ArgumentError as exc:
            return answers.invalid_arguments(exc, write=write)
        except Refused as exc:
            return answers.refused(str(exc), write=write, kind=exc.kind)
        except errors.SystemeError as exc:
            return answers.refused(exc.message(), write=write, kind=exc.code)

    return tool_def_of(op, schema, output, handler, job_kind=job_kind)


def contact_line(catalog: Catalog, contact: Any) -> str:
    shape = catalog.shapes["contact"]
    return line(shape, project(shape, contact))


async def contact_by_email(ctx: CallContext, email: str) -> dict[str, Any] | None:
    """The contact with this email (case-insensitive), or None."""
    listing = ctx.catalog["list_contacts"]
    data = await calls.read(ctx, listing.name, {"email": email})
    found = [
        c
        for c in items_of(listing, data)
        if isinstance(c, dict) and str(c.get("email", "")).casefold() == email.casefold()
    ]
    return found[0] if found else None
