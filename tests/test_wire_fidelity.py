"""Request shapes held to the public specification (issue 15, item 2), through real MCP client sessions against
the sandbox in both protocol eras: `events` required on create_webhook, webhook ids typed as the spec types them
(plain strings: non-empty, safe characters), `editorType` sent by create_newsletter, `method` on create_connection,
and the subscriptions 404 read as a possibility to check. Sources: ../shared/reference/api-facts-2026-12.md."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from systeme_mcp.catalog import load_catalog
from systeme_mcp.sandbox.store import Webhook
from systeme_mcp.schemas import ArgumentsModel
from systeme_mcp.wire import build_request

from .helpers import RawApi, ok, requests_seen, text

pytestmark = pytest.mark.anyio

HOOK = {"name": "Orders", "url": "https://hooks.example.com/o", "secret": "s3cret-value-123"}


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["all"]}


def refused(result: Any, argument: str) -> None:
    """Refused for its arguments, naming `argument`; the write was not applied."""
    assert result.is_error and result.structured_content is not None, text(result)
    assert result.structured_content["outcome"] == "not_applied"
    assert result.structured_content["error"] == {"kind": "invalid_arguments"}
    assert f"`{argument}`" in text(result)


async def test_create_webhook_needs_at_least_one_event(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    refused(await mcp.call_tool("create_webhook", HOOK), "events")
    refused(await mcp.call_tool("create_webhook", {**HOOK, "events": []}), "events")
    assert requests_seen(sandbox) == before, "a webhook without events reached the API"
    tool = next(t for t in (await mcp.list_tools()).tools if t.name == "create_webhook")
    assert "events" in tool.input_schema["required"]


async def test_webhook_ids_are_plain_strings_as_the_spec_types_them(mcp: Client, sandbox: Any, api: RawApi) -> None:
    sandbox.store.webhooks["wh_live_1"] = Webhook("wh_live_1", "Live", "https://hooks.example.com/l", "secret-123")
    got = await ok(mcp, "get_webhook", webhook_id="wh_live_1")
    assert got["item"]["id"] == "wh_live_1" and got["item"]["name"] == "Live"
    await ok(mcp, "update_webhook", webhook_id="wh_live_1", active=False)
    assert (await api.get("/api/webhooks/wh_live_1"))["active"] is False
    deleted = await ok(mcp, "delete_webhook", webhook_id="wh_live_1")
    assert deleted["outcome"] == "applied" and await api.status("/api/webhooks/wh_live_1") == 404
    uuid_id = (await api.get("/api/webhooks"))["items"][0]["id"]
    assert (await ok(mcp, "get_webhook", webhook_id=uuid_id))["item"]["id"] == uuid_id  # UUIDs still fit


@pytest.mark.parametrize("bad", ["", "../webhooks", "a/b", "id with spaces", "x" * 256, "é"])
async def test_unsafe_webhook_ids_are_refused_before_sending(bad: str, mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    refused(await mcp.call_tool("update_webhook", {"webhook_id": bad, "active": True}), "webhook_id")
    read = await mcp.call_tool("get_webhook", {"webhook_id": bad})
    assert read.is_error and "`webhook_id`" in text(read)
    assert requests_seen(sandbox) == before


async def test_create_newsletter_always_sends_an_editor_type(mcp: Client, api: RawApi) -> None:
    op = load_catalog()["create_newsletter"]
    plan = build_request(op, ArgumentsModel(op).validate({"subject": "Hi"}))
    assert plan.body == {"content": {"subject": "Hi", "editorType": "classic"}}  # as other clients send it
    out = await ok(mcp, "create_newsletter", subject="Hi")
    stored = api.sandbox.store.newsletters[out["item"]["id"]].content
    assert stored["editorType"] == "classic"
    refused(await mcp.call_tool("create_newsletter", {"subject": "Hi", "editor_type": "html"}), "editor_type")


async def test_create_connection_takes_an_optional_method(mcp: Client, api: RawApi) -> None:
    plain = await ok(mcp, "create_connection", app="systeme")
    assert plain["item"]["method"] == "OAUTH2"  # the sandbox's guess for a connection created without one
    basic = await ok(mcp, "create_connection", app="systeme", method="BASIC")
    listed = (await api.ctrl("GET", "/connections"))["connections"]
    assert {c["connection_id"]: c["method"] for c in listed}[basic["item"]["connection_id"]] == "BASIC"
    refused(await mcp.call_tool("create_connection", {"app": "systeme", "method": "TOKEN"}), "method")


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return {"payments_configured": False}


async def test_a_subscriptions_404_is_a_possibility_with_how_to_check(mcp: Client, api: RawApi) -> None:
    contact_id = await api.first_id("/api/contacts")
    result = await mcp.call_tool("list_subscriptions", {"contact_id": contact_id})
    assert result.is_error and "404" in text(result)
    said = text(result)
    assert str(contact_id) in said and "get_contact" in said  # names what to check, and the call that checks it
