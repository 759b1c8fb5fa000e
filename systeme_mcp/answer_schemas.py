"""Output schemas: what `answers.py` puts in structuredContent, tool by tool, in the compact form the tool-list
budget allows (tests/test_token_budget.py): each schema names the properties every answer of its tool carries
(`required`) and leaves the rest open, so every real answer validates and validating one is cheap. No
`$defs`/`$ref`: each schema stands alone, for clients that do not resolve references.

What the properties hold is one vocabulary for every tool, so it is written once — here, in README and, for
what the model needs (the outcomes), in the server instructions — not in 71 schemas (typed in each, with every
item field listed, the schemas of `all` were ~10,000 tokens, eight times all the tools' descriptions; the
outcome's enum and the error's shape alone, repeated in every write, were 1,100 tokens; clients count them
against their budgets):
- every write answer, failures included: `outcome` — one of `calls.OUTCOMES` (applied, already_applied,
  not_applied, unknown) — and `message`, the answer's first line; a failed one also `error`: {kind, status?,
  retry_after?};
- a list: `items` (objects, each with its key: `id`, or the shape's key such as `slug`), `has_more`, and `next`,
  the exact call for the next page ({tool, arguments}; null on the last);
- a single read: `message`, and `item` where there is one;
- an item: the fields its shape declares (tool_specs/shapes.toml), nulls and empties left out;
- or, from any tool whose call outlived the call budget, a job: `job_id`, `status` and `message` (job_tools.py),
  with `next`, the get_job call that checks it. A schema asks for `job_id` as the alternative only where a
  job's answer would not already have every required property.
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog, Operation

WRITE = ("outcome", "message")  # what every write answer carries
LIST = ("items", "has_more")  # what every page carries
JOB = ("job_id", "status", "message")  # what every job's answer carries (answers.workflow adds the message)


def schema(*required: str) -> dict[str, Any]:
    """An output schema: an object with these properties (and any others) — or a job's."""
    names = list(dict.fromkeys(required))
    if "job_id" in names or set(names) <= set(JOB):  # the tool answers a job itself, or a job's answer fits
        return {"type": "object", "required": names}
    return {"type": "object", "anyOf": [{"required": names}, {"required": ["job_id"]}]}


def write_schema(*required: str) -> dict[str, Any]:
    """A write tool's output schema: its own required properties, then outcome and message."""
    return schema(*required, *WRITE)


def list_schema(*required: str) -> dict[str, Any]:
    """A list tool's output schema: items and has_more, then its own required properties."""
    return schema(*LIST, *required)


def output_schema(catalog: Catalog, op: Operation) -> dict[str, Any]:
    """The outputSchema of a declared operation, matching what answers.operation produces."""
    if op.is_list and catalog.shape(op):
        return list_schema()
    return schema("message") if op.read_only else write_schema()
