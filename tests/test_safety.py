"""Safe by construction: toolsets, read-only at both layers, confirmed destructive operations (elicitation
accepted / declined / unsupported, in both protocol eras), secrets never shown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client, types

from systeme_mcp import errors
from systeme_mcp.registry import full_registry, select
from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.wire import RequestPlan

from .conftest import sandbox_settings
from .helpers import RawApi, requests_seen, text

pytestmark = pytest.mark.anyio
MODES = ["auto", "legacy"]


def accept_with(answer: bool | None) -> Any:
    async def callback(context: Any, params: Any) -> types.ElicitResult:
        callback.asked.append(params.message)  # type: ignore[attr-defined]
        if answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"confirm": answer})

    callback.asked = []  # type: ignore[attr-defined]
    return callback


# ---------------------------------------------------------------- toolsets and read-only
def test_toolsets_load_only_the_chosen_tools(catalog: Any) -> None:
    chosen = select(full_registry(catalog), ["contacts", "tags"], read_only=False)
    assert {t.toolset for t in chosen.values()} == {"contacts", "tags"}
    assert "list_contacts" in chosen and "add_tag_to_contact" in chosen and "list_courses" not in chosen


def test_unknown_toolset_is_a_clear_startup_error(catalog: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown toolset\(s\): bogus; valid toolsets: .*contacts"):
        select(full_registry(catalog), ["contacts", "bogus"], read_only=False)


@pytest.mark.parametrize("mode", MODES)
async def test_read_only_lists_only_read_tools_and_refuses_writes(sandbox: Any, mode: str) -> None:
    async with open_runtime(sandbox_settings(read_only=True), sandbox=sandbox) as runtime:
        async with Client(create_server(runtime), mode=mode) as client:
            tools = (await client.list_tools()).tools
            assert tools and all(t.annotations and t.annotations.read_only_hint for t in tools)
            result = await client.call_tool("create_contact", {"email": "x@example.com"})
            assert result.is_error and result.structured_content is not None
            assert result.structured_content["error"]["reasons"] == ["read_only"]
        before = requests_seen(sandbox)
        with pytest.raises(errors.ReadOnlyRefused):  # the second layer: the client itself
            await runtime.client.send(RequestPlan("DELETE", "/api/contacts/1"))
        assert requests_seen(sandbox) == before


# ---------------------------------------------------------------- confirmation of destructive operations
async def _session(sandbox: Any, mode: str, callback: Any = None, **settings: Any) -> AsyncIterator[Client]:
    async with open_runtime(sandbox_settings(confirm_destructive=True, **settings), sandbox=sandbox) as runtime:
        options = {"elicitation_callback": callback} if callback else {}
        async with Client(create_server(runtime), mode=mode, **options) as client:
            yield client


@pytest.mark.parametrize("mode", MODES)
async def test_accepted_elicitation_deletes_and_names_the_target(sandbox: Any, api: RawApi, mode: str) -> None:
    contact_id = await api.first_id("/api/contacts")
    email = (await api.get(f"/api/contacts/{contact_id}"))["email"]
    callback = accept_with(True)
    async for client in _session(sandbox, mode, callback):
        result = await client.call_tool("delete_contact", {"contact_id": contact_id})
        assert not result.is_error, text(result)
    assert len(callback.asked) == 1 and email in callback.asked[0]
    assert await api.status(f"/api/contacts/{contact_id}") == 404


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [False, None])
async def test_declined_elicitation_sends_nothing(sandbox: Any, api: RawApi, mode: str, answer: bool | None) -> None:
    tag_id = await api.first_id("/api/tags")
    async for client in _session(sandbox, mode, accept_with(answer)):
        before = len([r for r in sandbox.requests if r.method == "DELETE"])
        result = await client.call_tool("delete_tag", {"tag_id": tag_id})
        assert not result.is_error
        assert result.structured_content == {"message": text(result), "outcome": "not_applied"}
        assert len([r for r in sandbox.requests if r.method == "DELETE"]) == before
    assert await api.status(f"/api/tags/{tag_id}") == 200


@pytest.mark.parametrize("mode", MODES)
async def test_without_elicitation_an_explicit_confirm_is_required(sandbox: Any, api: RawApi, mode: str) -> None:
    hook = (await api.get("/api/webhooks"))["items"][0]
    async for client in _session(sandbox, mode, toolsets=["default", "webhooks"]):
        first = await client.call_tool("delete_webhook", {"webhook_id": hook["id"]})
        assert first.is_error and first.structured_content is not None
        assert first.structured_content["outcome"] == "not_applied"
        assert first.structured_content["error"] == {"kind": "needs_confirmation"}
        assert hook["name"] in text(first)  # the text names what would be destroyed, and the exact call to confirm
        assert f'delete_webhook(webhook_id="{hook["id"]}", confirm=true)' in text(first)
        assert await api.status(f"/api/webhooks/{hook['id']}") == 200
        second = await client.call_tool("delete_webhook", {"webhook_id": hook["id"], "confirm": True})
        assert not second.is_error, text(second)
    assert await api.status(f"/api/webhooks/{hook['id']}") == 404


async def test_confirmation_can_be_switched_off_for_automation(sandbox: Any, api: RawApi) -> None:
    tag_id = await api.first_id("/api/tags")
    settings = sandbox_settings(confirm_destructive=False)
    async with open_runtime(settings, sandbox=sandbox) as runtime, Client(create_server(runtime)) as client:
        result = await client.call_tool("delete_tag", {"tag_id": tag_id})
        assert not result.is_error, text(result)
    assert await api.status(f"/api/tags/{tag_id}") == 404


async def test_deleting_something_missing_says_not_found_without_asking(sandbox: Any) -> None:
    callback = accept_with(True)
    async for client in _session(sandbox, "legacy", callback):
        result = await client.call_tool("delete_contact", {"contact_id": 99999999})
        assert result.is_error and result.structured_content is not None
        assert result.structured_content["outcome"] == "not_applied"
        assert result.structured_content["error"] == {"kind": "not_found", "status": 404}
        assert "99999999" in text(result)  # the text names what does not exist
    assert callback.asked == []


# ---------------------------------------------------------------- secrets
async def test_webhook_secret_is_never_shown(mcp: Client) -> None:
    secret = "planted-webhook-secret-42"
    created = await mcp.call_tool(
        "create_webhook", {"name": "S", "url": "https://s.example.com/h", "secret": secret, "events": ["SALE_NEW"]}
    )
    listed = await mcp.call_tool("list_webhooks", {})
    for result in (created, listed):
        assert secret not in text(result) and secret not in str(result.structured_content)
