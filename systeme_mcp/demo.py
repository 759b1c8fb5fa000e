"""`systeme-mcp demo`: a scripted, agent-like session through a real MCP client against the sandbox."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio
from mcp import Client

from .config import Settings
from .projection import call_text
from .server import serving

Step = tuple[str, str, dict[str, Any]]
EXPECTED_REFUSALS = ("A typo", "Deleting asks first")  # steps that show a refusal: an error answer is the point


def _script(ctx: dict[str, Any]) -> list[Step]:
    """(why, tool, arguments) — arguments may name values learned from earlier answers."""
    return [
        ("What tags exist?", "list_tags", {"limit": 10}),
        ("Is jane already a contact?", "get_contact_by_email", {"email": "jane.doe@acme.test"}),
        (
            "Add her, with a custom field (the API calls the last name `surname`: answers show it so).",
            "create_contact",
            {
                "email": "jane.doe@acme.test",
                "first_name": "Jane",
                "last_name": "Doe",
                "locale": "en",
                "fields": {"company_name": "Acme"},
            },
        ),
        (
            "Upsert by email: her phone is added, no duplicate is made.",
            "upsert_contact",
            {"email": "JANE.DOE@acme.test", "phone_number": "+33612345678"},
        ),
        ("Create a tag for the webinar.", "create_tag", {"name": "Webinar Nov 2026"}),
        ("Tag her.", "add_tag_to_contact", {"contact_id": "$contact", "tag_id": "$tag"}),
        ("Which courses are there? (newest first)", "list_courses", {}),
        (
            "Enroll her in the newest course.",
            "create_enrollment",
            {"course_id": "$course", "contact_id": "$contact", "access_type": "full_access"},
        ),
        (
            "A typo the model might make: the server refuses before sending anything.",
            "create_enrollment",
            {"course_id": "$course", "contact_id": "$contact", "access_type": "partial_access"},
        ),
        (
            "Find everyone at gmail.test, scanned server-side.",
            "find_contacts",
            {"email_domain": "gmail.test", "limit": 3},
        ),
        (
            "Tag them all: a preview first (nothing changes), with the exact call that applies it.",
            "bulk_add_tag",
            {"filter": {"email_domain": "gmail.test"}, "tag_id": "$tag"},
        ),
        ("Apply it: longer than the call budget, so it answers with a job and carries on.", "$apply", {}),
        ("Check the job while it runs ...", "get_job", {"job_id": "$job"}),
        ("... and once it is done: what changed.", "$wait_job", {"job_id": "$job"}),
        ("Deleting asks first: without the user's yes, nothing is deleted.", "delete_tag", {"tag_id": "$tag"}),
        ("Page through contacts: first page ...", "list_contacts", {"limit": 10}),
        ("... and the exact next call the answer named.", "$next", {}),
        ("Webhooks never show their secret.", "list_webhooks", {}),
    ]


def _resolve(arguments: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    return {k: ctx[v[1:]] if isinstance(v, str) and v.startswith("$") else v for k, v in arguments.items()}


def _learn(tool: str, structured: dict[str, Any] | None, ctx: dict[str, Any]) -> None:
    if not structured:
        return
    item = structured.get("item") or {}
    if tool == "create_contact" and "id" in item:
        ctx["contact"] = item["id"]
    if structured.get("apply"):
        ctx["apply_call"] = structured["apply"]
    if structured.get("job_id"):
        ctx["job"] = structured["job_id"]
    if tool == "create_tag" and "id" in item:
        ctx["tag"] = item["id"]
    if tool == "list_courses" and structured.get("items"):
        ctx["course"] = structured["items"][0]["id"]
    if structured.get("next"):
        ctx["next_call"] = structured["next"]


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    if tool != "$wait_job":
        return await client.call_tool(tool, arguments)
    while True:  # get_job until the job is done (the demo's job takes a few seconds)
        result = await client.call_tool("get_job", arguments)
        if (result.structured_content or {}).get("status") != "running":
            return result
        await anyio.sleep(0.5)


async def _session(out: Any) -> int:
    from .sandbox import RateLimit, Sandbox  # imported here: only the demo picks the sandbox's rate limit

    started = time.perf_counter()
    # the default toolsets, the opt-in bulk and webhooks ones; a short call budget, and the sandbox at 10 requests a
    # second, so the bulk step outlives its call and shows a job; deletes ask (nobody answers here: nothing is deleted)
    settings = Settings(backend="sandbox", toolsets=["default", "bulk", "webhooks"], call_budget=2)
    sandbox = Sandbox(rate_limit=RateLimit(capacity=10, refill_per_second=10))
    async with serving(settings, sandbox=sandbox) as server, Client(server) as client:
        listed = await client.list_tools()
        print(f"Connected to systeme-mcp on the embedded sandbox: {len(listed.tools)} tools.\n", file=out)
        ctx: dict[str, Any] = {}
        failures = 0
        for why, tool, arguments in _script(ctx):
            if tool in ("$next", "$apply"):
                call = ctx[f"{tool[1:]}_call"]
                tool, arguments = call["tool"], call["arguments"]
            arguments = _resolve(arguments, ctx)
            result = await _call(client, tool, arguments)
            text = "\n".join(c.text for c in result.content if hasattr(c, "text"))
            mark = "error" if result.is_error else "ok"
            shown = "get_job" if tool == "$wait_job" else tool
            print(f"# {why}\n→ {call_text(shown, arguments)}  [{mark}]", file=out)
            print("  " + text.replace("\n", "\n  ") + "\n", file=out)
            _learn(tool, result.structured_content, ctx)
            failures += result.is_error and not why.startswith(EXPECTED_REFUSALS)
        print(f"Done in {time.perf_counter() - started:.2f} s.", file=out)
        return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="systeme-mcp demo", description=__doc__).parse_args(argv)
    return anyio.run(_session, sys.stdout)
