"""Happy-path cases of the funnels, mailing (campaigns, newsletters) and SMS tools: each calls its tool through
the MCP client and checks the result through the sandbox's own HTTP API (or, where the API cannot read it back,
the sandbox's store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mcp import Client

from ..helpers import RawApi, ok
from . import case


def future(days: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


async def unsent_newsletter(api: RawApi) -> int:
    page = await api.get("/api/mailing/newsletters", limit=100)
    return int(next(n["id"] for n in page["items"] if not n["state"]["isSent"]))


# ---------------------------------------------------------------- funnels
@case("list_funnels")
async def _list_funnels(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_funnels", limit=10, order="asc")
    raw = await api.get("/api/funnels", limit=10, order="asc")
    assert out["items"] and [i["id"] for i in out["items"]] == [f["id"] for f in raw["items"]]
    assert out["items"][0]["name"] == raw["items"][0]["name"]


@case("get_funnel")
async def _get_funnel(mcp: Client, api: RawApi) -> None:
    funnel_id = await api.first_id("/api/funnels")
    out = await ok(mcp, "get_funnel", funnel_id=funnel_id)
    raw = await api.get(f"/api/funnels/{funnel_id}")
    assert out["item"]["name"] == raw["name"] and out["item"]["active"] is raw["isActive"]


@case("create_funnel")
async def _create_funnel(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "create_funnel", name="Spring launch")
    assert out["outcome"] == "applied"
    assert (await api.get(f"/api/funnels/{out['item']['id']}"))["name"] == "Spring launch"


@case("list_funnel_steps")
async def _list_funnel_steps(mcp: Client, api: RawApi) -> None:
    funnel_id = await api.first_id("/api/funnels")
    out = await ok(mcp, "list_funnel_steps", funnel_id=funnel_id)
    raw = await api.get(f"/api/funnels/{funnel_id}/steps")
    assert out["items"] and [i["id"] for i in out["items"]] == [s["id"] for s in raw["items"]]


@case("get_funnel_step")
async def _get_funnel_step(mcp: Client, api: RawApi) -> None:
    funnel_id = await api.first_id("/api/funnels")
    step = (await api.get(f"/api/funnels/{funnel_id}/steps"))["items"][0]
    out = await ok(mcp, "get_funnel_step", funnel_step_id=step["id"])
    assert out["item"] == {"id": step["id"], "name": step["name"], "type": step["type"], "funnel_id": funnel_id}


@case("create_funnel_step")
async def _create_funnel_step(mcp: Client, api: RawApi) -> None:
    funnel_id = await api.first_id("/api/funnels")
    out = await ok(mcp, "create_funnel_step", funnel_id=funnel_id, name="Sales page", type="sales_page")
    assert out["outcome"] == "applied" and out["item"]["funnel_id"] == funnel_id
    raw = await api.get(f"/api/funnel-steps/{out['item']['id']}")
    assert (raw["name"], raw["type"], raw["funnel"]["id"]) == ("Sales page", "sales_page", funnel_id)
    listed = await api.get(f"/api/funnels/{funnel_id}/steps", limit=100)
    assert out["item"]["id"] in [s["id"] for s in listed["items"]]


# ---------------------------------------------------------------- campaigns
@case("list_campaigns")
async def _list_campaigns(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_campaigns", query="welcome")
    raw = await api.get("/api/mailing/campaigns", query="welcome")
    assert out["items"] and [i["id"] for i in out["items"]] == [c["id"] for c in raw["items"]]


@case("get_campaign")
async def _get_campaign(mcp: Client, api: RawApi) -> None:
    campaign_id = await api.first_id("/api/mailing/campaigns")
    out = await ok(mcp, "get_campaign", campaign_id=campaign_id)
    raw = await api.get(f"/api/mailing/campaigns/{campaign_id}")
    assert out["item"]["name"] == raw["name"] and out["item"]["sender_email"] == raw["senderEmail"]


@case("create_campaign")
async def _create_campaign(mcp: Client, api: RawApi) -> None:
    out = await ok(
        mcp, "create_campaign", name="Onboarding", sender_email="team@acme.test", description="New customers"
    )
    raw = await api.get(f"/api/mailing/campaigns/{out['item']['id']}")
    assert (raw["name"], raw["senderEmail"], raw["description"]) == ("Onboarding", "team@acme.test", "New customers")


@case("update_campaign")
async def _update_campaign(mcp: Client, api: RawApi) -> None:
    campaign_id = await api.first_id("/api/mailing/campaigns")
    await ok(mcp, "update_campaign", campaign_id=campaign_id, name="Renamed sequence", description=None)
    raw = await api.get(f"/api/mailing/campaigns/{campaign_id}")
    assert raw["name"] == "Renamed sequence" and raw["description"] is None and raw["senderEmail"]


@case("delete_campaign")
async def _delete_campaign(mcp: Client, api: RawApi) -> None:
    campaign_id = await api.first_id("/api/mailing/campaigns")
    out = await ok(mcp, "delete_campaign", campaign_id=campaign_id)
    assert out["outcome"] == "applied"
    assert await api.status(f"/api/mailing/campaigns/{campaign_id}") == 404


@case("list_campaign_steps")
async def _list_campaign_steps(mcp: Client, api: RawApi) -> None:
    campaign_id = await api.first_id("/api/mailing/campaigns")
    out = await ok(mcp, "list_campaign_steps", campaign_id=campaign_id)
    raw = await api.get(f"/api/mailing/campaigns/{campaign_id}/steps")
    assert out["items"] and [i["id"] for i in out["items"]] == [s["id"] for s in raw["items"]]
    assert [i["delay_days"] for i in out["items"]] == [s["delayInDays"] for s in raw["items"]]
    assert {i["campaign_id"] for i in out["items"]} == {campaign_id}


@case("get_campaign_step")
async def _get_campaign_step(mcp: Client, api: RawApi) -> None:
    campaign_id = await api.first_id("/api/mailing/campaigns")
    step = (await api.get(f"/api/mailing/campaigns/{campaign_id}/steps"))["items"][-1]
    out = await ok(mcp, "get_campaign_step", campaign_step_id=step["id"])
    assert out["item"]["name"] == step["name"] and out["item"]["campaign_id"] == campaign_id


# ---------------------------------------------------------------- newsletters
BODY = '<h2>Hello {first_name}</h2><p>Our <strong>news</strong>: <a href="https://acme.test">read</a>.</p>'


@case("list_newsletters")
async def _list_newsletters(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_newsletters")
    raw = await api.get("/api/mailing/newsletters")
    assert out["items"] and [i["id"] for i in out["items"]] == [n["id"] for n in raw["items"]]
    assert [i["sent"] for i in out["items"]] == [n["state"]["isSent"] for n in raw["items"]]
    found = await ok(mcp, "list_newsletters", query="black friday")
    wanted = [n["id"] for n in raw["items"] if "black friday" in n["content"]["subject"].casefold()]
    assert wanted and [i["id"] for i in found["items"]] == wanted


@case("get_newsletter")
async def _get_newsletter(mcp: Client, api: RawApi) -> None:
    newsletter_id = await api.first_id("/api/mailing/newsletters")
    out = await ok(mcp, "get_newsletter", newsletter_id=newsletter_id)
    raw = await api.get(f"/api/mailing/newsletters/{newsletter_id}")
    assert out["item"]["subject"] == raw["content"]["subject"]
    assert out["item"]["body_html"] == raw["content"]["bodyHtml"]


@case("create_newsletter")
async def _create_newsletter(mcp: Client, api: RawApi) -> None:
    out = await ok(
        mcp,
        "create_newsletter",
        subject="Spring news",
        preview_text="What's new",
        body_html=BODY,
        sender_email="news@acme.test",
        sender_name="Acme",
    )
    raw = await api.get(f"/api/mailing/newsletters/{out['item']['id']}")
    content = raw["content"]
    assert (content["subject"], content["bodyHtml"], content["senderEmail"]) == ("Spring news", BODY, "news@acme.test")
    assert content["previewText"] == "What's new" and raw["state"]["isSent"] is False
    assert content["editorType"] == "classic"
    visual = await ok(mcp, "create_newsletter", subject="Visual one", editor_type="visual")
    assert (await api.get(f"/api/mailing/newsletters/{visual['item']['id']}"))["content"]["editorType"] == "visual"


@case("update_newsletter")
async def _update_newsletter(mcp: Client, api: RawApi) -> None:
    newsletter_id = await unsent_newsletter(api)
    before = (await api.get(f"/api/mailing/newsletters/{newsletter_id}"))["content"]
    await ok(mcp, "update_newsletter", newsletter_id=newsletter_id, subject="New subject", body_html="<p>Hi</p>")
    after = (await api.get(f"/api/mailing/newsletters/{newsletter_id}"))["content"]
    assert after["subject"] == "New subject" and after["bodyHtml"] == "<p>Hi</p>"
    assert after["senderEmail"] == before["senderEmail"], "merge-patch must keep the other content keys"


@case("set_newsletter_tags")
async def _set_newsletter_tags(mcp: Client, api: RawApi) -> None:
    newsletter_id = await unsent_newsletter(api)
    tags = (await api.get("/api/tags", limit=10, order="asc"))["items"]
    await ok(mcp, "set_newsletter_tags", newsletter_id=newsletter_id, audience="included", tag_ids=[tags[0]["id"]])
    await ok(mcp, "set_newsletter_tags", newsletter_id=newsletter_id, audience="excluded", tag_ids=[tags[1]["id"]])
    # the API has no read-back of a newsletter's audience: check what the sandbox stored
    stored = api.sandbox.store.newsletters[newsletter_id]
    assert stored.included_tag_ids == [tags[0]["id"]] and stored.excluded_tag_ids == [tags[1]["id"]]
    await ok(mcp, "set_newsletter_tags", newsletter_id=newsletter_id, audience="excluded", tag_ids=[])
    assert api.sandbox.store.newsletters[newsletter_id].excluded_tag_ids == []


@case("schedule_newsletter")
async def _schedule_newsletter(mcp: Client, api: RawApi) -> None:
    newsletter_id = await unsent_newsletter(api)
    when = future(3)
    out = await ok(mcp, "schedule_newsletter", newsletter_id=newsletter_id, send_at=when)
    assert out["outcome"] == "applied" and when in out["message"]
    stored = api.sandbox.store.newsletters[newsletter_id].scheduled_at  # not readable through the API
    assert datetime.fromisoformat(stored) == datetime.fromisoformat(when)


async def audience(api: RawApi, included: list[int], excluded: list[int]) -> set[int]:
    """Ids of the contacts with any `included` tag and no `excluded` one, read through the API."""
    contacts = await api.all_items("/api/contacts")
    tags = {c["id"]: {t["id"] for t in c["tags"]} for c in contacts}
    return {cid for cid, have in tags.items() if have & set(included) and not have & set(excluded)}


@case("send_newsletter")
async def _send_newsletter(mcp: Client, api: RawApi) -> None:
    newsletter_id = await unsent_newsletter(api)
    tags = [t["id"] for t in (await api.get("/api/tags", limit=10, order="asc"))["items"]]
    included, excluded = tags[:2], tags[2:3]
    out = await ok(
        mcp, "send_newsletter", newsletter_id=newsletter_id, included_tag_ids=included, excluded_tag_ids=excluded
    )
    assert out["outcome"] == "applied"
    assert (await api.get(f"/api/mailing/newsletters/{newsletter_id}"))["state"]["isSent"] is True
    stored = api.sandbox.store.newsletters[newsletter_id]  # the audience and recipients: not readable through the API
    assert (stored.included_tag_ids, stored.excluded_tag_ids) == (included, excluded)
    assert set(stored.sent_to) == await audience(api, included, excluded) and stored.sent_to


# ---------------------------------------------------------------- sms
@case("list_sms_message_services")
async def _list_sms_services(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_sms_message_services")
    raw = await api.get("/api/sms/message-services")
    assert out["items"] and [i["sid"] for i in out["items"]] == [s["sid"] for s in raw["items"]]


@case("list_sms_phone_numbers")
async def _list_sms_numbers(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_sms_phone_numbers")
    raw = await api.get("/api/sms/phone-numbers")
    assert out["items"] and [i["number"] for i in out["items"]] == raw["phoneNumbers"]
    assert out["has_more"] is False


@case("get_twilio_account")
async def _get_twilio_account(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "get_twilio_account")
    raw = await api.get("/api/sms/twilio-account")
    assert out["item"]["account_sid"] == raw["accountSid"] and out["item"]["name"] == raw["accountName"]
