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


def _script(ctx: dict[str, Any]) -> list[Step]:
    """(why, tool, arguments) — arguments may name values learned from earlier answers."""
    return [
        ("What tags exist?", "list_tags", {"limit": 10}),
        ("Is jane already a contact?", "list_contacts", {"email": "jane.doe@acme.test"}),
        (
            "Add her, with a custom field.",
            "create_contact",
            {
                "email": "jane.doe@acme.test",
                "first_name": "Jane",
                "last_name": "Doe",
                "locale": "en",
                "fields": {"company_name": "Acme"},
            },
        ),
        ("Create a tag for the webinar.", "create_tag", {"name": "Webinar Nov 2026"}),
        ("Tag her.", "add_tag_to_contact", {"contact_id": "$contact", "tag_id": "$tag"}),
        ("Which courses are there?", "list_courses", {}),
        (
            "Enroll her in the first course.",
            "create_enrollment",
            {"course_id": "$course", "contact_id": "$contact", "access_type": "full_access"},
        ),
        ("Check her record.", "get_contact", {"contact_id": "$contact"}),
        (
            "A typo the model might make: the server refuses before sending anything.",
            "create_enrollment",
            {"course_id": "$course", "contact_id": "$contact", "access_type": "partial_access"},
        ),
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
    if tool == "create_tag" and "id" in item:
        ctx["tag"] = item["id"]
    if tool == "list_courses" and structured.get("items"):
        ctx["course"] = structured["items"][0]["id"]
    if structured.get("next"):
        ctx["next_call"] = structured["next"]


async def _session(out: Any) -> int:
    started = time.perf_counter()
    # the default toolsets, and the opt-in webhooks one for the last step
    settings = Settings(backend="sandbox", confirm_destructive=False, toolsets=["default", "webhooks"])
    async with serving(settings) as server, Client(server) as client:
        listed = await client.list_tools()
        print(f"Connected to systeme-mcp on the embedded sandbox: {len(listed.tools)} tools.\n", file=out)
        ctx: dict[str, Any] = {}
        failures = 0
        for why, tool, arguments in _script(ctx):
            if tool == "$next":
                tool, arguments = ctx["next_call"]["tool"], ctx["next_call"]["arguments"]
            arguments = _resolve(arguments, ctx)
            result = await client.call_tool(tool, arguments)
            text = "\n".join(c.text for c in result.content if hasattr(c, "text"))
            mark = "error" if result.is_error else "ok"
            print(f"# {why}\n→ {call_text(tool, arguments)}  [{mark}]", file=out)
            print("  " + text.replace("\n", "\n  ") + "\n", file=out)
            _learn(tool, result.structured_content, ctx)
            failures += result.is_error and "typo" not in why
        print(f"Done in {time.perf_counter() - started:.2f} s.", file=out)
        return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="systeme-mcp demo", description=__doc__).parse_args(argv)
    return anyio.run(_session, sys.stdout)
