"""Token counts (o200k_base, via js-tiktoken from the npm registry — Python's tiktoken downloads its tables
at first use, which fails offline) and the tool-list budget they are held to.

Figures, per tool list — the default one for each backend (SYSTEME_TOOLSETS unset) and `all`:
- tools: how many;
- model_facing: what a client hands the model per tool — name, description and input schema, each tool as
  `json.dumps` writes it, `", "` / `": "` separators included (the measure the issue's figures use; budgeted
  so); `model_facing_compact`: the same without those spaces, for comparison with the payload;
- payload: the whole tools/list result as the server sends it — compact JSON
  (`ListToolsResult.model_dump_json(by_alias=True, exclude_none=True)`), output schemas, annotations and titles
  included; `payload_spaced` is the same tools through `json.dumps` with its default `", "` / `": "`
  separators, which is not what goes on the wire (this benchmark's figure before; printed for comparison);
- the largest descriptions (UTF-8 bytes) and the server instructions' size.
`BUDGETS` are the limits tests/test_token_budget.py enforces through these same functions; the figures also
cover a 100-contact list answer's text vs the raw API JSON.
Run: python benchmarks/tokens.py   (installs js-tiktoken into .bench/ on first use; CI installs it in .ci/run)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp import types

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
TOKENIZER = "js-tiktoken@1"
INSTALL_TIMEOUT = 300.0  # seconds for `npm install`
COUNT_TIMEOUT = 120.0  # seconds for one node run

BUDGETS = {
    "default_tools": 40,  # Cursor loads at most 40 tools in a session
    "default_model_facing": 5_000,
    "default_payload": 8_000,
    "all_payload": 11_000,  # every toolset (issue 12): 71 tools, ~150 tokens each
    "description_bytes": 2_048,  # Claude Code cuts descriptions and instructions at about 2 KB
    "instructions_bytes": 2_048,
}
# The tool lists held to the budget: the default one of each backend, and every toolset. Dummy keys only
# choose the backend (nothing is called).
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "default (sandbox)": {"backend": "sandbox"},
    "default (gateway)": {"backend": "gateway", "maton_api_key": "bench-maton-key"},
    "default (direct)": {"backend": "direct", "systeme_api_key": "bench-systeme-key"},
    "all": {"backend": "sandbox", "toolsets": ["all"]},
}


class TokenizerMissing(RuntimeError):
    """node, npm or js-tiktoken is not available, so tokens cannot be counted here."""


def tokenizer_missing() -> str | None:
    """Why tokens cannot be counted without installing anything (None: they can)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (BENCH / "node_modules" / "js-tiktoken").is_dir():
        return f"js-tiktoken is not installed in {BENCH} (python benchmarks/tokens.py installs it)"
    return None


def install_tokenizer() -> None:
    """Install js-tiktoken into .bench/ (quietly) unless it is there."""
    if (BENCH / "node_modules" / "js-tiktoken").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise TokenizerMissing("npm is needed to install js-tiktoken")
    BENCH.mkdir(exist_ok=True)
    (BENCH / "package.json").write_text('{"name": "bench", "private": true}')
    subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", TOKENIZER],
        cwd=BENCH,
        check=True,
        timeout=INSTALL_TIMEOUT,
    )


def count(texts: list[str], *, install: bool = True) -> list[int]:
    """o200k_base token counts of `texts` (installing js-tiktoken first if `install`, else TokenizerMissing)."""
    if install:
        install_tokenizer()
    missing = tokenizer_missing()
    if missing:
        raise TokenizerMissing(missing)
    script = BENCH / "count_tokens.mjs"  # next to node_modules, where node resolves the import
    source = (ROOT / "benchmarks" / "count_tokens.mjs").read_bytes()
    if not script.is_file() or script.read_bytes() != source:  # replaced whole: a concurrent run never reads half
        partial = script.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(source)
        os.replace(partial, script)
    node = shutil.which("node") or "node"
    run = subprocess.run(
        [node, str(script)], input=json.dumps(texts), capture_output=True, text=True, check=True, timeout=COUNT_TIMEOUT
    )
    counts: list[int] = json.loads(run.stdout)
    return counts


def tool_texts(tools: list[types.Tool]) -> list[str]:
    """What a client hands the model per tool: name, description and input schema."""
    return [json.dumps({"name": t.name, "description": t.description, "input_schema": t.input_schema}) for t in tools]


def payload_text(tools: list[types.Tool]) -> str:
    """The tools/list result as the server sends it (compact JSON)."""
    return types.ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True)


