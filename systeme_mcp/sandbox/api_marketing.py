"""Funnels, mailing (campaigns, newsletters) and the SMS/Twilio reads.

Not modelled: funnel page content and the page editor, campaign step content and scheduling, emailing anyone (a
send marks the newsletter sent and records who it reached; a scheduled newsletter never becomes sent), TipTap
sanitising of `bodyHtml`, SMS templates.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .routing import Call, Reply, Router, child_page, created, envelope, fetched, named_page, page_reply
from .store import Campaign, CampaignStep, Funnel, FunnelStep, Newsletter
from .validation import Body, parse_datetime

router = Router()
TWILIO_MISSING = "The Twilio integration is not configured"
EDITOR_TYPES = ("classic", "visual")
CONTENT_LIMITS = {
    "subject": 255,
    "previewText": 140,
    "bodyHtml": 1_000_000,
    "senderEmail": 255,
    "senderName": 255,
}


# ---------------------------------------------------------------------------- funnels
def funnel_json(f: Funnel) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "isActive": f.is_active}


def step_json(s: FunnelStep) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "type": s.type, "funnel": {"id": s.funnel_id}}


@router.route("GET", "/funnels")
def list_funnels(call: Call) -> Reply:
    return named_page(call, call.store.funnels.values(), funnel_json)


@router.route("GET", "/funnels/{id:int}")
def get_funnel(call: Call) -> Reply:
    return fetched(call, call.store.funnels, funnel_json)


@router.route("POST", "/funnels")
def create_funnel(call: Call) -> Reply:
    body = call.body()
    name = body.text("name", required=True, max_len=255)
    body.done()
    assert name is not None
    funnel = Funnel(call.store.next_id("funnels"), name, True)
    return created(call.store.funnels, funnel, funnel_json)


@router.route("GET", "/funnels/{id:int}/steps")
def list_funnel_steps(call: Call) -> Reply:
    return child_page(call, call.store.funnels, call.store.funnel_steps.values(), "funnel_id", step_json)


@router.route("POST", "/funnels/{id:int}/steps")
def create_funnel_step(call: Call) -> Reply:
    funnel = call.store.get(call.store.funnels, call.int_param("id"))
    body = call.body()
    name = body.text("name", required=True, max_len=255)
    kind = body.text("type", max_len=64)  # guessed: any page type name is accepted, default optin
    body.done()
    assert name is not None
    step = FunnelStep(call.store.next_id("funnel_steps"), funnel.id, name, kind or "optin")
    return created(call.store.funnel_steps, step, step_json)


@router.route("GET", "/funnel-steps/{id:int}")
def get_funnel_step(call: Call) -> Reply:
    return fetched(call, call.store.funnel_steps, step_json)


# ---------------------------------------------------------------------------- campaigns
def campaign_json(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "senderEmail": c.sender_email, "description": c.description}


def campaign_step_json(s: CampaignStep) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "delayInDays": s.delay_days, "campaign": {"id": s.campaign_id}}


def _campaign_fields(body: Body, *, required: bool) -> dict[str, str | None]:
    return {
        "name": body.text("name", required=required, max_len=255),
        "sender_email": body.text("senderEmail", max_len=255),
        "description": body.text("description", max_len=2000),
    }


@router.route("GET", "/mailing/campaigns")
def list_campaigns(call: Call) -> Reply:
    return named_page(call, call.store.campaigns.values(), campaign_json)


@router.route("POST", "/mailing/campaigns")
def create_campaign(call: Call) -> Reply:
    body = call.body()
    values = _campaign_fields(body, required=True)
    body.done()
    campaign = Campaign(
        call.store.next_id("campaigns"), str(values["name"]), values["sender_email"], values["description"]
    )
    return created(call.store.campaigns, campaign, campaign_json)


@router.route("GET", "/mailing/campaigns/{id:int}")
def get_campaign(call: Call) -> Reply:
    return fetched(call, call.store.campaigns, campaign_json)


@router.route("PATCH", "/mailing/campaigns/{id:int}")
def update_campaign(call: Call) -> Reply:
    campaign = call.store.edit(call.store.campaigns, call.int_param("id"))
    body = call.body()
    values = _campaign_fields(body, required=False)
    present = {
        k: body.data.get(a)
        for k, a in (("name", "name"), ("sender_email", "senderEmail"), ("description", "description"))
        if a in body.data
    }
    if "name" in present and not present["name"]:
        body.add("name", errors.BLANK, errors.NOT_BLANK)
    body.done()
    for key in present:
        setattr(campaign, key, values[key])
    return Reply(200, campaign_json(campaign))


@router.route("DELETE", "/mailing/campaigns/{id:int}")
def delete_campaign(call: Call) -> Reply:
    campaign = call.store.get(call.store.campaigns, call.int_param("id"))
    del call.store.campaigns[campaign.id]
    for key in [k for k, s in call.store.campaign_steps.items() if s.campaign_id == campaign.id]:
        del call.store.campaign_steps[key]
    return Reply(204)


@router.route("GET", "/mailing/campaigns/{id:int}/steps")
def list_campaign_steps(call: Call) -> Reply:
    return child_page(call, call.store.campaigns, call.store.campaign_steps.values(), "campaign_id", campaign_step_json)


@router.route("GET", "/mailing/campaign-steps/{id:int}")
def get_campaign_step(call: Call) -> Reply:
    return fetched(call, call.store.campaign_steps, campaign_step_json)


# ---------------------------------------------------------------------------- newsletters
def newsletter_json(n: Newsletter) -> dict[str, Any]:
    return {"id": n.id, "type": "regular", "content": dict(n.content), "state": {"isSent": n.is_sent}}


def _content(body: Body, current: dict[str, Any] | None) -> dict[str, Any]:
    """Validate `content` and merge it over `current` (merge-patch: null clears a key)."""
    content = body.obj("content", required=current is None)
    merged: dict[str, Any] = dict(current or {k: None for k in (*CONTENT_LIMITS, "editorType")})
    if current is None:
        merged["editorType"] = "classic"
    for key, value in (content or {}).items():
        where = f"content.{key}"
        if key == "editorType":
            if value not in EDITOR_TYPES:
                body.add(where, errors.CHOICE, errors.NO_SUCH_CHOICE)
        elif key in CONTENT_LIMITS:
            if value is not None and not isinstance(value, str):
                raise errors.type_error(where, "string", value)
            if value is not None and len(value) > CONTENT_LIMITS[key]:
                body.add(
                    where,
                    f"This value is too long. It should have {CONTENT_LIMITS[key]} characters or less.",
                    errors.TOO_LONG,
                )
        else:
            continue
        merged[key] = value
    if content is not None and not (merged.get("subject") or "").strip():
        body.add("content.subject", errors.BLANK, errors.NOT_BLANK)
    return merged


@router.route("GET", "/mailing/newsletters")
def list_newsletters(call: Call) -> Reply:
    query = (call.query.text("query") or "").casefold()  # guessed: matches the subject
    found = (n for n in call.store.newsletters.values() if query in str(n.content.get("subject") or "").casefold())
    return page_reply(found, call.page(), lambda n: n.id, newsletter_json)


@router.route("POST", "/mailing/newsletters")
def create_newsletter(call: Call) -> Reply:
    body = call.body()
    content = _content(body, None)
    body.done()
    newsletter = Newsletter(call.store.next_id("newsletters"), content)
    return created(call.store.newsletters, newsletter, newsletter_json)


@router.route("GET", "/mailing/newsletters/{id:int}")
def get_newsletter(call: Call) -> Reply:
    return fetched(call, call.store.newsletters, newsletter_json)


def _editable(call: Call) -> Newsletter:
    newsletter = call.store.edit(call.store.newsletters, call.int_param("id"))
    if newsletter.is_sent:
        raise errors.violation("", "A sent newsletter cannot be changed.")
    return newsletter


def update_newsletter(call: Call) -> Reply:
    newsletter = _editable(call)
    body = call.body()
    content = _content(body, newsletter.content)
    body.done()
    newsletter.content = content
    return Reply(200, newsletter_json(newsletter))


router.add("PATCH", "/mailing/newsletters/{id:int}", update_newsletter)
router.add("PUT", "/mailing/newsletters/{id:int}", update_newsletter)  # deprecated in the spec, still served


def _tag_ids(call: Call, attr: str) -> Reply:
    newsletter = _editable(call)
    body = call.body()
    ids = body.array("tagIds", required=True)
    for i, tid in enumerate(ids or []):
        if not isinstance(tid, int) or isinstance(tid, bool):
            raise errors.type_error(f"tagIds[{i}]", "int", tid)
        if tid not in call.store.tags:
            body.add(f"tagIds[{i}]", f"Tag with ID {tid} not found.")
    body.done()
    setattr(newsletter, attr, list(dict.fromkeys(ids or [])))
    return Reply(204)


router.add("PUT", "/mailing/newsletters/{id:int}/included-tags", lambda call: _tag_ids(call, "included_tag_ids"))
router.add("PUT", "/mailing/newsletters/{id:int}/excluded-tags", lambda call: _tag_ids(call, "excluded_tag_ids"))


@router.route("PUT", "/mailing/newsletters/{id:int}/schedule")
def schedule_newsletter(call: Call) -> Reply:
    newsletter = _editable(call)
    body = call.body()
    text = body.text("scheduledAt", required=True)
    when = parse_datetime(text) if text else None
    if text and when is None:
        body.add("scheduledAt", "This value is not a valid datetime.")
    elif when is not None and when.timestamp() <= call.env.clock():
        body.add("scheduledAt", "The scheduled date must be in the future.")
    body.done()
    assert when is not None
    newsletter.scheduled_at = when.isoformat()
    return Reply(204)


@router.route("POST", "/mailing/newsletters/{id:int}/send")
def send_newsletter(call: Call) -> Reply:
    """Send now (no body): to contacts with any included tag and none of the excluded ones (guessed: 204; a sent
    newsletter or one without included tags → 422; unsubscribed and bounced contacts are counted like the rest)."""
    newsletter = call.store.edit(call.store.newsletters, call.int_param("id"))
    if newsletter.is_sent:
        raise errors.violation("", "This newsletter has already been sent.")
    if not newsletter.included_tag_ids:
        raise errors.violation("", "Set the newsletter's included tags before sending it.")
    included, excluded = set(newsletter.included_tag_ids), set(newsletter.excluded_tag_ids)
    reached = [
        c.id for c in call.store.contacts.values() if included & set(c.tag_ids) and not excluded & set(c.tag_ids)
    ]
    newsletter.is_sent, newsletter.sent_to, newsletter.scheduled_at = True, reached, None
    return Reply(204)


# ---------------------------------------------------------------------------- sms (Twilio reads)
def _twilio(call: Call, status: int) -> dict[str, Any]:
    if not call.store.twilio.get("connected"):
        raise errors.Problem(status, TWILIO_MISSING)
    return call.store.twilio


@router.route("GET", "/sms/message-services")
def message_services(call: Call) -> Reply:
    return envelope(_twilio(call, 424).get("messageServices", []))


@router.route("GET", "/sms/phone-numbers")
def phone_numbers(call: Call) -> Reply:
    return Reply(200, {"phoneNumbers": list(_twilio(call, 424).get("phoneNumbers", []))})


@router.route("GET", "/sms/twilio-account")
def twilio_account(call: Call) -> Reply:
    return Reply(200, dict(_twilio(call, 404).get("account", {})))
