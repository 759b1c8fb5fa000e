"""Every answer is bounded under real clients' limits, whatever the account holds: 100 KB field values on many
contacts (planted through the sandbox's raw HTTP API) give pages whose text and structured content stay within
`answers.TEXT_LIMIT` / `answers.STRUCTURED_BUDGET`, say they were cut, and continue exactly after the last item
kept; resources and prompts are bounded the same way; a cut never leaves part of a secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client, types

from systeme_mcp import answers
from systeme_mcp.calls import Outcome, OutcomeKind
from systeme_mcp.catalog import Catalog
from systeme_mcp.client import SANDBOX_KEY
from systeme_mcp.projection import call_text

from .helpers import RawApi, text

pytestmark = pytest.mark.anyio

HUGE = 100_000  # characters per planted value
PLANTED = 60  # contacts with huge values (a page of 100 stays under the client's 8 MiB answer cap)
LINE_LIMIT = 64 * 1024


def _sizes(result: types.CallToolResult) -> tuple[int, int]:
    """(UTF-8 bytes of the text, of the structured content as compact JSON)."""
    dumped = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    return len(text(result).encode()), len(dumped.encode())


def _check_bounded(result: types.CallToolResult) -> None:
    text_bytes, json_bytes = _sizes(result)
    assert text_bytes <= answers.TEXT_LIMIT and json_bytes <= answers.STRUCTURED_BUDGET, (text_bytes, json_bytes)
    assert all(len(row.encode()) <= LINE_LIMIT for row in text(result).split("\n"))
    leaked = SANDBOX_KEY[:9]  # "sandbox-m": what a cut at 160 characters used to leave of the key
    assert leaked not in text(result) and leaked not in json.dumps(result.structured_content)


async def _plant(api: RawApi, count: int = PLANTED) -> list[int]:
    """`count` contacts at huge.test with 100 KB first names and 2 KB surnames, a secret hidden at a cut point."""
    ids = []
    for n in range(count):
        first = "b" * 150 + " " + SANDBOX_KEY + " " + "b" * (HUGE - 170)  # the key straddles the 160-char cut
        last = "s" * 990 + " " + SANDBOX_KEY + " " + "s" * 1000  # ... and the 1000-char one
        body = {
            "email": f"huge{n}@huge.test",
            "fields": [{"slug": "first_name", "value": first}, {"slug": "surname", "value": last}],
        }
        ids.append(int((await api.post("/api/contacts", body))["id"]))
    return ids


async def test_a_page_of_huge_values_is_bounded_and_continues_after_the_last_item_kept(
    mcp: Client, api: RawApi
) -> None:
    planted = set(await _plant(api))
    seen: list[int] = []
    arguments: dict[str, Any] = {"limit": 100}
    for _ in range(10):
        result = await mcp.call_tool("list_contacts", arguments)
        assert not result.is_error, text(result)
        _check_bounded(result)
        page = result.structured_content or {}
        ids = [i["id"] for i in page["items"]]
        assert ids and page["has_more"] is True
        assert page["next"]["arguments"]["starting_after"] == ids[-1]
        rows = text(result).split("\n")
        assert rows[-1] == f"more: {call_text('list_contacts', page['next']['arguments'])}"
        assert len(rows) == len(ids) + 2  # header, one line per item kept, the next call: text and structured agree
        if planted <= set(seen + ids):
            assert "showing the first" in rows[0] and "cut in structured content" in rows[0]
        seen += ids
        if planted <= set(seen):
            break
        arguments = page["next"]["arguments"]
    assert planted <= set(seen) and len(seen) == len(set(seen))  # every planted contact once: nothing skipped
    assert seen == sorted(seen, reverse=True)


async def test_find_contacts_on_huge_values_is_bounded_and_truthful(mcp: Client, api: RawApi) -> None:
    await _plant(api, 40)
    result = await mcp.call_tool("find_contacts", {"email_domain": "huge.test", "limit": 100})
    assert not result.is_error, text(result)
    _check_bounded(result)
    found = result.structured_content or {}
    assert "Answer cut" in text(result) and found["has_more"] is True
    if found["next"] is not None:  # continues right after the last item kept, in the text too
        assert found["next"]["arguments"]["starting_after"] == found["items"][-1]["id"]
        assert f"more: {call_text('find_contacts', found['next']['arguments'])}" in text(result).split("\n")


async def test_one_huge_record_is_bounded(mcp: Client, api: RawApi) -> None:
    (contact_id,) = await _plant(api, 1)
    result = await mcp.call_tool("get_contact", {"contact_id": contact_id})
    _check_bounded(result)
    content = (await mcp.read_resource(f"systeme://contacts/{contact_id}")).contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert len(content.text.encode()) <= answers.STRUCTURED_BUDGET and SANDBOX_KEY[:9] not in content.text
    body = json.loads(content.text)
    assert body["truncated"] is True and body["fields"]["first_name"].endswith("chars]") and body["rest"]


async def test_a_list_resource_of_many_long_names_is_bounded(mcp: Client, api: RawApi) -> None:
    for n in range(450):
        await api.post("/api/tags", {"name": f"{n:03d}-" + "t" * 58})
    content = (await mcp.read_resource("systeme://tags")).contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert len(content.text.encode()) <= answers.STRUCTURED_BUDGET
    body = json.loads(content.text)
    if body.get("truncated"):
        assert body["complete"] is False and "starting_after" in body["rest"]


async def test_a_prompt_is_bounded(mcp: Client) -> None:
    got = await mcp.get_prompt("clean_up_tag", {"tag": "x\u202e" * 50_000, "keep_domain": "d" * 50_000})
    content = got.messages[0].content
    assert isinstance(content, types.TextContent)
    assert len(content.text.encode()) <= 8_000 and "\u202e" not in content.text


async def test_an_error_text_is_bounded(mcp: Client) -> None:
    result = await mcp.call_tool("find_contacts", {"tag": "t" * 64})
    assert result.is_error and len(text(result)) <= answers.ERROR_BUDGET


# ---------------------------------------------------------------- unit: where the budgets are enforced
def _contact(n: int, slugs: int) -> dict[str, Any]:
    fields = [{"slug": f"field_{k}", "value": "word " * 20_000} for k in range(slugs)]
    return {"id": 1000 - n, "email": f"c{n}@x.test", "fields": fields}


def test_a_page_ends_text_and_structured_at_the_same_item(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "TEXT_BUDGET", 10**6)  # so that the structured budget is the one that binds
    op = catalog["list_contacts"]
    data = {"items": [_contact(n, 12) for n in range(100)], "hasMore": False}
    result = answers.sealed(answers.operation(catalog, op, {"limit": 100}, Outcome(OutcomeKind.APPLIED, data)), str)
    assert isinstance(result, types.CallToolResult)
    _check_bounded(result)
    page = result.structured_content or {}
    rows = text(result).split("\n")
    assert f"to stay under {answers.STRUCTURED_BUDGET} bytes of structured content" in rows[0]
    assert page["has_more"] is True and len(rows) == len(page["items"]) + 2  # the API said last page: no longer
    assert page["next"]["arguments"] == {"limit": 100, "starting_after": page["items"][-1]["id"]}


def test_sealed_cuts_items_and_keeps_next_truthful() -> None:
    items = [{"id": 100 - n, "note": "x " * 2_000} for n in range(100)]
    nxt: dict[str, Any] = {"tool": "find_contacts", "arguments": {"name": "x", "starting_after": 1}}
    body = "\n".join(
        ["100 match:", *(f"#{i['id']}" for i in items), f"more: {call_text('find_contacts', nxt['arguments'])}"]
    )
    structured = {"items": items, "has_more": True, "next": nxt, "message": "100 match:"}
    result = answers.sealed(
        types.CallToolResult(content=[types.TextContent(type="text", text=body)], structured_content=structured), str
    )
    assert isinstance(result, types.CallToolResult)
    _check_bounded(result)
    page = result.structured_content or {}
    last = page["items"][-1]["id"]
    assert 1 < len(page["items"]) < 100 and page["next"]["arguments"] == {"name": "x", "starting_after": last}
    rows = text(result).split("\n")
    assert rows[-1] == f'more: find_contacts(name="x", starting_after={last})' and rows[-2].startswith("(Answer cut: ")


def test_sealed_cutting_the_last_page_says_where_the_rest_starts() -> None:
    items = [{"id": 100 - n, "note": "x " * 2_000} for n in range(100)]
    structured = {"items": items, "has_more": False, "next": None}
    answer = types.CallToolResult(
        content=[types.TextContent(type="text", text="100:\nlast page.")], structured_content=structured
    )
    result = answers.sealed(answer, str)
    assert isinstance(result, types.CallToolResult)
    page = result.structured_content or {}
    assert page["has_more"] is True and "last page." not in text(result)
    assert f"the rest starts after #{page['items'][-1]['id']}" in text(result)


def test_a_record_with_thousands_of_fields_and_tags_is_bounded() -> None:
    item = {
        "id": 1,
        "fields": {f"f{i}": "v" * 70 for i in range(3000)},
        "tags": [{"id": i, "name": "n" * 60} for i in range(3000)],
    }
    for structured in ({"item": item, "message": "m"}, {"items": [item] * 5, "has_more": False, "next": None}):
        answer = types.CallToolResult(content=[types.TextContent(type="text", text="m")], structured_content=structured)
        result = answers.sealed(answer, str)
        assert isinstance(result, types.CallToolResult)
        _check_bounded(result)
        assert "nested lists/objects cut" in text(result)
