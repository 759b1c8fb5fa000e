"""Contacts, tags, contact tags and contact fields: happy paths, errors, pagination, merge-patch."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from systeme_mcp.sandbox import Sandbox

from .sandbox_testkit import KEY, MERGE, problem, violations, walk

pytestmark = pytest.mark.anyio
CONTACT_KEYS = set("id email registeredAt locale sourceURL unsubscribed bounced needsConfirmation fields tags".split())


async def patch(c: httpx2.AsyncClient, path: str, body: object) -> httpx2.Response:
    return await c.patch(path, content=json.dumps(body), headers=MERGE)


# ---------------------------------------------------------------------------- listing and pagination
async def test_list_defaults_to_ten_newest_first(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    page = (await client.get("/api/contacts")).json()
    assert len(page["items"]) == 10 and page["hasMore"] is True
    ids = [c["id"] for c in page["items"]]
    assert ids == sorted(sb.store.contacts, reverse=True)[:10]
    first = page["items"][0]
    assert set(first) == CONTACT_KEYS
    assert [f["slug"] for f in first["fields"]][:3] == ["first_name", "surname", "phone_number"]
    assert all(set(f) == {"fieldName", "slug", "value"} for f in first["fields"])
    assert first["registeredAt"].endswith("+00:00")


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [10, 37, 100])
async def test_pages_cover_every_contact_exactly_once(
    client: httpx2.AsyncClient, sb: Sandbox, order: str, limit: int
) -> None:
    items = await walk(client, "/api/contacts", limit=limit, order=order)
    expected = sorted(sb.store.contacts, reverse=order == "desc")
    assert [c["id"] for c in items] == expected


async def test_starting_after_excludes_the_cursor(client: httpx2.AsyncClient) -> None:
    asc = (await client.get("/api/contacts", params={"order": "asc", "startingAfter": 5, "limit": 10})).json()
    assert [c["id"] for c in asc["items"]] == list(range(6, 16))
    desc = (await client.get("/api/contacts", params={"startingAfter": 5, "limit": 10})).json()
    assert [c["id"] for c in desc["items"]] == [4, 3, 2, 1] and desc["hasMore"] is False


@pytest.mark.parametrize(
    ("query", "path", "message"),
    [
        ({"limit": 9}, "pagination.limit", "Wrong value of pagination limit parameter"),
        ({"limit": 101}, "pagination.limit", "Wrong value of pagination limit parameter"),
        ({"limit": "ten"}, "pagination.limit", "Wrong value of pagination limit parameter"),
        (
            {"startingAfter": 0},
            "pagination.startingAfter",
            "Wrong value of pagination startingAfter parameter",
        ),
        ({"order": "up"}, "pagination.order", "Wrong value of pagination order parameter"),
        ({"email": "not-an-email"}, "email", "This value is not a valid email address."),
        ({"bounced": "maybe"}, "bounced", "This value should be of type bool."),
        ({"registeredAfter": "yesterday"}, "registeredAfter", "This value is not a valid datetime."),
        ({"tags": "1,x"}, "tags", "This value is not valid."),
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx2.AsyncClient, query: dict[str, Any], path: str, message: str
) -> None:
    assert violations(await client.get("/api/contacts", params=query)) == {path: message}


async def test_list_filters(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    some = sb.store.contacts[42]
    found = (await client.get("/api/contacts", params={"email": some.email.upper()})).json()["items"]
    assert [c["id"] for c in found] == [42]
    tagged = [c for c in sb.store.contacts.values() if {1, 2} <= set(c.tag_ids)]
    items = await walk(client, "/api/contacts", tags="1,2", limit=100)
    assert sorted(c["id"] for c in items) == sorted(c.id for c in tagged) and tagged
    unsub = await walk(client, "/api/contacts", unsubscribed="true", limit=100)
    assert {c["id"] for c in unsub} == {c.id for c in sb.store.contacts.values() if c.unsubscribed}
    window = await walk(
        client,
        "/api/contacts",
        registeredAfter="2024-01-10T00:00:00Z",
        registeredBefore="2024-01-12T00:00:00+00:00",
    )
    assert window and all("2024-01-10" <= c["registeredAt"][:10] <= "2024-01-11" for c in window)


# ---------------------------------------------------------------------------- create
async def test_create_contact(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    body = {
        "email": "new.person@acme.test",
        "locale": "fr",
        "fields": [{"slug": "first_name", "value": "Ada"}, {"slug": "job_title", "value": "CTO"}],
    }
    answer = await client.post("/api/contacts", json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == CONTACT_KEYS and created["tags"] == [] and created["locale"] == "fr"
    values = {f["slug"]: f["value"] for f in created["fields"]}
    assert values["first_name"] == "Ada" and values["job_title"] == "CTO" and values["surname"] is None
    assert created["id"] == max(sb.store.contacts) and sb.store.contacts[created["id"]].email == "new.person@acme.test"
    again = await client.get(f"/api/contacts/{created['id']}")
    assert again.json() == created


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"email": "ivan.martin@orange.test"}, {"email": "This value is already used."}),
        ({"email": "IVAN.MARTIN@orange.test"}, {"email": "This value is already used."}),
        ({"email": "not an email"}, {"email": "This value is not a valid email address."}),
        ({"email": "someone@mail.invalid"}, {"email": "This value is not a valid email address."}),
        ({"email": "someone@example.invalid"}, {"email": "This value is not a valid email address."}),
        ({}, {"email": "This value should not be blank."}),
        (
            {"email": "ok@acme.test", "locale": "xx"},
            {"locale": "The value you selected is not a valid choice."},
        ),
        (
            {"email": "ok@acme.test", "fields": [{"slug": "nope", "value": "x"}]},
            {"fields[0].slug": 'Contact field with slug "nope" not found.'},
        ),
        (
            {"email": "", "locale": "en_US"},
            {
                "email": "This value should not be blank.",
                "locale": "The value you selected is not a valid choice.",
            },
        ),
    ],
)
async def test_create_contact_violations(
    client: httpx2.AsyncClient, sb: Sandbox, body: dict[str, object], expected: dict[str, str]
) -> None:
    sb.store.contacts[300].email = "ivan.martin@orange.test"
    before = len(sb.store.contacts)
    assert violations(await client.post("/api/contacts", json=body)) == expected
    assert len(sb.store.contacts) == before


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"email": ', "Syntax error"),
        (b"", "Syntax error"),
        (b"[1, 2]", "The input data is misformatted."),
        (b'{"email": 42}', 'The type of the "email" attribute must be "string", "int" given.'),
        (
            b'{"email": "a@acme.test", "fields": "x"}',
            'The type of the "fields" attribute must be "array", "string" given.',
        ),
        (
            b'{"email": "a@acme.test", "fields": [{"slug": "city", "value": 3}]}',
            'The type of the "fields[0].value" attribute must be "string", "int" given.',
        ),
        (b"\xff\xfe", "Syntax error"),
    ],
)
async def test_malformed_bodies_are_400(client: httpx2.AsyncClient, raw: bytes, detail: str) -> None:
    answer = await client.post("/api/contacts", content=raw, headers={"Content-Type": "application/json"})
    assert problem(answer, 400)["detail"] == detail


async def test_unknown_attributes_are_ignored_by_default(client: httpx2.AsyncClient) -> None:
    answer = await client.post(
        "/api/contacts", json={"email": "maton@acme.test", "firstName": "John", "lastName": "Doe"}
    )
    assert answer.status_code == 201
    assert {f["slug"]: f["value"] for f in answer.json()["fields"]}["first_name"] is None


async def test_unknown_attributes_rejected_when_strict() -> None:
    sb = Sandbox(rate_limit=None, reject_unknown_fields=True)
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        answer = await c.post("/api/contacts", json={"email": "x@acme.test", "firstName": "John"})
    assert problem(answer, 400)["detail"] == 'Extra attributes are not allowed ("firstName" is unknown).'


async def test_post_needs_a_json_media_type(client: httpx2.AsyncClient) -> None:
    answer = await client.post(
        "/api/contacts", content=b"email=a@b.c", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "not supported" in problem(answer, 415)["detail"]


# ---------------------------------------------------------------------------- get / errors on ids
@pytest.mark.parametrize(
    "path",
    [
        *(f"/api/contacts/{bad}" for bad in ("999999", "0", "abc", "-1", "1.5", "9" * 23, "1%2F..%2F2", "1;drop")),
        *(f"/api/contacts/{bad}" for bad in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e/2", "1%00", "1 OR 1=1")),
        "/api/nothing-here",
    ],
)
async def test_unknown_or_malformed_ids_are_404(client: httpx2.AsyncClient, path: str) -> None:
    assert problem(await client.get(path), 404)["detail"] == "Not Found"


async def test_wrong_method_is_405(client: httpx2.AsyncClient) -> None:
    answer = await client.put("/api/contacts/1", json={"locale": "fr"})
    body = problem(answer, 405)
    assert answer.headers["allow"] == "GET, PATCH, DELETE"
    assert body["detail"] == 'No route found for "PUT /api/contacts/1": Method Not Allowed (Allow: GET, PATCH, DELETE)'


async def test_huge_body_is_413(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    before = len(sb.store.contacts)
    answer = await client.post(
        "/api/contacts",
        content=b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'@acme.test"}',
        headers={"Content-Type": "application/json"},
    )
    problem(answer, 413)
    assert len(sb.store.contacts) == before


async def test_unexpected_exception_is_a_bare_500(
    local: httpx2.AsyncClient, sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> float:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(sb.env, "clock", boom)
    answer = await local.post("/api/tags", json={"name": "explodes"})
    body = problem(answer, 500)
    assert body["detail"] == "Internal Server Error" and "secret" not in answer.text


# ---------------------------------------------------------------------------- auth
async def test_missing_key_is_401_without_challenge(client: httpx2.AsyncClient) -> None:
    answer = await client.get("/api/contacts", headers={"X-API-Key": ""})
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Full authentication is required to access this resource."}
    assert "www-authenticate" not in answer.headers


async def test_wrong_key_is_401_with_challenge() -> None:
    sb = Sandbox(rate_limit=None, api_keys={"good"})
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url) as c:
        bad = await c.get("/api/contacts", headers={"X-API-Key": "bad"})
        good = await c.get("/api/contacts", headers={"X-API-Key": "good"})
    assert bad.status_code == 401 and bad.json() == {"detail": "Invalid API Key."}
    assert bad.headers["www-authenticate"] == "API Key"
    assert good.status_code == 200


# ---------------------------------------------------------------------------- merge-patch
async def test_merge_patch_sets_clears_and_keeps(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    contact = sb.store.contacts[7]
    contact.fields.update({"city": "Lyon", "surname": "Keep"})
    answer = await patch(
        client,
        "/api/contacts/7",
        {"locale": "de", "fields": [{"slug": "city", "value": None}, {"slug": "first_name", "value": "Zed"}]},
    )
    assert answer.status_code == 200, answer.text
    values = {f["slug"]: f["value"] for f in answer.json()["fields"]}
    assert values["city"] is None and values["first_name"] == "Zed" and values["surname"] == "Keep"
    assert contact.locale == "de" and "city" not in contact.fields


async def test_email_cannot_be_patched(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    old = sb.store.contacts[7].email
    answer = await patch(client, "/api/contacts/7", {"email": "changed@acme.test"})
    assert answer.status_code == 200 and answer.json()["email"] == old == sb.store.contacts[7].email


async def test_patch_needs_merge_patch_media_type(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    answer = await client.patch("/api/contacts/7", json={"locale": "de"})
    detail = problem(answer, 415)["detail"]
    assert detail == (
        'The content-type "application/json" is not supported. Supported MIME types are "application/merge-patch+json".'
    )
    assert sb.store.contacts[7].locale != "de"


async def test_patch_errors(client: httpx2.AsyncClient) -> None:
    problem(await patch(client, "/api/contacts/999999", {"locale": "de"}), 404)
    assert violations(await patch(client, "/api/contacts/7", {"locale": "klingon"})) == {
        "locale": "The value you selected is not a valid choice."
    }
    problem(await patch(client, "/api/contacts/7", {"locale": 5}), 400)


# ---------------------------------------------------------------------------- delete
async def test_delete_contact_cascades(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    enrolled = next(iter(sb.store.enrollments.values())).contact_id
    member = next(m.contact_id for m in sb.store.memberships.values())
    for cid in {enrolled, member}:
        assert (await client.delete(f"/api/contacts/{cid}")).status_code == 204
        problem(await client.get(f"/api/contacts/{cid}"), 404)
        problem(await client.delete(f"/api/contacts/{cid}"), 404)
    assert all(e.contact_id != enrolled for e in sb.store.enrollments.values())
    assert all(m.contact_id != member for m in sb.store.memberships.values())


# ---------------------------------------------------------------------------- contact tags
async def test_assign_and_remove_tag(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    contact = sb.store.contacts[3]
    contact.tag_ids.clear()
    for _ in range(2):  # a repeat is a quiet success
        answer = await client.post("/api/contacts/3/tags", json={"tagId": 4})
        assert answer.status_code == 204 and answer.content == b""
    assert contact.tag_ids == [4]
    assert (await client.get("/api/contacts/3")).json()["tags"] == [{"id": 4, "name": sb.store.tags[4].name}]
    assert (await client.delete("/api/contacts/3/tags/4")).status_code == 204
    assert contact.tag_ids == []
    problem(await client.delete("/api/contacts/3/tags/4"), 404)


async def test_assign_tag_errors(client: httpx2.AsyncClient) -> None:
    assert violations(await client.post("/api/contacts/3/tags", json={"tagId": 9999})) == {
        "tagId": "Tag with ID 9999 not found."
    }
    assert violations(await client.post("/api/contacts/3/tags", json={})) == {
        "tagId": "This value should not be blank."
    }
    problem(await client.post("/api/contacts/3/tags", json={"tagId": "4"}), 400)
    problem(await client.post("/api/contacts/999999/tags", json={"tagId": 4}), 404)
    problem(await client.delete("/api/contacts/999999/tags/4"), 404)


# ---------------------------------------------------------------------------- tags
async def test_tag_crud(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    created = await client.post("/api/tags", json={"name": "Spring promo"})
    assert created.status_code == 201
    tag = created.json()
    assert set(tag) == {"id", "name", "createdAt"} and tag["name"] == "Spring promo"
    assert (await client.get(f"/api/tags/{tag['id']}")).json() == tag
    renamed = await client.put(f"/api/tags/{tag['id']}", json={"name": "Summer promo"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Summer promo"
    found = (await client.get("/api/tags", params={"query": "summer"})).json()
    assert [t["id"] for t in found["items"]] == [tag["id"]] and found["hasMore"] is False
    sb.store.contacts[1].tag_ids.append(tag["id"])
    assert (await client.delete(f"/api/tags/{tag['id']}")).status_code == 204
    assert tag["id"] not in sb.store.contacts[1].tag_ids
    problem(await client.get(f"/api/tags/{tag['id']}"), 404)
    problem(await client.patch(f"/api/tags/{tag['id']}", json={}), 405)


async def test_tag_violations(client: httpx2.AsyncClient) -> None:
    assert violations(await client.post("/api/tags", json={"name": "VIP"})) == {"name": "This value is already used."}
    assert violations(await client.post("/api/tags", json={"name": "x" * 65})) == {
        "name": "This value is too long. It should have 64 characters or less."
    }
    assert violations(await client.post("/api/tags", json={"name": " "})) == {"name": "This value should not be blank."}
    assert violations(await client.put("/api/tags/1", json={"name": "lead"})) == {"name": "This value is already used."}
    assert (await client.put("/api/tags/1", json={"name": "customer"})).status_code == 200  # its own name
    problem(await client.put("/api/tags/999", json={"name": "z"}), 404)


async def test_tag_pages(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    for i in range(15):
        assert (await client.post("/api/tags", json={"name": f"bulk-{i}"})).status_code == 201
    assert [t["id"] for t in await walk(client, "/api/tags", order="asc")] == sorted(sb.store.tags)


# ---------------------------------------------------------------------------- contact fields
async def test_contact_fields(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    listed = (await client.get("/api/contact_fields")).json()
    assert listed["hasMore"] is False and {"slug": "first_name", "fieldName": "First name"} in listed["items"]
    created = await client.post("/api/contact_fields", json={"fieldName": "Favourite colour", "slug": "fav_colour"})
    assert created.status_code == 201 and created.json() == {
        "slug": "fav_colour",
        "fieldName": "Favourite colour",
    }
    assert violations(await client.post("/api/contact_fields", json={"fieldName": "Again", "slug": "fav_colour"})) == {
        "slug": "This value is already used."
    }
    assert violations(await client.post("/api/contact_fields", json={"fieldName": "Bad", "slug": "no-dash"})) == {
        "slug": "This value is not valid."
    }
    assert violations(await client.post("/api/contact_fields", json={"slug": "x"})) == {
        "fieldName": "This value should not be blank."
    }
    renamed = await patch(client, "/api/contact_fields/fav_colour", {"fieldName": "Colour"})
    assert renamed.status_code == 200 and renamed.json() == {"slug": "fav_colour", "fieldName": "Colour"}
    await patch(client, "/api/contacts/5", {"fields": [{"slug": "fav_colour", "value": "blue"}]})
    assert sb.store.contacts[5].fields["fav_colour"] == "blue"
    assert (await client.delete("/api/contact_fields/fav_colour")).status_code == 204
    assert "fav_colour" not in sb.store.fields and "fav_colour" not in sb.store.contacts[5].fields
    problem(await client.delete("/api/contact_fields/fav_colour"), 404)
    problem(await patch(client, "/api/contact_fields/nope", {"fieldName": "x"}), 404)
    assert violations(await client.delete("/api/contact_fields/first_name"))  # built-ins stay
