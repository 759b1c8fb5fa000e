"""The tool-list budget (issue 12, item 1), as a fact about the catalog: the default tool list of every backend
within 40 tools, 5,000 tokens model-facing and 8,000 tokens of tools/list payload; every toolset (`all`) within
11,000 tokens of payload; every description and the server instructions within 2 KB, each description saying
what its tool is for first.

Tokens are o200k_base, counted by benchmarks/tokens.py (js-tiktoken under node, in .bench/): the same functions
print the figures there. Without node or js-tiktoken the token checks skip with the reason — except under
CI=true, where they fail (.ci/run installs js-tiktoken)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from systeme_mcp.registry import default_toolsets, full_registry, select
from systeme_mcp.server import INSTRUCTIONS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from tokens import (
    BUDGETS,
    CONFIGURATIONS,
    budget_figures,
    configured_tools,
    over_budget,
    tokenizer_missing,
)

# The first word of every description: what the tool does, as a verb.
VERBS = frozenset(
    (
        "List Get Find Create Define Draft Start Add Enroll Update Change Rename Replace Schedule Send Remove Delete "
        "Cancel Import Export"
    ).split()
)


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    missing = tokenizer_missing()
    if missing:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"cannot count tokens under CI: {missing} (.ci/run installs js-tiktoken)")
        pytest.skip(f"cannot count tokens: {missing}")
    return budget_figures(install=False)


def test_every_tool_list_is_within_its_token_budget(figures: dict[str, Any]) -> None:
    summary = {name: {k: figures[name][k] for k in ("tools", "model_facing", "payload")} for name in CONFIGURATIONS}
    assert not over_budget(figures), f"{over_budget(figures)}; figures: {summary}"


def test_the_lists_differ_as_their_toolsets_do(figures: dict[str, Any]) -> None:
    assert figures["default (sandbox)"] == figures["default (gateway)"]  # the sandbox models Maton: same list
    assert figures["default (direct)"]["tools"] < figures["default (gateway)"]["tools"]  # no connections
    assert figures["all"]["tools"] == len(full_registry_tools())
    assert figures["all"]["payload"] > figures["default (gateway)"]["payload"]


def full_registry_tools() -> list[Any]:
    from systeme_mcp.catalog import load_catalog

    return list(full_registry(load_catalog()).values())


@pytest.mark.anyio
async def test_the_measured_list_is_the_one_the_server_serves(mcp: Client) -> None:
    served = (await mcp.list_tools()).tools  # the default toolsets on the sandbox
    measured = configured_tools("default (sandbox)")
    assert [t.model_dump() for t in served] == [t.model_dump() for t in measured]


# ---------------------------------------------------------------- the checks that need no tokenizer
@pytest.mark.parametrize("name", [name for name in CONFIGURATIONS if name != "all"])
def test_every_default_list_fits_a_40_tool_client(name: str) -> None:
    tools = configured_tools(name)
    assert len(tools) <= BUDGETS["default_tools"], [t.name for t in tools]


def test_every_description_is_short_and_says_first_what_the_tool_is_for() -> None:
    for tool in full_registry_tools():
        description = tool.tool.description or ""
        assert len(description.encode()) <= BUDGETS["description_bytes"], tool.name
        first = re.split(r"(?<=[.;:])\s", description, maxsplit=1)[0]
        assert first.split()[0] in VERBS, f"{tool.name}: {first!r} does not start with what the tool does"


def test_the_server_instructions_fit_in_2_kb() -> None:
    assert len(INSTRUCTIONS.encode()) <= BUDGETS["instructions_bytes"]


def test_the_connection_tools_load_by_default_only_where_maton_is() -> None:
    every = {t.name: t for t in full_registry_tools()}
    for backend in ("gateway", "sandbox"):
        assert "connections" in default_toolsets(backend)
        assert "list_connections" in select(every, None, False, backend)
    assert "connections" not in default_toolsets("direct")
    assert "list_connections" not in select(every, None, False, "direct")
    assert "list_connections" in select(every, ["connections"], False, "direct")  # when asked
    with_bulk = select(every, ["default", "bulk"], False, "direct")
    assert "bulk_add_tag" in with_bulk and "list_contacts" in with_bulk and "list_connections" not in with_bulk
