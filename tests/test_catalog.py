"""Rules every declared tool must follow, and the reviewed snapshot of each tool (tests/snapshots/tools/)."""

from __future__ import annotations

import re

import jsonschema
import pytest

from systeme_mcp.catalog import Catalog
from systeme_mcp.registry import full_registry
from systeme_mcp.tools import ToolDef

from . import tool_snapshots
from .helpers import hints

REQUIRED_TOOLS = """
list_contacts get_contact create_contact update_contact delete_contact
list_tags get_tag create_tag update_tag delete_tag add_tag_to_contact remove_tag_from_contact
list_contact_fields create_contact_field update_contact_field delete_contact_field
list_courses list_course_modules list_enrollments create_enrollment delete_enrollment
list_communities list_memberships create_membership delete_membership
list_subscriptions cancel_subscription
list_webhooks get_webhook create_webhook update_webhook delete_webhook
list_connections create_connection get_connection delete_connection
""".split()

DESTRUCTIVE = {n for n in REQUIRED_TOOLS if n.startswith("delete_")} | {
    "cancel_subscription",
    "remove_tag_from_contact",
}


@pytest.fixture(scope="module")
def registry(catalog: Catalog) -> dict[str, ToolDef]:
    return full_registry(catalog)


def test_every_required_tool_is_declared(registry: dict[str, ToolDef]) -> None:
    missing = [n for n in REQUIRED_TOOLS if n not in registry]
    assert not missing, f"missing tools: {missing}"


def test_tool_names_follow_the_mcp_naming_rule(registry: dict[str, ToolDef]) -> None:
    for name in registry:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name), name


def test_every_tool_schema_is_valid_and_closed(registry: dict[str, ToolDef]) -> None:
    for t in registry.values():
        assert t.tool.description and t.tool.title, t.name
        assert t.tool.input_schema.get("additionalProperties") is False, t.name
        jsonschema.Draft202012Validator.check_schema(t.tool.input_schema)
        assert t.tool.output_schema is not None, t.name
        jsonschema.Draft202012Validator.check_schema(t.tool.output_schema)
        assert t.tool.annotations is not None and hints(t.tool)["read_only"] is t.read_only, t.name
        if not t.read_only:  # a write always says whether it destroys (clients key their confirmations on it)
            assert t.tool.annotations.destructive_hint is t.destructive, t.name


@pytest.mark.parametrize("name", REQUIRED_TOOLS)
def test_tool_is_fully_described(registry: dict[str, ToolDef], name: str) -> None:
    tool = registry[name].tool
    assert tool.title and tool.description and len(tool.description) < 300
    schema = tool.input_schema
    assert schema["additionalProperties"] is False
    for arg, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{arg} has no description"
        assert arg == arg.lower() and " " not in arg, f"{name}.{arg} is not snake_case"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert tool.output_schema is not None
    jsonschema.Draft202012Validator.check_schema(tool.output_schema)


@pytest.mark.parametrize("name", REQUIRED_TOOLS)
def test_annotations_match_what_the_tool_does(registry: dict[str, ToolDef], name: str) -> None:
    t = registry[name]
    a = hints(t.tool)  # the spec's reading: left-out hints take their defaults
    assert a["read_only"] is name.startswith(("list_", "get_"))
    assert a["destructive"] is (name in DESTRUCTIVE)
    assert a["open_world"] is True
    assert a["idempotent"] is (t.operation is not None and t.operation.is_idempotent)


def test_ids_are_validated_by_kind(registry: dict[str, ToolDef]) -> None:
    for t in registry.values():
        for arg, prop in t.tool.input_schema["properties"].items():
            if arg == "connection_id":  # Maton connection ids are UUIDs
                assert prop["format"] == "uuid", (t.name, arg)
            elif arg == "job_id":
                assert prop["type"] == "string" and prop["maxLength"] == 20, (t.name, arg)  # form checked server-side
            elif arg == "webhook_id":  # a plain string in the specification: non-empty, safe characters
                assert prop["type"] == "string" and prop["pattern"].endswith("]+$"), (t.name, arg)
            elif arg.endswith("_id"):
                assert prop["type"] == "integer" and prop["minimum"] == 1, (t.name, arg)


SNAPSHOTTED = tool_snapshots.registry()  # built as scripts/update_snapshots.py builds it


@pytest.mark.parametrize("name", list(SNAPSHOTTED))
def test_tool_matches_its_reviewed_snapshot(name: str) -> None:
    """A change to a tool's definition must be reviewed: regenerate the snapshots, review and commit the diff."""
    path = tool_snapshots.path_for(name)
    where = path.relative_to(tool_snapshots.ROOT)
    assert path.exists(), f"{where} is missing; review {name}, then run: {tool_snapshots.UPDATE_COMMAND}"
    current = tool_snapshots.render(SNAPSHOTTED[name])
    assert path.read_text(encoding="utf-8") == current, (
        f"{name} differs from {where}; review the change, then run: {tool_snapshots.UPDATE_COMMAND}"
    )


def test_no_snapshot_is_left_for_a_tool_that_no_longer_exists() -> None:
    stale = [str(p.relative_to(tool_snapshots.ROOT)) for p in tool_snapshots.stale(SNAPSHOTTED)]
    assert not stale, f"snapshots of tools that no longer exist: {stale}; run: {tool_snapshots.UPDATE_COMMAND}"
