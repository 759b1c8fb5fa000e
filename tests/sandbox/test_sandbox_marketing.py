"""Funnels, mailing campaigns and newsletters, and the SMS/Twilio reads."""

from __future__ import annotations

import json

import httpx2
import pytest

from systeme_mcp.sandbox import Sandbox

from .sandbox_testkit import KEY, MERGE, problem, violations, walk

pytestmark = pytest.mark.anyio


async def test_funnels(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    page = (await client.get("/api/funnels")).json()
    assert [set(f) for f in page["items"]] == [{"id", "name", "isActive"}] * 2
    created = await client.post("/api/funnels", json={"name": "Summer launch"})
    assert created.status_code == 201 and created.json()["isActive"] is True
    fid = created.json()["id"]
    assert (await client.get(f"/api/funnels/{fid}")).json()["name"] == "Summer launch"
    assert [f["id"] for f in (await client.get("/api/funnels", params={"query": "summer"})).json()["items"]] == [fid]
    step = await client.post(f"/api/funnels/{fid}/steps", json={"name": "Opt-in"})
    assert step.status_code == 201
    steps = await walk(client, f"/api/funnels/{fid}/steps")
    assert [s["id"] for s in steps] == [step.json()["id"]]
    assert (await client.get(f"/api/funnel-steps/{steps[0]['id']}")).json()["funnel"] == {"id": fid}
    problem(await client.get("/api/funnels/999"), 404)
    assert violations(await client.post("/api/funnels", json={})) == {"name": "This value should not be blank."}


async def test_campaigns(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    created = await client.post(
        "/api/mailing/campaigns",
        json={"name": "Onboarding", "senderEmail": "me@acme.test", "description": "d"},
    )
    assert created.status_code == 201
    cid = created.json()["id"]
    patched = await client.patch(
        f"/api/mailing/campaigns/{cid}",
        content=json.dumps({"description": None, "name": "Onboarding 2"}),
        headers=MERGE,
    )
    assert patched.json() == {
        "id": cid,
        "name": "Onboarding 2",
        "senderEmail": "me@acme.test",
        "description": None,
    }
    assert violations(await client.post("/api/mailing/campaigns", json={"name": "x" * 256})) == {
        "name": "This value is too long. It should have 255 characters or less."
    }
    assert violations(await client.post("/api/mailing/campaigns", json={"name": "ok", "description": "d" * 2001}))
    seeded = (await client.get("/api/mailing/campaigns", params={"query": "welcome"})).json()["items"][0]
    steps = await walk(client, f"/api/mailing/campaigns/{seeded['id']}/steps", order="asc")
    assert len(steps) == 3
    assert (await client.get(f"/api/mailing/campaign-steps/{steps[0]['id']}")).status_code == 200
    assert (await client.delete(f"/api/mailing/campaigns/{seeded['id']}")).status_code == 204
    assert all(s.campaign_id != seeded["id"] for s in sb.store.campaign_steps.values())
    problem(await client.get(f"/api/mailing/campaigns/{seeded['id']}"), 404)


async def test_newsletters(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    body = {
        "content": {
            "subject": "Hello",
            "previewText": "p",
            "editorType": "visual",
            "bodyHtml": "<p>Hi {first_name}</p>",
            "senderEmail": "a@acme.test",
            "senderName": "A",
        }
    }
    created = await client.post("/api/mailing/newsletters", json=body)
    assert created.status_code == 201, created.text
    n = created.json()
    assert n["type"] == "regular" and n["state"] == {"isSent": False} and n["content"]["subject"] == "Hello"
    nid = n["id"]
    patched = await client.patch(
        f"/api/mailing/newsletters/{nid}",
        content=json.dumps({"content": {"previewText": None, "subject": "Hi"}}),
        headers=MERGE,
    )
    assert (
        patched.json()["content"]["previewText"] is None
        and patched.json()["content"]["bodyHtml"] == "<p>Hi {first_name}</p>"
    )
    assert (
        await client.put(f"/api/mailing/newsletters/{nid}/included-tags", json={"tagIds": [1, 2]})
    ).status_code == 204
    assert (await client.put(f"/api/mailing/newsletters/{nid}/excluded-tags", json={"tagIds": [3]})).status_code == 204
    assert sb.store.newsletters[nid].included_tag_ids == [1, 2] and sb.store.newsletters[nid].excluded_tag_ids == [3]
    assert violations(await client.put(f"/api/mailing/newsletters/{nid}/included-tags", json={"tagIds": [999]})) == {
        "tagIds[0]": "Tag with ID 999 not found."
    }
    assert (
        await client.put(f"/api/mailing/newsletters/{nid}/schedule", json={"scheduledAt": "2999-01-01T09:00:00+00:00"})
    ).status_code == 204
    assert sb.store.newsletters[nid].scheduled_at == "2999-01-01T09:00:00+00:00"
    assert violations(
        await client.put(f"/api/mailing/newsletters/{nid}/schedule", json={"scheduledAt": "2001-01-01T00:00:00Z"})
    )
    assert violations(await client.post("/api/mailing/newsletters", json={"content": {"subject": ""}})) == {
        "content.subject": "This value should not be blank."
    }
    assert violations(
        await client.post("/api/mailing/newsletters", json={"content": {"subject": "s", "editorType": "word"}})
    ) == {"content.editorType": "The value you selected is not a valid choice."}
    problem(await client.delete(f"/api/mailing/newsletters/{nid}"), 405)  # the API cannot delete newsletters
    sent = next(x.id for x in sb.store.newsletters.values() if x.is_sent)
    problem(
        await client.put(f"/api/mailing/newsletters/{sent}/schedule", json={"scheduledAt": "2999-01-01T00:00:00Z"}),
        422,
    )
    ids = [x["id"] for x in await walk(client, "/api/mailing/newsletters", order="asc")]
    assert ids == sorted(sb.store.newsletters)


async def test_sms_not_configured(client: httpx2.AsyncClient) -> None:
    for path, status in (
        ("/api/sms/message-services", 424),
        ("/api/sms/phone-numbers", 424),
        ("/api/sms/twilio-account", 404),
    ):
        assert problem(await client.get(path), status)["detail"] == "The Twilio integration is not configured"


async def test_sms_connected() -> None:
    sb = Sandbox(rate_limit=None, twilio_connected=True)
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        services = (await c.get("/api/sms/message-services")).json()
        numbers = (await c.get("/api/sms/phone-numbers")).json()
        account = (await c.get("/api/sms/twilio-account")).json()
    assert services["hasMore"] is False and set(services["items"][0]) == {"sid", "name"}
    assert set(numbers) == {"phoneNumbers"} and all(n.startswith("+") for n in numbers["phoneNumbers"])
    assert set(account) == {"accountSid", "deactivated", "accountName", "createdAt"}
