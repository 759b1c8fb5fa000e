"""Figure (b) of issue 7: tokens the model reads for "tag every contact whose email ends in @acme.test".

Both paths run for real through an MCP client against a fresh seeded sandbox, with the same tag id given:
- workflows: bulk_add_tag(filter={"email_domain": "acme.test"}) answers a preview (over the preview
  threshold), then the exact apply call it names answers the summary;
- endpoints: list_contacts(limit=100) page after page (the model filters the emails itself), then one
  add_tag_to_contact per matching contact.
Counted (o200k via benchmarks/tokens.py): the text of every tool answer (what the model reads) and, apart,
the JSON arguments of every call (what it writes). Framing of tool-call blocks is left out on both sides.
Run: python benchmarks/workflow_tokens.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, types

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokens import count

from systeme_mcp.config import Settings
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.server import serving

DOMAIN = "@acme.test"


class Transcript:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.read: list[str] = []
        self.written: list[str] = []

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        self.written.append(json.dumps({"name": tool, "arguments": arguments}))
        self.read.append("\n".join(c.text for c in result.content if isinstance(c, types.TextContent)))
        return result


async def workflows(t: Transcript, tag_id: int) -> None:
    preview = await t.call("bulk_add_tag", {"filter": {"email_domain": "acme.test"}, "tag_id": tag_id})
    assert preview.structured_content is not None
    await t.call("bulk_add_tag", preview.structured_content["apply"]["arguments"])


async def endpoints(t: Transcript, tag_id: int) -> None:
    arguments: dict[str, Any] = {"limit": 100}
    matches: list[int] = []
    while True:
        page = await t.call("list_contacts", arguments)
        assert page.structured_content is not None
        matches += [i["id"] for i in page.structured_content["items"] if i["email"].endswith(DOMAIN)]
        if not page.structured_content["next"]:
            break
        arguments = page.structured_content["next"]["arguments"]
    for contact_id in matches:
        await t.call("add_tag_to_contact", {"contact_id": contact_id, "tag_id": tag_id})


async def measure() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, job in (("workflows", workflows), ("endpoints", endpoints)):
        sandbox = Sandbox(rate_limit=None)
        async with serving(Settings(backend="sandbox"), sandbox=sandbox) as server, Client(server) as client:
            tag_id = (await client.call_tool("create_tag", {"name": "acme"})).structured_content["item"]["id"]
            t = Transcript(client)
            await job(t, tag_id)
            tagged = sum(1 for c in sandbox.store.contacts.values() if tag_id in c.tag_ids)
        read, written = count(["\n".join(t.read)])[0], count(["\n".join(t.written)])[0]
        figures[name] = {"calls": len(t.read), "tokens_read": read, "tokens_written": written, "tagged": tagged}
    figures["contacts_in_sandbox"] = len(sandbox.store.contacts)
    w, e = figures["workflows"], figures["endpoints"]
    assert w["tagged"] == e["tagged"]
    figures["read_ratio_endpoints_over_workflows"] = round(e["tokens_read"] / w["tokens_read"], 1)
    figures["total_ratio"] = round(
        (e["tokens_read"] + e["tokens_written"]) / (w["tokens_read"] + w["tokens_written"]), 1
    )
    return figures


if __name__ == "__main__":
    print(json.dumps(anyio.run(measure), indent=2))
