"""Issue 12, items 3 and 4: what one list page costs the model, against the raw API JSON of the same items.

For list_contacts(limit=100) and list_tags(limit=100) on a fresh seeded sandbox, through a real MCP client:
items shown in the text (one line each) and in structuredContent, the text's UTF-8 bytes and o200k tokens, the
structured content's bytes (compact JSON, as on the wire) and tokens, and the raw API page (bytes and tokens)
both whole and restricted to the items shown — so every ratio compares the same items.
Run: python benchmarks/page_tokens.py   (o200k via benchmarks/tokens.py: js-tiktoken in .bench/)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, types

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokens import count

from systeme_mcp.config import Settings
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.server import serving

PAGES = (("list_contacts", "/api/contacts"), ("list_tags", "/api/tags"))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def measure() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    sandbox = Sandbox(rate_limit=None)
    headers = {"X-API-Key": "bench"}
    async with (
        serving(Settings(backend="sandbox"), sandbox=sandbox) as server,
        Client(server) as client,
        httpx2.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url, headers=headers) as http,
    ):
        for tool, path in PAGES:
            answer = await client.call_tool(tool, {"limit": 100})
            assert not answer.is_error and answer.structured_content is not None
            text = "\n".join(c.text for c in answer.content if isinstance(c, types.TextContent))
            structured = _json(answer.structured_content)
            body = (await http.get(path, params={"limit": 100})).text
            raw = json.loads(body)
            shown = answer.structured_content["items"]
            same = _json({"items": raw["items"][: len(shown)], "hasMore": raw["hasMore"]})
            text_tokens, structured_tokens, raw_tokens, same_tokens = count([text, structured, body, same])
            figures[f"{tool}(limit=100)"] = {
                "items_fetched": len(raw["items"]),
                "items_in_text": len(text.split("\n")) - 2,  # header and `more:` / `last page.` around the lines
                "items_in_structured": len(shown),
                "text_bytes": len(text.encode()),
                "text_tokens": text_tokens,
                "structured_bytes": len(structured.encode()),
                "structured_tokens": structured_tokens,
                "raw_page_bytes": len(body.encode()),
                "raw_page_tokens": raw_tokens,
                "raw_same_items_bytes": len(same.encode()),
                "raw_same_items_tokens": same_tokens,
                "text_tokens_vs_raw_same_items": round(text_tokens / same_tokens, 3),
                "structured_bytes_vs_raw_page": round(len(structured.encode()) / len(body.encode()), 3),
            }
    return figures


if __name__ == "__main__":
    print(json.dumps(anyio.run(measure), indent=2))
