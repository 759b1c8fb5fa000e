"""Happy-path cases of the core tools (contacts, tags, fields, school, community, payment, webhooks,
connections): each calls its tool through the MCP client and checks the result through the sandbox's own HTTP
API."""

from __future__ import annotations

from mcp import Client

from ..helpers import RawApi, ok
from . import case


# ---------------------------------------------------------------- contacts
@case("list_contacts")
async def _list_contacts(mcp: Client, api: RawApi) -> None:
    page = await ok(mcp, "list_contacts", limit=10)
    raw = await api.get("/api/contacts", limit=10)
    assert [i["id"] for i in page["items"]] == [c["id"] for c in raw["items"]]
    assert page["has_more"] is True
    assert page["next"] == {
        "tool": "list_contacts",
        "arguments": {"limit": 10, "starting_after": raw["items"][-1]["id"]},
    }


@case("get_contact")
async def _get_contact(mcp: Client, api: RawApi) -> None:
    contact_id = await api.first_id("/api/contacts")
    raw = await api.get(f"/api/contacts/{contact_id}")
    out = await ok(mcp, "get_contact", contact_id=contact_id)
    assert out["item"]["id"] == contact_id and out["item"]["email"] == raw["email"]


@case("create_contact")
async def _create_contact(mcp: Client, api: RawApi) -> None:
    out = await ok(
        mcp,
        "create_contact",
        email="new.person@example.com",
        first_name="New",
        last_name="Person",
        phone_number="+33612345678",
        locale="fr",
    )
    assert out["outcome"] == "applied"
    found = await api.get("/api/contacts", email="new.person@example.com")
    (contact,) = found["items"]
    values = {f["slug"]: f["value"] for f in contact["fields"]}
    assert values["first_name"] == "New" and values["surname"] == "Person"
    assert values["phone_number"] == "+33612345678" and contact["locale"] == "fr"


@case("update_contact")
async def _update_contact(mcp: Client, api: RawApi) -> None:
    contact_id = await api.first_id("/api/contacts")
    out = await ok(mcp, "update_contact", contact_id=contact_id, first_name="Zed", phone_number=None)
    assert out["outcome"] == "applied"
    values = {f["slug"]: f["value"] for f in (await api.get(f"/api/contacts/{contact_id}"))["fields"]}
    assert values["first_name"] == "Zed" and not values.get("phone_number")


@case("delete_contact")
async def _delete_contact(mcp: Client, api: RawApi) -> None:
    contact_id = await api.first_id("/api/contacts")
    await ok(mcp, "delete_contact", contact_id=contact_id)
    assert await api.status(f"/api/contacts/{contact_id}") == 404


# ---------------------------------------------------------------- tags
@case("list_tags")
async def _list_tags(mcp: Client, api: RawApi) -> None:
    page = await ok(mcp, "list_tags", limit=10, order="asc")
    raw = await api.get("/api/tags", limit=10, order="asc")
    assert [i["id"] for i in page["items"]] == [t["id"] for t in raw["items"]]


@case("get_tag")
async def _get_tag(mcp: Client, api: RawApi) -> None:
    tag_id = await api.first_id("/api/tags")
    out = await ok(mcp, "get_tag", tag_id=tag_id)
    assert out["item"]["name"] == (await api.get(f"/api/tags/{tag_id}"))["name"]


@case("create_tag")
async def _create_tag(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "create_tag", name="Brand new tag")
    assert (await api.get(f"/api/tags/{out['item']['id']}"))["name"] == "Brand new tag"


@case("update_tag")
async def _update_tag(mcp: Client, api: RawApi) -> None:
    tag_id = await api.first_id("/api/tags")
    await ok(mcp, "update_tag", tag_id=tag_id, name="Renamed tag")
    assert (await api.get(f"/api/tags/{tag_id}"))["name"] == "Renamed tag"


@case("delete_tag")
async def _delete_tag(mcp: Client, api: RawApi) -> None:
    tag_id = await api.first_id("/api/tags")
    await ok(mcp, "delete_tag", tag_id=tag_id)
    assert await api.status(f"/api/tags/{tag_id}") == 404


@case("add_tag_to_contact")
async def _add_tag(mcp: Client, api: RawApi) -> None:
    tag = await api.post("/api/tags", {"name": "To add"})
    contact_id = await api.first_id("/api/contacts")
    await ok(mcp, "add_tag_to_contact", contact_id=contact_id, tag_id=tag["id"])
    tags = (await api.get(f"/api/contacts/{contact_id}"))["tags"]
    assert tag["id"] in [t["id"] for t in tags]


@case("remove_tag_from_contact")
async def _remove_tag(mcp: Client, api: RawApi) -> None:
    tag = await api.post("/api/tags", {"name": "To remove"})
    contact_id = await api.first_id("/api/contacts")
    await api.post(f"/api/contacts/{contact_id}/tags", {"tagId": tag["id"]})
    await ok(mcp, "remove_tag_from_contact", contact_id=contact_id, tag_id=tag["id"])
    tags = (await api.get(f"/api/contacts/{contact_id}"))["tags"]
    assert tag["id"] not in [t["id"] for t in tags]