def payload_text_spaced(tools: list[types.Tool]) -> str:
    """The same tools through `json.dumps` with its default separators (not the wire form; for comparison)."""
    return json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])


def configured_tools(name: str) -> list[types.Tool]:
    """The tool list of a CONFIGURATIONS entry, as the server lists it (the full profile)."""
    from systeme_mcp.catalog import load_catalog
    from systeme_mcp.config import Settings
    from systeme_mcp.registry import full_registry, select

    # every option that picks tools is given, so nothing comes from the environment
    settings = Settings(**{"toolsets": None, "read_only": False, **CONFIGURATIONS[name]})
    chosen = select(full_registry(load_catalog()), settings.toolsets, settings.read_only, settings.resolved_backend)
    return [t.tool for t in chosen.values()]


def list_figures(tools: list[types.Tool], *, install: bool = True) -> dict[str, Any]:
    """The budget's figures for one tool list (see the module docstring)."""
    texts = tool_texts(tools)
    compact = [json.dumps(json.loads(t), separators=(",", ":")) for t in texts]
    counted = count([*texts, *compact, payload_text(tools), payload_text_spaced(tools)], install=install)
    n = len(texts)
    per_tool, compact_counts, (payload, spaced) = counted[:n], counted[n : 2 * n], counted[2 * n :]
    sizes = sorted(((len((t.description or "").encode()), t.name) for t in tools), reverse=True)
    return {
        "tools": len(tools),
        "model_facing": sum(per_tool),
        "model_facing_compact": sum(compact_counts),
        "payload": payload,
        "payload_spaced": spaced,
        "largest_model_facing": sorted(zip(per_tool, (t.name for t in tools), strict=True), reverse=True)[:5],
        "largest_descriptions_bytes": sizes[:5],
    }


def budget_figures(*, install: bool = True) -> dict[str, Any]:
    """Every CONFIGURATIONS entry's figures, and the server instructions' size."""
    from systeme_mcp.server import INSTRUCTIONS

    figures: dict[str, Any] = {name: list_figures(configured_tools(name), install=install) for name in CONFIGURATIONS}
    figures["instructions_bytes"] = len(INSTRUCTIONS.encode())
    return figures


def over_budget(figures: dict[str, Any]) -> list[str]:
    """The budgets `figures` exceed, one line each (empty: within every budget)."""
    over: list[str] = []

    def check(what: str, value: int, budget: str) -> None:
        if value > BUDGETS[budget]:
            over.append(f"{what}: {value} > {BUDGETS[budget]} ({budget})")

    for name in CONFIGURATIONS:
        f = figures[name]
        if name == "all":
            check("all: tools/list payload tokens", f["payload"], "all_payload")
        else:
            check(f"{name}: tools", f["tools"], "default_tools")
            check(f"{name}: model-facing tokens", f["model_facing"], "default_model_facing")
            check(f"{name}: tools/list payload tokens", f["payload"], "default_payload")
        for size, tool in f["largest_descriptions_bytes"][:1]:
            check(f"{tool}: description bytes", size, "description_bytes")
    check("server instructions bytes", figures["instructions_bytes"], "instructions_bytes")
    return over


def _toolset(name: str) -> str:
    from systeme_mcp.catalog import load_catalog
    from systeme_mcp.registry import full_registry

    return full_registry(load_catalog())[name].toolset


async def _measure() -> dict[str, Any]:
    from mcp import Client

    from systeme_mcp.config import Settings
    from systeme_mcp.sandbox import Sandbox
    from systeme_mcp.server import serving

    figures: dict[str, Any] = {"budgets": BUDGETS, **budget_figures()}
    figures["over_budget"] = over_budget(figures)
    sandbox = Sandbox(rate_limit=None)
    settings = Settings(backend="sandbox", toolsets=None)
    # the tool lists as a client receives them: the same as the registry's above
    async with serving(settings, sandbox=sandbox) as server, Client(server) as client:
        listed = (await client.list_tools()).tools
        assert len(listed) == figures["default (sandbox)"]["tools"]
    every = configured_tools("all")
    by_toolset: dict[str, int] = {}
    for tool, tokens in zip(every, count(tool_texts(every)), strict=True):
        by_toolset[_toolset(tool.name)] = by_toolset.get(_toolset(tool.name), 0) + tokens
    figures["all_model_facing_by_toolset"] = by_toolset
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

    try:
        print(json.dumps(anyio.run(_measure), indent=1))
    except TokenizerMissing as exc:
        sys.exit(f"cannot count tokens: {exc}")
