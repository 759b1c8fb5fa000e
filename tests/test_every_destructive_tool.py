"""Every tool annotated destructive — declared or workflow, bulk included — asks before it destroys anything:
iterated over the registry, so a new destructive tool is covered the day it is added."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from systeme_mcp.catalog import load_catalog
from systeme_mcp.registry import full_registry

from .helpers import RawApi
from .test_every_tool import valid_arguments

pytestmark = pytest.mark.anyio

REGISTRY = full_registry(load_catalog())
DESTRUCTIVE = sorted(name for name, t in REGISTRY.items() if t.destructive)


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["all"], "confirm_destructive": True}


async def workflow_arguments(name: str, api: RawApi) -> dict[str, Any]:
    """Arguments that would destroy something now: the bulk tool applied (dry_run false) to real targets."""
    if name == "bulk_remove_tag":
        tagged = await api.all_items("/api/contacts", tags=1)
        assert tagged, "the seed has contacts with tag 1"
        return {"tag_id": 1, "contact_ids": [c["id"] for c in tagged[:7]], "dry_run": False}
    raise AssertionError(f"{name} is destructive: give it arguments here so its confirmation is tested")


def test_the_destructive_tools_are_the_annotated_ones() -> None:
    for name in DESTRUCTIVE:
        annotations = REGISTRY[name].tool.annotations
        assert annotations is not None and annotations.destructive_hint, name
        assert "confirm" in REGISTRY[name].tool.input_schema["properties"], name
    assert "bulk_remove_tag" in DESTRUCTIVE and "delete_contact" in DESTRUCTIVE


@pytest.mark.parametrize("name", DESTRUCTIVE)
async def test_nothing_is_destroyed_without_confirmation(name: str, mcp: Client, api: RawApi, sandbox: Any) -> None:
    tool = REGISTRY[name]
    arguments = valid_arguments(tool.operation) if tool.operation else await workflow_arguments(name, api)
    sandbox.requests.clear()
    result = await mcp.call_tool(name, arguments)
    writes = [r for r in sandbox.requests if r.method != "GET"]
    assert writes == [], f"{name} sent {writes} without confirmation"
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["outcome"] == "not_applied"
    kind = result.structured_content["error"]["kind"]
    # the question needs the target read first; a target that does not exist is refused as such
    assert kind == "needs_confirmation" or (tool.operation is not None and kind == "not_found"), kind
    if tool.operation is None:
        assert kind == "needs_confirmation"
        assert f"{len(arguments['contact_ids'])} contacts" in result.content[0].text  # type: ignore[union-attr]


async def test_a_confirmed_bulk_removal_applies(mcp: Client, api: RawApi) -> None:
    arguments = await workflow_arguments("bulk_remove_tag", api)
    result = await mcp.call_tool("bulk_remove_tag", {**arguments, "confirm": True})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["outcome"] == "applied"
    left = {c["id"] for c in await api.all_items("/api/contacts", tags=1)}
    assert not left & set(arguments["contact_ids"])
