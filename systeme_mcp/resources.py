"""MCP resources: a contact by id (template), the tag/course/community lists, and an account overview
(counts per resource and the connection in use — never a key). Reads go through the shared client.

A body is scrubbed of secrets first, then bounded like a tool answer (`answers.STRUCTURED_BUDGET` bytes of
JSON): long strings cut with a marker, list items cut from the end; a cut body says `"truncated": true` and how
to get the rest. Its JSON text escapes every non-printable character (account data is typed by strangers)."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp import MCPError, types

from . import bounds, errors
from .answers import ERROR_BUDGET, STRING_BUDGET, STRUCTURED_BUDGET
from .job_resources import TEMPLATES as JOB_TEMPLATES
from .job_resources import read_job_resource
from .projection import cut, json_text, project
from .registry import loaded_toolsets
from .runtime import Runtime
from .wire import build_request

CONTACT = re.compile(r"^systeme://contacts/(\d+)$")
LISTS = {  # resource name → (list operation, description)
    "tags": ("list_tags", "Every tag (id, name)."),
    "courses": ("list_courses", "Every course (id, name, active)."),
    "communities": ("list_communities", "Every community (id, name)."),
}
LIST_PAGES = 5  # a list resource shows at most this many pages of 100
COUNTED = {
    name: f"list_{name}" for name in ("contacts", "tags", "courses", "communities", "webhooks", "contact_fields")
}
COUNT_PAGES = 10  # counting stops here and answers "at least"


async def list_resources(runtime: Runtime, _: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    listed = [
        types.Resource(
            uri="systeme://account",
            name="account",
            title="Systeme.io account",
            description="Counts per resource and the connection in use.",
            mime_type="application/json",
        )
    ]
    listed += [
        types.Resource(uri=f"systeme://{name}", name=name, description=text, mime_type="application/json")
        for name, (_, text) in LISTS.items()
    ]
    return types.ListResourcesResult(resources=listed)


async def list_resource_templates(
    runtime: Runtime, _: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    template = types.ResourceTemplate(
        uri_template="systeme://contacts/{id}",
        name="contact",
        title="Contact",
        description="One contact by id: email, fields, tags.",
        mime_type="application/json",
    )
    return types.ListResourceTemplatesResult(resource_templates=[template, *JOB_TEMPLATES])


async def _get_data(runtime: Runtime, tool: str, args: dict[str, Any]) -> Any:
    return (await runtime.client.send(build_request(runtime.catalog[tool], args))).data


async def _pages(runtime: Runtime, tool: str, max_pages: int) -> tuple[list[Any], bool]:
    """Items of a list operation, paged up to `max_pages`; and whether that was all of them."""
    items: list[Any] = []
    complete = True
    async for page in runtime.client.pages(runtime.catalog[tool], {}, max_pages):
        items += page.items
        complete = not page.has_more
    return items, complete


async def list_items(runtime: Runtime, tool: str, max_pages: int = LIST_PAGES) -> tuple[list[dict[str, Any]], bool]:
    """The compact items of a list operation (used by resources and completions)."""
    shape = runtime.catalog.shape(runtime.catalog[tool])
    assert shape is not None
    items, complete = await _pages(runtime, tool, max_pages)
    return [project(shape, i) for i in items], complete


async def _account(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    backend = settings.resolved_backend
    base = {"direct": settings.systeme_api_url, "gateway": settings.maton_gateway_url + "/systeme"}
    counts: dict[str, Any] = {}
    for name, tool in COUNTED.items():
        try:
            items, complete = await _pages(runtime, tool, COUNT_PAGES)
            counts[name] = len(items) if complete else f"at least {len(items)}"
        except errors.SystemeError as exc:
            counts[name] = f"unavailable: {runtime.client.scrub(exc.message())}"
    return {
        "backend": backend,
        "api": base.get(backend, "embedded sandbox"),
        "maton_connection": settings.maton_connection or ("oldest active" if backend == "gateway" else None),
        "read_only": settings.read_only,
        "toolsets": loaded_toolsets(settings.toolsets, backend),
        "counts": counts,
    }


async def _contact(runtime: Runtime, contact_id: int) -> dict[str, Any]:
    op = runtime.catalog["get_contact"]
    plan = build_request(op, {"contact_id": contact_id})
    data = runtime.client.expect(op, plan, await runtime.client.send(plan), runtime.catalog.shape(op)).data
    return project(runtime.catalog.shapes["contact"], data)


def _bounded(body: dict[str, Any], uri: str) -> dict[str, Any]:
    """`body` within `STRUCTURED_BUDGET` bytes, saying how it was cut and how to get the rest."""
    if bounds.size(body) <= STRUCTURED_BUDGET:
        return body
    name = uri.removeprefix("systeme://")
    tool = LISTS[name][0] if name in LISTS else None
    shrunk, _, notes = bounds.bound_structured(body, STRUCTURED_BUDGET - 1_000, STRING_BUDGET, "")
    items = shrunk.get("items")
    rest = "read the record with the matching get tool for full values"
    if tool and isinstance(items, list) and items and isinstance(items[-1], dict):
        rest = f"{tool}(starting_after={items[-1].get('id')}) lists the items after the last one here"
        shrunk["complete"] = False
    return {**shrunk, "truncated": True, "how": "; ".join(notes), "rest": rest}


async def read_resource(runtime: Runtime, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = cut(str(params.uri), 300)
    if (found := await read_job_resource(runtime, uri)) is not None:
        return found
    body: Any
    try:
        if uri == "systeme://account":
            body = await _account(runtime)
        elif (match := CONTACT.match(uri)) is not None:
            body = await _contact(runtime, int(match.group(1)))
        elif uri.startswith("systeme://") and uri.removeprefix("systeme://") in LISTS:
            items, complete = await list_items(runtime, LISTS[uri.removeprefix("systeme://")][0])
            body = {"items": items, "complete": complete}
        else:
            raise MCPError(
                code=types.INVALID_PARAMS, message=f"Resource not found: {json_text(uri)}", data={"uri": uri}
            )
    except errors.NotFound:
        raise MCPError(
            code=types.INVALID_PARAMS, message=f"Resource not found: {json_text(uri)}", data={"uri": uri}
        ) from None
    except errors.SystemeError as exc:
        message = bounds.safe_text(cut(runtime.client.scrub(exc.message()), ERROR_BUDGET))
        raise MCPError(code=types.INTERNAL_ERROR, message=message) from None
    body = bounds.clean_json(json.loads(runtime.client.scrub(json.dumps(body, ensure_ascii=False))))  # secrets first
    text = bounds.visible_json(_bounded(body, uri))
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=str(params.uri), mime_type="application/json", text=text)]
    )
