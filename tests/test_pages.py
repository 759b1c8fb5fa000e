"""Issue 12, items 3 and 4: a list answer shows every item of the page asked for (up to limit=100) as one compact
line each — the fields its shape lists in `list_fields`, every field in structured items and in the get tool —
within the text cap, with structured content no larger than the raw API page and no copy of the text in it; if a
page must still be cut, it says so and the next call continues right after the last line shown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from systeme_mcp import answers
from systeme_mcp.calls import Outcome, OutcomeKind
from systeme_mcp.catalog import Catalog, ResultShape
from systeme_mcp.projection import call_text, line, project

from .helpers import RawApi, ok, text

pytestmark = pytest.mark.anyio


def _bytes(value: Any) -> int:
    """UTF-8 bytes of `value` as compact JSON (what structured content weighs on the wire)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


async def _raw_page(api: RawApi, path: str) -> tuple[int, dict[str, Any]]:
    """The raw API page of 100 as the API sends it: its bytes and its JSON."""
    answer = await api.http.get(path, params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return len(answer.content), answer.json()


async def test_a_page_of_100_contacts_shows_all_100_within_the_text_cap(mcp: Client, api: RawApi) -> None:
    raw_bytes, raw = await _raw_page(api, "/api/contacts")
    assert len(raw["items"]) == 100 and raw["hasMore"] is True
    result = await mcp.call_tool("list_contacts", {"limit": 100})
    assert not result.is_error, text(result)
    page = result.structured_content or {}
    rows = text(result).split("\n")
    assert rows[0].startswith("100 contacts") and "showing the first" not in rows[0]
    assert len(rows) == 102 and len(page["items"]) == 100  # header, a line per contact, the next call
    assert [row.split(" ", 1)[0] for row in rows[1:-1]] == [f"#{c['id']}" for c in raw["items"]]
    assert [i["id"] for i in page["items"]] == [c["id"] for c in raw["items"]]
    assert rows[-1] == f"more: {call_text('list_contacts', {'limit': 100, 'starting_after': raw['items'][-1]['id']})}"
    assert len(text(result).encode()) <= answers.TEXT_LIMIT - answers.LIST_ROOM  # so under 6,000 tokens too
    assert _bytes(page) <= raw_bytes, (_bytes(page), raw_bytes)
    assert set(page) == {"items", "has_more", "next"}  # no copy of the text


async def test_a_page_of_tags_is_no_larger_in_structured_content_than_the_raw_page(mcp: Client, api: RawApi) -> None:
    raw_bytes, raw = await _raw_page(api, "/api/tags")
    page = await ok(mcp, "list_tags", limit=100)
    assert len(page["items"]) == len(raw["items"]) and _bytes(page) <= raw_bytes, (_bytes(page), raw_bytes)


async def test_list_lines_show_the_list_fields_and_the_rest_stays_in_items_and_the_get_tool(
    mcp: Client, catalog: Catalog
) -> None:
    listed = catalog.shapes["contact"].list_fields
    assert listed is not None and "locale" not in listed and "fields.country" not in listed
    result = await mcp.call_tool("list_contacts", {"limit": 100})
    page = result.structured_content or {}
    rows = dict(zip([i["id"] for i in page["items"]], text(result).split("\n")[1:-1], strict=True))
    item = next(i for i in page["items"] if "locale" in i and "country" in i["fields"] and "tags" in i)
    row = rows[item["id"]]
    assert f"email={item['email']}" in row and "tags=[" in row and f"first_name={item['fields']['first_name']}" in row
    assert "locale=" not in row and "country=" not in row and "registered_at=" not in row  # not in list_fields
    assert "lines leave out" in text(result).split("\n")[0] and "get_contact" in text(result).split("\n")[0]
    full = await mcp.call_tool("get_contact", {"contact_id": item["id"]})
    detail = text(full)
    assert f"locale={item['locale']}" in detail and f"country={item['fields']['country']}" in detail
    assert f"registered_at={item['registered_at']}" in detail
    single = full.structured_content or {}
    assert single["item"] == item and set(single) == {"item", "message"}  # every field, and only a one-line message
    assert "\n" not in single["message"] and single["message"] == detail.split("\n", 1)[0]


async def test_a_shape_without_list_fields_shows_every_field(mcp: Client, catalog: Catalog) -> None:
    assert catalog.shapes["tag"].list_fields is None
    result = await mcp.call_tool("list_tags", {"limit": 100})
    rows = text(result).split("\n")
    assert "lines leave out" not in rows[0]
    tags = (result.structured_content or {})["items"]
    assert rows[1:-1] == [line(catalog.shapes["tag"], t) for t in tags] and all("created_at=" in r for r in rows[1:-1])


# ---------------------------------------------------------------- unit: the line, the declaration, the cut
def test_only_narrows_a_line_to_the_listed_fields_and_slug_map_keys(catalog: Catalog) -> None:
    shape = catalog.shapes["contact"]
    item = {
        "id": 7,
        "email": "a@b.test",
        "fields": {"first_name": "Ana", "country": "FR"},
        "tags": [{"id": 3, "name": "vip"}],
        "locale": "fr",
        "unsubscribed": True,
    }
    assert line(shape, item, only=shape.list_fields) == "#7 email=a@b.test first_name=Ana tags=[vip#3] unsubscribed"
    assert line(shape, item, only={"fields"}) == "#7 first_name=Ana country=FR"
    assert line(shape, item) == "#7 email=a@b.test first_name=Ana country=FR tags=[vip#3] locale=fr unsubscribed"


@pytest.mark.parametrize("entry", ["nowhere", "email.first_name", "fields"])
def test_list_fields_must_name_fields_of_the_shape(entry: str) -> None:
    doc = {"noun": "thing", "fields": {"id": "id", "email": "email", "fields": {"path": "f", "type": "slug_map"}}}
    if entry == "fields":  # a whole slug_map field, or one of its keys, is fine
        assert ResultShape.model_validate({**doc, "list_fields": [entry, "fields.x"]}).list_fields == (
            "fields",
            "fields.x",
        )
        return
    with pytest.raises(ValueError, match="list_fields"):
        ResultShape.model_validate({**doc, "list_fields": [entry]})


def test_a_page_too_long_for_the_text_cap_says_so_and_continues_after_the_last_line(catalog: Catalog) -> None:
    op = catalog["list_contacts"]
    long = "n" * 150  # each line about 400 bytes: 100 of them cannot fit 10 KB
    items = [
        {"id": 500 - n, "email": f"c{n}@x.test", "fields": [{"slug": "first_name", "value": long + str(n)}]}
        for n in range(100)
    ]
    answer = answers.operation(catalog, op, {"limit": 100}, Outcome(OutcomeKind.APPLIED, {"items": items}))
    body, page = text(answer), answer.structured_content or {}
    rows = body.split("\n")
    shown = len(page["items"])
    assert 10 < shown < 100 and len(rows) == shown + 2 and len(body.encode()) <= answers.TEXT_LIMIT - answers.LIST_ROOM
    assert f"(showing the first {shown} to stay under {answers.TEXT_LIMIT} bytes of text)" in rows[0]
    assert page["has_more"] is True and page["next"]["arguments"] == {"limit": 100, "starting_after": 500 - shown + 1}
    assert rows[-1] == f"more: list_contacts(limit=100, starting_after={500 - shown + 1})"
    assert [r.split(" ", 1)[0] for r in rows[1:-1]] == [f"#{i['id']}" for i in page["items"]]
    assert page["items"] == [project(catalog.shapes["contact"], i) for i in items[:shown]]  # full items


def test_the_header_and_the_next_call_take_their_room_from_the_lines(catalog: Catalog) -> None:
    op = catalog["list_contacts"]
    room = answers.TEXT_LIMIT - answers.LIST_ROOM
    width = room // 100 - 1 - len("#900 email=") - len("@x.test")  # 100 lines of exactly `room` bytes
    items = [{"id": 900 - n, "email": f"{n:03d}" + "x" * (width - 3) + "@x.test"} for n in range(100)]
    args = {"limit": 100, "email": "e" * 90 + "@x.test"}  # a long filter, which the next call repeats
    answer = answers.operation(catalog, op, args, Outcome(OutcomeKind.APPLIED, {"items": items, "hasMore": True}))
    body, page = text(answer), answer.structured_content or {}
    assert sum(len(line(catalog.shapes["contact"], i).encode()) + 1 for i in items) == room
    assert len(body.encode()) <= room and 90 < len(page["items"]) < 100
    assert f"(showing the first {len(page['items'])} to stay under {answers.TEXT_LIMIT} bytes of text)" in body
    assert body.split("\n")[-1] == f"more: {call_text('list_contacts', page['next']['arguments'])}"
    assert page["next"]["arguments"]["starting_after"] == page["items"][-1]["id"]
    assert len(body.split("\n")) == len(page["items"]) + 2
