"""Resources, prompts and completions through real MCP client sessions (both eras) on the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client, MCPError, types

from .helpers import RawApi

pytestmark = pytest.mark.anyio


async def read_json(mcp: Client, uri: str) -> Any:
    result = await mcp.read_resource(uri)
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents) and content.mime_type == "application/json"
    return json.loads(content.text)


async def test_resources_and_template_are_listed(mcp: Client) -> None:
    uris = {str(r.uri) for r in (await mcp.list_resources()).resources}
    assert uris == {"systeme://account", "systeme://tags", "systeme://courses", "systeme://communities"}
    templates = (await mcp.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == [
        "systeme://contacts/{id}",
        "systeme://jobs/{job_id}",
        "systeme://exports/{job_id}.csv",
    ]


async def test_contact_resource(mcp: Client, api: RawApi) -> None:
    contact = (await api.get("/api/contacts"))["items"][0]
    body = await read_json(mcp, f"systeme://contacts/{contact['id']}")
    assert body["id"] == contact["id"] and body["email"] == contact["email"]
    with pytest.raises(MCPError, match="Resource not found"):
        await mcp.read_resource("systeme://contacts/999999")
    with pytest.raises(MCPError, match="Resource not found"):
        await mcp.read_resource("systeme://nothing")


@pytest.mark.parametrize(("name", "path"), [("tags", "/api/tags"), ("courses", "/api/school/courses"),
                                            ("communities", "/api/community/communities")])  # fmt: skip
async def test_list_resources_match_the_account(mcp: Client, api: RawApi, name: str, path: str) -> None:
    body = await read_json(mcp, f"systeme://{name}")
    assert body["complete"] is True
    assert [i["name"] for i in body["items"]] == [i["name"] for i in await api.all_items(path)]


async def test_account_resource_counts_and_connection_without_secrets(mcp: Client, api: RawApi) -> None:
    result = await mcp.read_resource("systeme://account")
    raw = result.contents[0]
    assert isinstance(raw, types.TextResourceContents)
    assert "sandbox-maton-key" not in raw.text and "Bearer" not in raw.text
    body = json.loads(raw.text)
    assert body["backend"] == "sandbox"
    assert body["toolsets"] == ["contacts", "tags", "fields", "school", "community", "connections", "workflows", "jobs"]
    assert body["counts"]["contacts"] == len(await api.all_items("/api/contacts"))
    assert body["counts"]["tags"] == len(await api.all_items("/api/tags"))
    assert body["counts"]["webhooks"] == len((await api.get("/api/webhooks"))["items"])


async def test_prompts_are_described_and_render(mcp: Client) -> None:
    prompts = {p.name: p for p in (await mcp.list_prompts()).prompts}
    assert set(prompts) == {"onboard_new_customer", "clean_up_tag", "audit_webhooks"}
    for p in prompts.values():
        assert p.description and all(a.description for a in p.arguments or [])
    got = await mcp.get_prompt(
        "onboard_new_customer", {"email": "ana@acme.test", "first_name": "Ana", "course": "Yoga", "tag": "vip"}
    )
    message = got.messages[0].content
    assert isinstance(message, types.TextContent)
    assert "upsert_contact(email='ana@acme.test', first_name='Ana')" in message.text
    # the default toolsets have no bulk tools: the plan uses the one-contact tools
    assert "create_enrollment" in message.text and "add_tag_to_contact" in message.text
    assert "bulk_" not in message.text and "community" not in message.text
    hooks = (await mcp.get_prompt("audit_webhooks", {})).messages[0].content
    assert isinstance(hooks, types.TextContent) and "SYSTEME_TOOLSETS=default,webhooks" in hooks.text
    with pytest.raises(MCPError, match="`email` is required"):
        await mcp.get_prompt("onboard_new_customer", {})
    with pytest.raises(MCPError, match="must be one of"):
        await mcp.get_prompt("audit_webhooks", {"focus": "everything"})
    with pytest.raises(MCPError, match="Unknown prompt"):
        await mcp.get_prompt("nope", {})


async def test_completions(mcp: Client, api: RawApi) -> None:
    def prompt(name: str) -> types.PromptReference:
        return types.PromptReference(type="ref/prompt", name=name)

    access = await mcp.complete(prompt("onboard_new_customer"), {"name": "access_type", "value": "dr"})
    assert access.completion.values == ["dripping_content"]
    focus = await mcp.complete(prompt("audit_webhooks"), {"name": "focus", "value": ""})
    assert focus.completion.values == ["all", "inactive", "events"]
    tags = [t["name"] for t in await api.all_items("/api/tags")]
    tag = await mcp.complete(prompt("clean_up_tag"), {"name": "tag", "value": tags[0][:2]})
    assert tags[0] in tag.completion.values and all(tags[0][:2] in v for v in tag.completion.values)
    course = (await api.get("/api/school/courses"))["items"][0]["name"]
    got = await mcp.complete(prompt("onboard_new_customer"), {"name": "course", "value": course[:3]})
    assert course in got.completion.values
    community = (await api.get("/api/community/communities"))["items"][0]["name"]
    got = await mcp.complete(prompt("onboard_new_customer"), {"name": "community", "value": ""})
    assert community in got.completion.values
    contact_id = str((await api.get("/api/contacts"))["items"][0]["id"])
    template = types.ResourceTemplateReference(type="ref/resource", uri="systeme://contacts/{id}")
    ids = await mcp.complete(template, {"name": "id", "value": contact_id[:2]})
    assert contact_id in ids.completion.values
    none = await mcp.complete(prompt("clean_up_tag"), {"name": "unknown", "value": "x"})
    assert none.completion.values == []


@pytest.mark.parametrize("runtime", [{"toolsets": ["default", "bulk", "webhooks"]}], indirect=True)
async def test_prompts_use_the_opt_in_tools_when_they_are_loaded(mcp: Client) -> None:
    got = await mcp.get_prompt("onboard_new_customer", {"email": "ana@acme.test", "course": "Yoga", "tag": "vip"})
    message = got.messages[0].content
    assert isinstance(message, types.TextContent)
    assert "bulk_enroll" in message.text and "bulk_add_tag" in message.text and "create_enrollment" not in message.text
    cleanup = (await mcp.get_prompt("clean_up_tag", {"tag": "vip"})).messages[0].content
    assert isinstance(cleanup, types.TextContent) and "bulk_remove_tag(" in cleanup.text
    hooks = (await mcp.get_prompt("audit_webhooks", {})).messages[0].content
    assert isinstance(hooks, types.TextContent) and "not loaded" not in hooks.text
