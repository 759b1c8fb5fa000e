"""Token counts (o200k_base, via js-tiktoken from the npm registry — Python's tiktoken downloads its tables
at first use, which fails offline).

Figures: the tool list as clients hand it to the model (name + description + input schema of every tool),
the full tools/list payload, and a 100-contact list answer's text vs the raw API JSON.
Run: python benchmarks/tokens.py   (installs js-tiktoken into .bench/ on first use)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"


def _ensure_tokenizer() -> None:
    if (BENCH / "node_modules" / "js-tiktoken").exists():
        return
    BENCH.mkdir(exist_ok=True)
    (BENCH / "package.json").write_text('{"name": "bench", "private": true}')
    npm = shutil.which("npm") or sys.exit("npm is needed to count tokens (js-tiktoken)")
    subprocess.run([npm, "install", "--silent", "js-tiktoken@1"], cwd=BENCH, check=True)


def count(texts: list[str]) -> list[int]:
    """o200k_base token counts of `texts`."""
    _ensure_tokenizer()
    script = BENCH / "count_tokens.mjs"
    shutil.copy(ROOT / "benchmarks" / "count_tokens.mjs", script)
    run = subprocess.run(["node", str(script)], input=json.dumps(texts), capture_output=True, text=True, check=True)
    counts: list[int] = json.loads(run.stdout)
    return counts


def tool_texts(tools: list[Any]) -> list[str]:
    """What a client hands the model per tool: name, description and input schema."""
    return [json.dumps({"name": t.name, "description": t.description, "input_schema": t.input_schema}) for t in tools]


def _toolset(name: str) -> str:
    from systeme_mcp.catalog import load_catalog

    operations = load_catalog().operations
    return operations[name].toolset if name in operations else "workflows"


async def _measure() -> dict[str, Any]:
    from mcp import Client

    from systeme_mcp.config import Settings
    from systeme_mcp.sandbox import Sandbox
    from systeme_mcp.server import serving

    figures: dict[str, Any] = {}
    sandbox = Sandbox(rate_limit=None)
    settings = Settings(backend="sandbox")
    async with serving(settings, sandbox=sandbox) as server, Client(server) as client:
        tools = (await client.list_tools()).tools
        per_tool = count(tool_texts(tools))
        payload = json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
        figures["tools"] = len(tools)
        figures["tool_list_tokens"] = sum(per_tool)
        figures["tools_list_payload_tokens"] = count([payload])[0]
        figures["largest_tools"] = sorted(zip(per_tool, [t.name for t in tools], strict=True), reverse=True)[:5]
    # the list above is the default (SYSTEME_TOOLSETS unset); this one is every toolset (SYSTEME_TOOLSETS=all)
    async with serving(Settings(backend="sandbox", toolsets=["all"]), sandbox=sandbox) as server, Client(server) as c:
        every = (await c.list_tools()).tools
        every_counts = count(tool_texts(every))
        figures["all_tools"] = len(every)
        figures["all_tool_list_tokens"] = sum(every_counts)
        by_toolset: dict[str, int] = {}
        for tool, tokens in zip(every, every_counts, strict=True):
            by_toolset[_toolset(tool.name)] = by_toolset.get(_toolset(tool.name), 0) + tokens
        figures["tokens_by_toolset"] = by_toolset
    async with serving(settings, sandbox=sandbox) as server, Client(server) as client:
        answer = await client.call_tool("list_contacts", {"limit": 100})
        text = "\n".join(c.text for c in answer.content if hasattr(c, "text"))
        import httpx2

        async with httpx2.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url) as raw:
            body = (await raw.get("/api/contacts", params={"limit": 100}, headers={"X-API-Key": "k"})).text
        answer_tokens, raw_tokens = count([text, body])
        figures["list_100_contacts_text_tokens"] = answer_tokens
        figures["list_100_contacts_raw_json_tokens"] = raw_tokens
        figures["text_vs_raw_ratio"] = round(answer_tokens / raw_tokens, 3)
    return figures


if __name__ == "__main__":
    import anyio

    print(json.dumps(anyio.run(_measure), indent=2))
