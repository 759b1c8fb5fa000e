"""Toolsets (issue 8, issue 12): payment, webhooks, bulk, funnels, mailing and SMS are opt-in, with every new tool
in its toolset and fully described; `all`, `default` and explicit lists load what they name; an unset list
serves the default toolsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client

from systeme_mcp.catalog import Catalog
from systeme_mcp.registry import DEFAULT_TOOLSETS, OPT_IN_TOOLSETS, full_registry, select
from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.tools import ToolDef

from .conftest import sandbox_settings
from .helpers import hints

TOOLSETS = {  # issue 8, and issue 15's steps
    "funnels": "list_funnels get_funnel create_funnel list_funnel_steps get_funnel_step create_funnel_step".split(),
    "mailing": """list_campaigns get_campaign create_campaign update_campaign delete_campaign list_campaign_steps
    get_campaign_step list_newsletters get_newsletter create_newsletter update_newsletter set_newsletter_tags
    schedule_newsletter send_newsletter""".split(),
    "sms": "list_sms_message_services list_sms_phone_numbers get_twilio_account".split(),
}
NEW_TOOLS = [name for names in TOOLSETS.values() for name in names]
DESTRUCTIVE = {"delete_campaign", "schedule_newsletter", "send_newsletter"}
README = Path(__file__).resolve().parent.parent / "README.md"


# ---------------------------------------------------------------- declaration rules for the new tools
@pytest.fixture(scope="module")
def registry(catalog: Catalog) -> dict[str, ToolDef]:
    return full_registry(catalog)


@pytest.mark.parametrize("name", NEW_TOOLS)
def test_new_tool_is_fully_described(registry: dict[str, ToolDef], name: str) -> None:
    t = registry[name]
    assert t.toolset == next(ts for ts, names in TOOLSETS.items() if name in names)
    tool = t.tool
    assert tool.title and tool.description and len(tool.description) < 140, "keep descriptions short"
    assert tool.input_schema["additionalProperties"] is False
    for arg, prop in tool.input_schema["properties"].items():
        assert prop.get("description"), f"{name}.{arg} has no description"
        assert arg == arg.lower() and " " not in arg
    jsonschema.Draft202012Validator.check_schema(tool.input_schema)
    assert tool.output_schema is not None
    jsonschema.Draft202012Validator.check_schema(tool.output_schema)
    a = hints(tool)  # the spec's reading: left-out hints take their defaults
    assert a["open_world"] is True
    assert a["read_only"] is name.startswith(("list_", "get_"))
    assert a["destructive"] is (name in DESTRUCTIVE)
    assert f"`{name}`" in README.read_text(encoding="utf-8"), "README tool table is stale"


# ---------------------------------------------------------------- default toolsets
def test_default_toolsets_leave_out_the_opt_in_ones(registry: dict[str, ToolDef]) -> None:
    default = select(registry, None, read_only=False)
    assert set(OPT_IN_TOOLSETS) == {"payment", "webhooks", "bulk", "funnels", "mailing", "sms"}
    assert not {t.toolset for t in default.values()} & set(OPT_IN_TOOLSETS)
    assert {t.toolset for t in default.values()} == set(DEFAULT_TOOLSETS)  # no backend given: the gateway's
    assert "list_contacts" in default and "list_funnels" not in default and "bulk_add_tag" not in default
    # `default` names them, so an opt-in toolset is added without listing the others
    assert select(registry, ["default"], read_only=False).keys() == default.keys()
    bulk = {name for name, t in registry.items() if t.toolset == "bulk"}
    assert bulk == {"bulk_add_tag", "bulk_remove_tag", "bulk_enroll", "bulk_add_to_community"} | {
        "import_contacts",
        "export_contacts",
    }
    assert select(registry, ["default", "bulk"], read_only=False).keys() == default.keys() | bulk


def test_all_keyword_and_explicit_toolsets(registry: dict[str, ToolDef]) -> None:
    assert select(registry, ["all"], read_only=False).keys() == registry.keys()
    mailing = select(registry, ["mailing"], read_only=False)
    assert sorted(mailing) == sorted(TOOLSETS["mailing"])
    read_only = select(registry, ["sms", "funnels"], read_only=True)
    assert "create_funnel" not in read_only and "get_twilio_account" in read_only
    with pytest.raises(
        ValueError, match=r"unknown toolset\(s\): mail; valid toolsets: .*mailing.* \(or `all`, `default`\)"
    ):
        select(registry, ["mail"], read_only=False)


@pytest.mark.anyio
async def test_unset_toolsets_serve_the_default_list(sandbox: Any) -> None:
    async with open_runtime(sandbox_settings(), sandbox=sandbox) as rt, Client(create_server(rt)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "list_contacts" in names and not names & set(NEW_TOOLS)
