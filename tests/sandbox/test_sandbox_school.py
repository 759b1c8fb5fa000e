"""School, community and payment routes."""

from __future__ import annotations

import httpx2
import pytest

from systeme_mcp.sandbox import Sandbox

from .sandbox_testkit import KEY, problem, violations, walk

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- courses and modules
async def test_courses(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    page = (await client.get("/api/school/courses")).json()
    assert page["hasMore"] is False and len(page["items"]) == 3
    assert set(page["items"][0]) == {"id", "name", "active", "locale", "path", "domainName", "modules"}
    for course in page["items"]:  # the course's modules, in order, as [{id, name}] (live items carry them)
        mods = await walk(client, "/api/school/course-modules", courseId=course["id"], order="asc")
        assert course["modules"] == [{"id": m["id"], "name": m["name"]} for m in mods]
    by_module = (await client.get("/api/school/courses", params={"query": "upsells"})).json()["items"]
    assert [c["name"] for c in by_module] == ["Sales Funnel Blueprint"]
    sb.store.courses[1].active = False
    inactive = (await client.get("/api/school/courses", params={"active": "false"})).json()["items"]
    assert 1 in [c["id"] for c in inactive] and all(not c["active"] for c in inactive)


async def test_course_modules(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    modules = await walk(client, "/api/school/course-modules", courseId=3, order="asc")
    assert [m["name"] for m in modules] == [
        "Funnel basics",
        "Opt-in pages",
        "Upsells",
        "Analytics",
        "Scaling",
    ]
    assert set(modules[0]) == {"id", "name", "position"}
    assert violations(await client.get("/api/school/course-modules")) == {"courseId": "This value should not be blank."}
    assert (await client.get("/api/school/course-modules", params={"courseId": 99})).json()["items"] == []


# ---------------------------------------------------------------------------- enrollments
async def test_enroll_list_and_delete(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    answer = await client.post("/api/school/courses/2/enrollments", json={"contactId": 11, "accessType": "full_access"})
    assert answer.status_code == 201, answer.text
    enrollment = answer.json()
    assert set(enrollment) == {"id", "contact", "course", "accessType", "active"}
    assert enrollment["contact"]["id"] == 11 and "fields" not in enrollment["contact"]
    assert set(enrollment["course"]) == {"id", "name", "active", "locale", "path"}
    listed = (await client.get("/api/school/enrollments", params={"contact": 11, "course": 2})).json()["items"]
    assert [e["id"] for e in listed] == [enrollment["id"]]
    again = await client.post(
        "/api/school/courses/2/enrollments", json={"contactId": 11, "accessType": "dripping_content"}
    )
    assert again.status_code == 201 and again.json()["id"] == enrollment["id"]  # one enrollment per contact and course
    assert sb.store.enrollments[enrollment["id"]].access_type == "dripping_content"
    assert (await client.delete(f"/api/school/enrollments/{enrollment['id']}")).status_code == 204
    assert enrollment["id"] not in sb.store.enrollments
    problem(await client.delete(f"/api/school/enrollments/{enrollment['id']}"), 404)


@pytest.mark.parametrize("access", ["partial_access", "partial_dripping_access"])
async def test_partial_access_needs_modules_of_the_course(client: httpx2.AsyncClient, access: str) -> None:
    url = "/api/school/courses/1/enrollments"
    assert violations(await client.post(url, json={"contactId": 11, "accessType": access})) == {
        "modules": "This value should not be blank."
    }
    assert violations(await client.post(url, json={"contactId": 11, "accessType": access, "modules": []})) == {
        "modules": "This value should not be blank."
    }
    wrong = await client.post(url, json={"contactId": 11, "accessType": access, "modules": [5]})
    assert violations(wrong) == {"modules[0]": "Module with ID 5 not found in this course."}
    ok = await client.post(url, json={"contactId": 11, "accessType": access, "modules": [1, 2]})
    assert ok.status_code == 201 and ok.json()["accessType"] == access


async def test_enrollment_errors(client: httpx2.AsyncClient) -> None:
    url = "/api/school/courses/1/enrollments"
    assert violations(await client.post(url, json={"contactId": 11})) == {
        "accessType": "This value should not be blank."
    }
    assert violations(await client.post(url, json={"contactId": 11, "accessType": "forever"})) == {
        "accessType": "The value you selected is not a valid choice."
    }
    assert violations(await client.post(url, json={"contactId": 999999, "accessType": "full_access"})) == {
        "contactId": "Contact with ID 999999 not found."
    }
    problem(await client.post(url, json={"contactId": "11", "accessType": "full_access"}), 400)
    problem(
        await client.post("/api/school/courses/99/enrollments", json={"contactId": 11, "accessType": "full_access"}),
        404,
    )
    assert violations(await client.get("/api/school/enrollments", params={"course": "abc"})) == {
        "course": "This value is not valid."
    }


async def test_enrollment_pages(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    for order in ("asc", "desc"):
        ids = [e["id"] for e in await walk(client, "/api/school/enrollments", order=order, limit=25)]
        assert ids == sorted(sb.store.enrollments, reverse=order == "desc")


# ---------------------------------------------------------------------------- community
async def test_communities(client: httpx2.AsyncClient) -> None:
    page = (await client.get("/api/community/communities")).json()
    assert [set(c) for c in page["items"]] == [{"id", "name", "domainName", "path"}] * 2
    found = (await client.get("/api/community/communities", params={"query": "mastermind"})).json()["items"]
    assert [c["name"] for c in found] == ["Marketing Masterminds"]


async def test_membership_is_accepted_then_visible(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    sb.env.options.membership_delay = 3600.0  # accepted, but not listed yet
    answer = await client.post("/api/community/communities/1/memberships", json={"contactId": 299})
    assert answer.status_code == 202 and answer.json() == {}
    assert (await client.get("/api/community/memberships", params={"contact": 299, "community": 1})).json()[
        "items"
    ] == []
    for m in sb.store.memberships.values():
        m.visible_at = 0.0
    listed = (await client.get("/api/community/memberships", params={"contact": 299, "community": 1})).json()["items"]
    assert len(listed) == 1 and listed[0]["contact"] == {"id": 299} and listed[0]["community"]["id"] == 1
    again = await client.post("/api/community/communities/1/memberships", json={"contactId": 299})
    assert again.status_code == 202
    assert (
        len((await client.get("/api/community/memberships", params={"contact": 299, "community": 1})).json()["items"])
        == 1
    )
    assert (await client.delete(f"/api/community/memberships/{listed[0]['id']}")).status_code == 204
    problem(await client.delete(f"/api/community/memberships/{listed[0]['id']}"), 404)


async def test_membership_delay_uses_the_clock() -> None:
    now = [1000.0]
    sb = Sandbox(rate_limit=None, membership_delay=0.2, clock=lambda: now[0])
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        assert (await c.post("/api/community/communities/2/memberships", json={"contactId": 5})).status_code == 202
        q = {"contact": 5, "community": 2}
        hidden = (await c.get("/api/community/memberships", params=q)).json()["items"]
        now[0] += 0.25
        shown = (await c.get("/api/community/memberships", params=q)).json()["items"]
    assert hidden == [] and len(shown) == 1


async def test_membership_errors(client: httpx2.AsyncClient) -> None:
    problem(await client.post("/api/community/communities/9/memberships", json={"contactId": 1}), 404)
    assert violations(await client.post("/api/community/communities/1/memberships", json={"contactId": 999999})) == {
        "contactId": "Contact with ID 999999 not found."
    }
    assert violations(await client.post("/api/community/communities/1/memberships", json={})) == {
        "contactId": "This value should not be blank."
    }
    problem(await client.delete("/api/community/memberships/999999"), 404)


async def test_membership_pages(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    ids = [m["id"] for m in await walk(client, "/api/community/memberships", order="asc", limit=10)]
    assert ids == sorted(sb.store.memberships) and len(ids) > 20


# ---------------------------------------------------------------------------- payment
def _sub(sb: Sandbox, status: str) -> tuple[int, int]:
    s = next(s for s in sb.store.subscriptions.values() if s.status == status and s.cancelled_at is None)
    return s.contact_id, s.id


async def test_list_subscriptions(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    contact, sub_id = _sub(sb, "active")
    items = (await client.get("/api/payment/subscriptions", params={"contact": contact})).json()["items"]
    assert sub_id in [s["id"] for s in items]
    one = next(s for s in items if s["id"] == sub_id)
    assert set(one) == {"id", "createdAt", "status", "completedAt", "cancelledAt", "pricePlan"}
    assert one["pricePlan"]["currency"] == "eur" and "recurringOptions" in one["pricePlan"]
    for bad in ({}, {"contact": 0}, {"contact": "x"}, {"contact": -3}):
        assert violations(await client.get("/api/payment/subscriptions", params=bad)) == {
            "contact": "This value should be positive."
        }
    assert (await client.get("/api/payment/subscriptions", params={"contact": 999999})).json() == {
        "items": [],
        "hasMore": False,
    }


async def test_statuses_are_varied(sb: Sandbox) -> None:
    assert {s.status for s in sb.store.subscriptions.values()} >= {
        "active",
        "cancelled",
        "completed",
        "in_charge",
    }


async def test_cancel_now(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    _, sub_id = _sub(sb, "active")
    answer = await client.post(f"/api/payment/subscriptions/{sub_id}/cancel", json={"cancel": "Now"})
    assert answer.status_code == 204 and answer.content == b""
    assert sb.store.subscriptions[sub_id].status == "cancelled"
    again = await client.post(f"/api/payment/subscriptions/{sub_id}/cancel", json={"cancel": "Now"})
    assert problem(again, 422)["detail"] == "Subscription is already cancelled"


async def test_cancel_at_period_end(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    contact, sub_id = _sub(sb, "active")
    assert (
        await client.post(f"/api/payment/subscriptions/{sub_id}/cancel", json={"cancel": "WhenBillingPeriodEnds"})
    ).status_code == 204
    shown = next(
        s
        for s in (await client.get("/api/payment/subscriptions", params={"contact": contact})).json()["items"]
        if s["id"] == sub_id
    )
    assert shown["status"] == "active" and shown["cancelledAt"] is not None
    again = await client.post(f"/api/payment/subscriptions/{sub_id}/cancel", json={"cancel": "Now"})
    assert problem(again, 422)["detail"] == "Subscription is already cancelled"


async def test_cancel_errors(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    _, sub_id = _sub(sb, "active")
    url = f"/api/payment/subscriptions/{sub_id}/cancel"
    assert violations(await client.post(url, json={})) == {"cancel": "This value should not be blank."}
    assert violations(await client.post(url, json={"cancel": "Later"})) == {
        "cancel": "The value you selected is not a valid choice."
    }
    problem(await client.post(url), 400)
    problem(await client.post("/api/payment/subscriptions/999999/cancel", json={"cancel": "Now"}), 404)
    _, done = _sub(sb, "completed")
    problem(await client.post(f"/api/payment/subscriptions/{done}/cancel", json={"cancel": "Now"}), 422)
    assert sb.store.subscriptions[sub_id].status == "active"


async def test_payments_not_configured_is_404() -> None:
    sb = Sandbox(rate_limit=None, payments_configured=False)
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        problem(await c.get("/api/payment/subscriptions", params={"contact": 1}), 404)
        problem(await c.post("/api/payment/subscriptions/1/cancel", json={"cancel": "Now"}), 404)
