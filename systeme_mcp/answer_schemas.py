"""Output schemas: what `answers.py` puts in structuredContent, tool by tool, as JSON Schema.

Every write answer — on failure too — carries `outcome` (one of `calls.OUTCOMES`, `unknown` included) and a
short `message`; a failed one also says what kind of failure in `error`.
"""

from __future__ import annotations

from typing import Any

from .calls import OUTCOMES
from .catalog import Catalog, Operation
from .projection import item_schema

OUTCOME: dict[str, Any] = {"enum": list(OUTCOMES)}
MESSAGE: dict[str, Any] = {"type": "string"}
ERROR: dict[str, Any] = {
    "type": "object",
    "description": "Why it failed: kind (e.g. not_found, invalid_arguments, no_answer), HTTP status.",
    "properties": {"kind": {"type": "string"}, "status": {"type": "integer"}, "retry_after": {"type": "number"}},
    "required": ["kind"],
}
NEXT: dict[str, Any] = {"type": ["object", "null"], "description": "The exact call for the next page."}


def write_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A write tool's output schema: its own properties plus outcome, message and error."""
    props = {**properties, "outcome": OUTCOME, "message": MESSAGE, "error": ERROR}
    return {"type": "object", "properties": props, "required": [*required, "outcome", "message"]}


def output_schema(catalog: Catalog, op: Operation) -> dict[str, Any]:
    """The outputSchema of a declared operation, matching what answers.operation produces."""
    shape = catalog.shape(op)
    if op.is_list and shape:
        props = {"items": {"type": "array", "items": item_schema(shape)}, "has_more": {"type": "boolean"}, "next": NEXT}
        return {"type": "object", "properties": props, "required": ["items", "has_more"]}
    item = {"item": item_schema(shape)} if shape else {}
    if not op.read_only:
        return write_schema(item)
    return {"type": "object", "properties": {**item, "message": MESSAGE}, "required": ["message"]}