# ---------------------------------------------------------------- contact fields
@case("list_contact_fields")
async def _list_fields(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_contact_fields")
    raw = await api.get("/api/contact_fields")
    assert [i["slug"] for i in out["items"]] == [f["slug"] for f in raw["items"]]
    assert "first_name" in [i["slug"] for i in out["items"]]


@case("create_contact_field")
async def _create_field(mcp: Client, api: RawApi) -> None:
    await ok(mcp, "create_contact_field", name="Favourite colour", slug="favourite_colour")
    raw = await api.get("/api/contact_fields")
    assert {"slug": "favourite_colour", "fieldName": "Favourite colour"} in raw["items"]


@case("update_contact_field")
async def _update_field(mcp: Client, api: RawApi) -> None:
    await api.post("/api/contact_fields", {"fieldName": "Shoe size", "slug": "shoe_size"})
    await ok(mcp, "update_contact_field", slug="shoe_size", name="Shoe size (EU)")
    raw = await api.get("/api/contact_fields")
    assert {"slug": "shoe_size", "fieldName": "Shoe size (EU)"} in raw["items"]


@case("delete_contact_field")
async def _delete_field(mcp: Client, api: RawApi) -> None:
    await api.post("/api/contact_fields", {"fieldName": "Temp", "slug": "temp_field"})
    await ok(mcp, "delete_contact_field", slug="temp_field")
    assert "temp_field" not in [f["slug"] for f in (await api.get("/api/contact_fields"))["items"]]


# ---------------------------------------------------------------- school
@case("list_courses")
async def _list_courses(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_courses")
    raw = (await api.get("/api/school/courses"))["items"]
    assert [i["id"] for i in out["items"]] == [c["id"] for c in raw]
    assert len(out["items"]) == 3
    # the module ids a partial enrollment needs come with the list (no list_course_modules call needed)
    assert [i["modules"] for i in out["items"]] == [
        [{"id": m["id"], "name": m["name"]} for m in c["modules"]] for c in raw
    ]
    assert all(i["modules"] and i["domain_name"] == c["domainName"] for i, c in zip(out["items"], raw, strict=True))


@case("list_course_modules")
async def _list_modules(mcp: Client, api: RawApi) -> None:
    course_id = await api.first_id("/api/school/courses")
    out = await ok(mcp, "list_course_modules", course_id=course_id)
    raw = await api.get("/api/school/course-modules", courseId=course_id)
    assert out["items"] and [i["id"] for i in out["items"]] == [m["id"] for m in raw["items"]]


@case("list_enrollments")
async def _list_enrollments(mcp: Client, api: RawApi) -> None:
    course_id = await api.first_id("/api/school/courses")
    out = await ok(mcp, "list_enrollments", course_id=course_id, limit=50)
    raw = await api.get("/api/school/enrollments", course=course_id, limit=50)
    assert [i["id"] for i in out["items"]] == [e["id"] for e in raw["items"]]
    assert all(i["course_id"] == course_id for i in out["items"])


@case("create_enrollment")
async def _create_enrollment(mcp: Client, api: RawApi) -> None:
    course_id = await api.first_id("/api/school/courses")
    modules = await api.get("/api/school/course-modules", courseId=course_id)
    contact = await api.post("/api/contacts", {"email": "learner@example.com"})
    module_ids = [m["id"] for m in modules["items"][:1]]
    out = await ok(
        mcp,
        "create_enrollment",
        course_id=course_id,
        contact_id=contact["id"],
        access_type="partial_access",
        modules=module_ids,
    )
    assert out["item"]["course_id"] == course_id and out["item"]["access_type"] == "partial_access"
    raw = await api.get("/api/school/enrollments", course=course_id, contact=contact["id"])
    assert len(raw["items"]) == 1


@case("delete_enrollment")
async def _delete_enrollment(mcp: Client, api: RawApi) -> None:
    enrollment = (await api.get("/api/school/enrollments"))["items"][0]
    await ok(mcp, "delete_enrollment", enrollment_id=enrollment["id"])
    remaining = await api.all_items("/api/school/enrollments", contact=enrollment["contact"]["id"])
    assert enrollment["id"] not in [e["id"] for e in remaining]


# ---------------------------------------------------------------- community
@case("list_communities")
async def _list_communities(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_communities")
    assert len(out["items"]) == 2
    raw = await api.get("/api/community/communities")
    assert [i["id"] for i in out["items"]] == [c["id"] for c in raw["items"]]


@case("list_memberships")
async def _list_memberships(mcp: Client, api: RawApi) -> None:
    community_id = await api.first_id("/api/community/communities")
    out = await ok(mcp, "list_memberships", community_id=community_id)
    raw = await api.get("/api/community/memberships", community=community_id)
    assert [i["id"] for i in out["items"]] == [m["id"] for m in raw["items"]]


@case("create_membership")
async def _create_membership(mcp: Client, api: RawApi) -> None:
    community_id = await api.first_id("/api/community/communities")
    contact = await api.post("/api/contacts", {"email": "member@example.com"})
    out = await ok(mcp, "create_membership", community_id=community_id, contact_id=contact["id"])
    assert out["outcome"] == "applied"
    raw = await api.get("/api/community/memberships", community=community_id, contact=contact["id"])
    assert len(raw["items"]) == 1


@case("delete_membership")
async def _delete_membership(mcp: Client, api: RawApi) -> None:
    membership = (await api.get("/api/community/memberships"))["items"][0]
    await ok(mcp, "delete_membership", membership_id=membership["id"])
    raw = await api.all_items("/api/community/memberships", contact=membership["contact"]["id"])
    assert membership["id"] not in [m["id"] for m in raw]


# ---------------------------------------------------------------- payment
@case("list_subscriptions")
async def _list_subscriptions(mcp: Client, api: RawApi) -> None:
    contact_id, sub_id = await api.contact_with_subscription()
    out = await ok(mcp, "list_subscriptions", contact_id=contact_id)
    assert sub_id in [i["id"] for i in out["items"]]


@case("cancel_subscription")
async def _cancel_subscription(mcp: Client, api: RawApi) -> None:
    contact_id, sub_id = await api.contact_with_subscription()
    await ok(mcp, "cancel_subscription", subscription_id=sub_id, when="now")
    subs = (await api.get("/api/payment/subscriptions", contact=contact_id))["items"]
    assert [s["status"] for s in subs if s["id"] == sub_id] == ["cancelled"]


# ---------------------------------------------------------------- webhooks
NEW_HOOK = {
    "name": "Orders hook",
    "url": "https://hooks.example.com/orders",
    "secret": "s3cret-value-123",
    "events": ["SALE_NEW", "CONTACT_CREATED"],
}


@case("list_webhooks")
async def _list_webhooks(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_webhooks")
    raw = await api.get("/api/webhooks")
    assert out["items"] and [i["id"] for i in out["items"]] == [w["id"] for w in raw["items"]]


@case("get_webhook")
async def _get_webhook(mcp: Client, api: RawApi) -> None:
    hook_id = (await api.get("/api/webhooks"))["items"][0]["id"]
    out = await ok(mcp, "get_webhook", webhook_id=hook_id)
    assert out["item"]["id"] == hook_id


@case("create_webhook")
async def _create_webhook(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "create_webhook", **NEW_HOOK, active=False)
    raw = await api.get(f"/api/webhooks/{out['item']['id']}")
    assert raw["url"] == NEW_HOOK["url"]
    assert raw["active"] is False and out["item"]["active"] is False  # `active` on create is honoured
    assert {(s["event"], s["schemaVersion"]) for s in raw["subscriptions"]} == {("SALE_NEW", 2), ("CONTACT_CREATED", 1)}


@case("update_webhook")
async def _update_webhook(mcp: Client, api: RawApi) -> None:
    hook_id = (await api.get("/api/webhooks"))["items"][0]["id"]
    await ok(mcp, "update_webhook", webhook_id=hook_id, name="Renamed hook", active=False)
    raw = await api.get(f"/api/webhooks/{hook_id}")
    assert raw["name"] == "Renamed hook" and raw["active"] is False


@case("delete_webhook")
async def _delete_webhook(mcp: Client, api: RawApi) -> None:
    hook_id = (await api.get("/api/webhooks"))["items"][0]["id"]
    await ok(mcp, "delete_webhook", webhook_id=hook_id)
    assert await api.status(f"/api/webhooks/{hook_id}") == 404


# ---------------------------------------------------------------- connections
@case("list_connections")
async def _list_connections(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_connections", status="ACTIVE")
    assert out["items"] and all(i["status"] == "ACTIVE" for i in out["items"])


@case("create_connection")
async def _create_connection(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "create_connection", app="systeme", method="API_KEY")
    item = out["item"]
    assert item["status"] == "PENDING" and item["url"] and item["method"] == "API_KEY"
    raw = await api.ctrl("GET", f"/connections/{item['connection_id']}")
    assert raw["connection"]["status"] == "PENDING" and raw["connection"]["method"] == "API_KEY"


@case("get_connection")
async def _get_connection(mcp: Client, api: RawApi) -> None:
    listed = await ok(mcp, "list_connections")
    connection_id = listed["items"][0]["connection_id"]
    out = await ok(mcp, "get_connection", connection_id=connection_id)
    assert out["item"]["connection_id"] == connection_id


@case("delete_connection")
async def _delete_connection(mcp: Client, api: RawApi) -> None:
    created = await ok(mcp, "create_connection", app="systeme")
    connection_id = created["item"]["connection_id"]
    await ok(mcp, "delete_connection", connection_id=connection_id)
    listed = await ok(mcp, "list_connections")
    assert connection_id not in [i["connection_id"] for i in listed["items"]]
