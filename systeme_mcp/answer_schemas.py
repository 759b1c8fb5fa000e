"""Output schemas: what `answers.py` puts in structuredContent, tool by tool, in the compact form the tool-list
budget allows (tests/test_token_budget.py): each schema names the properties every answer of its tool carries
(`required`) and leaves the rest open, so every real answer validates and validating one is cheap. No
`$defs`/`$ref`: each schema stands alone, for clients that do not resolve references.

What the properties hold is one vocabulary for every tool, so it is written once, here and in README, not in 61
schemas (typed in each, with every item field listed, the schemas of `all` were ~10,000 tokens, eight times
all the tools' descriptions; clients count them against their budgets):
- every write answer, failures included: `outcome` — one of `calls.OUTCOMES` (applied, already_applied,
  not_applied, unknown) — and `message`, the answer's first line; a failed one also `error`: {kind, status?,
  retry_after?};
- a list: `items` (objects, each with its key: `id`, or the shape's key such as `slug`), `has_more`, and `next`,
  the exact call for the next page ({tool, arguments}; null on the last);
- a single read: `message`, and `item` where there is one;
- an item: the fields its shape declares (tool_specs/shapes.toml), nulls and empties left out;
- or, from any tool whose call outlived the call budget, a job: `job_id` and `status` (job_tools.py), with
  `next`, the get_job call that checks it.
"""

from __future__ import annotations

from typing import Any

from .calls import OUTCOMES
from .catalog import Catalog, Operation

WRITE = ("outcome", "message")  # what every write answer carries
LIST = ("items", "has_more")  # what every page carries
# typed in every write schema: what a client branches on (the outcome, and a failure's kind)
WRITE_PROPERTIES: dict[str, Any] = {
    "outcome": {"enum": list(OUTCOMES)},
    "error": {"type": "object", "required": ["kind"]},
}


JOB = ("job_id", "status")  # what an answer carries instead when the call carries on as a job


def schema(*required: str) -> dict[str, Any]:
    """An output schema: an object with these properties (and any others) — or a job's."""
    names = list(dict.fromkeys(required))
    if set(JOB) <= set(names):
        return {"type": "object", "required": names}
    return {"type": "object", "anyOf": [{"required": names}, {"required": list(JOB)}]}


def write_schema(*required: str) -> dict[str, Any]:
    """A write tool's output schema: its own required properties, then outcome (typed) and message."""
    return {**schema(*required, *WRITE), "properties": WRITE_PROPERTIES}


def list_schema(*required: str) -> dict[str, Any]:
    """A list tool's output schema: items and has_more, then its own required properties."""
    return schema(*LIST, *required)


def output_schema(catalog: Catalog, op: Operation) -> dict[str, Any]:
    """The outputSchema of a declared operation, matching what answers.operation produces."""
    if op.is_list and catalog.shape(op):
        return list_schema()
    return schema("message") if op.read_only else write_schema()
