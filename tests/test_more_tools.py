"""Funnels, mailing (campaigns, newsletters) and SMS tools (issue 8), held to the same bar as the core tools:
for every tool, through real MCP client sessions in both protocol eras, the happy path (sandbox state checked
through its own HTTP API), an invalid argument (isError, argument named, nothing sent) and an upstream error.
Plus the newsletter HTML check, the future-time check, Twilio "not configured", and the default toolsets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client

from systeme_mcp import newsletter_html
from systeme_mcp.catalog import Catalog
from systeme_mcp.registry import DEFAULT_TOOLSETS, full_registry, select
from systeme_mcp.runtime import Runtime, open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.tools import ToolDef

from .conftest import sandbox_settings
from .helpers import Cases, RawApi, ok, requests_seen, text
from .test_tools import _invalid_value

pytestmark = pytest.mark.anyio

NEW_TOOLS = """
list_funnels get_funnel create_funnel list_funnel_steps
list_campaigns get_campaign create_campaign update_campaign delete_campaign
list_newsletters get_newsletter create_newsletter update_newsletter set_newsletter_tags schedule_newsletter
list_sms_message_services list_sms_phone_numbers get_twilio_account
""".split()
TOOLSETS = {"funnels": NEW_TOOLS[:4], "mailing": NEW_TOOLS[4:15], "sms": NEW_TOOLS[15:]}
DESTRUCTIVE = {"delete_campaign", "schedule_newsletter"}
README = Path(__file__).resolve().parent.parent / "README.md"

CASES = Cases()
case = CASES.register


def future(days: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------- fixtures: every toolset, Twilio connected
@pytest.fixture
def sandbox() -> Any:
    from systeme_mcp.sandbox import Sandbox

    return Sandbox(rate_limit=None, membership_delay=0.0, twilio_connected=True)


@pytest.fixture
async def runtime(sandbox: Any) -> AsyncIterator[Runtime]:
    async with open_runtime(sandbox_settings(toolsets=["all"]), sandbox=sandbox) as rt:
        yield rt


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


# ---------------------------------------------------------------- newsletters
BODY = '<h2>Hello {first_name}</h2><p>Our <strong>news</strong>: <a href="https://acme.test">read</a>.</p>'


@case("list_newsletters")
async def _list_newsletters(mcp: Client, api: RawApi) -> None:
    out = await ok(mcp, "list_newsletters")
    raw = await api.get("/api/mailing/newsletters")
    assert out["items"] and [i["id"] for i in out["items"]] == [n["id"] for n in raw["items"]]
    assert [i["sent"] for i in out["items"]] == [n["state"]["isSent"] for n in raw["items"]]


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


# ---------------------------------------------------------------- the three tests, for every new tool
def test_every_new_tool_has_a_happy_path_case() -> None:
    assert sorted(CASES) == sorted(NEW_TOOLS)


@pytest.mark.parametrize("tool", NEW_TOOLS)
async def test_happy_path_changes_the_sandbox(tool: str, mcp: Client, api: RawApi) -> None:
    await CASES[tool](mcp, api)


@pytest.mark.parametrize("tool", NEW_TOOLS)
async def test_invalid_argument_is_named_and_nothing_is_sent(tool: str, mcp: Client, sandbox: Any) -> None:
    props = next(t for t in (await mcp.list_tools()).tools if t.name == tool).input_schema["properties"]
    if props:
        name, prop = next(iter(props.items()))
        arguments = {name: _invalid_value(prop)}
    else:
        name, arguments = "bogus", {"bogus": 1}
    before = requests_seen(sandbox)
    result = await mcp.call_tool(tool, arguments)
    assert result.is_error
    assert f"`{name}`" in text(result) and "nothing was sent" in text(result)
    assert requests_seen(sandbox) == before, "an invalid call reached the API"


VALID: dict[str, dict[str, Any]] = {
    "get_funnel": {"funnel_id": 1},
    "create_funnel": {"name": "X"},
    "list_funnel_steps": {"funnel_id": 1},
    "get_campaign": {"campaign_id": 1},
    "create_campaign": {"name": "X"},
    "update_campaign": {"campaign_id": 1, "name": "Y"},
    "delete_campaign": {"campaign_id": 1},
    "get_newsletter": {"newsletter_id": 2},
    "create_newsletter": {"subject": "S", "body_html": "<p>x</p>"},
    "update_newsletter": {"newsletter_id": 2, "body_html": "<p>x</p>"},
    "set_newsletter_tags": {"newsletter_id": 2, "audience": "included", "tag_ids": [1]},
    "schedule_newsletter": {"newsletter_id": 2, "send_at": "2099-01-01T09:00:00+00:00"},
}


@pytest.mark.parametrize("tool", NEW_TOOLS)
async def test_upstream_error_is_explained(tool: str, mcp: Client, sandbox: Any) -> None:
    from systeme_mcp.sandbox import FaultPlan

    sandbox.faults.set(FaultPlan(rate=1.0, kinds=("500",), seed=1))
    result = await mcp.call_tool(tool, VALID.get(tool, {}))
    assert result.is_error, text(result)
    assert "500" in text(result) and "Traceback" not in text(result)


# ---------------------------------------------------------------- declaration rules for the new tools
@pytest.fixture(scope="module")
def registry(catalog: Catalog) -> dict[str, ToolDef]:
    return full_registry(catalog)


@pytest.mark.parametrize("name", NEW_TOOLS)
def test_new_tool_is_fully_described(registry: dict[str, ToolDef], name: str) -> None:
    t = registry[name]
    assert t.toolset == next(ts for ts, names in TOOLSETS.items() if name in names)
    tool = t.tool
    assert tool.title and tool.description and len(tool.description) < 140, "keep descriptions short"
    assert tool.input_schema["additionalProperties"] is False
    for arg, prop in tool.input_schema["properties"].items():
        assert prop.get("description"), f"{name}.{arg} has no description"
        assert arg == arg.lower() and " " not in arg
    jsonschema.Draft202012Validator.check_schema(tool.input_schema)
    assert tool.output_schema is not None
    jsonschema.Draft202012Validator.check_schema(tool.output_schema)
    a = tool.annotations
    assert a is not None and a.open_world_hint is True
    assert a.read_only_hint is name.startswith(("list_", "get_"))
    assert a.destructive_hint is (name in DESTRUCTIVE)
    assert f"`{name}`" in README.read_text(encoding="utf-8"), "README tool table is stale"


@pytest.mark.parametrize("name", NEW_TOOLS)
async def test_structured_answers_match_the_output_schema(name: str, mcp: Client, api: RawApi) -> None:
    """Reads and writes alike: each call runs on a fresh sandbox, so the writes really apply."""
    tool = next(t for t in (await mcp.list_tools()).tools if t.name == name)
    result = await mcp.call_tool(name, {k: v for k, v in VALID.get(name, {}).items()})
    assert not result.is_error, text(result)
    assert tool.output_schema is not None
    jsonschema.validate(result.structured_content, tool.output_schema)


# ---------------------------------------------------------------- default toolsets
def test_default_toolsets_leave_out_funnels_mailing_sms(registry: dict[str, ToolDef]) -> None:
    default = select(registry, None, read_only=False)
    assert not {t.toolset for t in default.values()} & {"funnels", "mailing", "sms"}
    assert {t.toolset for t in default.values()} == set(DEFAULT_TOOLSETS)
    assert "list_contacts" in default and "list_funnels" not in default


def test_all_keyword_and_explicit_toolsets(registry: dict[str, ToolDef]) -> None:
    assert select(registry, ["all"], read_only=False).keys() == registry.keys()
    mailing = select(registry, ["mailing"], read_only=False)
    assert sorted(mailing) == sorted(TOOLSETS["mailing"])
    read_only = select(registry, ["sms", "funnels"], read_only=True)
    assert "create_funnel" not in read_only and "get_twilio_account" in read_only
    with pytest.raises(ValueError, match=r"unknown toolset\(s\): mail; valid toolsets: .*mailing.* \(or `all`\)"):
        select(registry, ["mail"], read_only=False)


async def test_unset_toolsets_serve_the_default_list(sandbox: Any) -> None:
    async with open_runtime(sandbox_settings(), sandbox=sandbox) as rt, Client(create_server(rt)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "list_contacts" in names and not names & set(NEW_TOOLS)


# ---------------------------------------------------------------- newsletter HTML
def test_supported_html_passes_untouched() -> None:
    body = (
        '<h2 style="text-align:center">Hi {first_name} {surname}</h2>\n'
        '<p>Mail: {email}. <strong>Bold</strong> <em>it</em> <u>u</u> <s>s</s> <span style="color:red">c</span>'
        '<br><a href="https://acme.test" target="_blank" rel="noopener">link</a></p>\n'
        "<ul><li><p>one</p></li><li>two <em>2</em><ol><li>nested</li></ol></li></ul>\n"
        '<figure><img src="https://acme.test/a.png" alt="a"><figcaption>Caption</figcaption></figure>'
        "<h3>h3</h3><h4>h4</h4><ol><li>x</li></ol>"
    )
    assert newsletter_html.problems(body) == []
    assert newsletter_html.check(body) == body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<div>x</div>", "line 1 col 1: <div> would be dropped (use <p>)"),
        ("<p>a</p>\n<h1>T</h1>", "line 2 col 1: <h1> would be dropped (use <h2>)"),
        ("<p><b>x</b></p>", "<b> would be dropped (use <strong>)"),
        ("<table><tr><td>x</td></tr></table>", "<table> would be dropped (tag not supported)"),
        ('<p class="lead" id="a">x</p>', 'attribute class="…" on <p> would be dropped'),
        ('<p><a href="/x" onclick="f()">x</a></p>', 'attribute onclick="…" on <a> would be dropped'),
        ("<p>Hi {{first_name}}</p>", "substitution {{first_name}} would not be replaced (write {first_name})"),
        ("<p>Hi {last_name}</p>", "substitution {last_name} would not be replaced (write {surname})"),
        ("<p>At {company}</p>", "substitution {company} would not be replaced (only {email}, {first_name}"),
        ("Hello there", 'text "Hello there" is outside any block; wrap it in <p>'),
        ("<strong>x</strong>", "<strong> would be dropped (inline tags must sit inside <p>"),
        ("<ul><p>x</p></ul>", "<p> would be dropped (not allowed directly inside <ul> (only li))"),
        ("<p><li>x</li></p>", "<li> would be dropped (not allowed inside <p>)"),
        ("<figure><p>x</p></figure>", "<p> would be dropped (not allowed inside <figure>"),
        ("<p>x</p><!-- note -->", "an HTML comment would be dropped"),
    ],
)
def test_what_would_be_dropped_is_named_with_its_position(body: str, expected: str) -> None:
    found = newsletter_html.problems(body)
    assert any(expected in p for p in found), found
    with pytest.raises(ValueError, match="would silently drop"):
        newsletter_html.check(body)


def test_script_is_reported_once_and_long_lists_are_capped() -> None:
    found = newsletter_html.problems("<script>var a = '<p>{x}</p>';</script><p>ok</p>")
    assert len(found) == 1 and "<script>" in found[0]
    many = newsletter_html.problems("".join(f"<div>{i}</div>" for i in range(30)))
    assert len(many) == newsletter_html.MAX_PROBLEMS + 1 and many[-1] == "… and 18 more."


async def test_bad_newsletter_html_is_refused_before_sending(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    body = '<h1>Sale</h1>\n<p class="x">Hi {name}, <b>50%</b> off</p>'
    result = await mcp.call_tool("create_newsletter", {"subject": "Sale", "body_html": body})
    assert result.is_error and requests_seen(sandbox) == before
    message = text(result)
    assert "`body_html`" in message and "nothing was sent" in message
    for part in ("line 1 col 1: <h1>", "use <h2>", 'line 2 col 1: attribute class="…" on <p>', "{name}", "<b>"):
        assert part in message, message


# ---------------------------------------------------------------- scheduling time
@pytest.mark.parametrize(
    ("send_at", "expected"),
    [
        ("2020-01-01T09:00:00+00:00", "in the past"),
        ("2099-01-01T09:00:00", "no UTC offset"),
        ("tomorrow at 9", "not an ISO-8601 date-time"),
        ("2099-13-01T09:00:00Z", "not an ISO-8601 date-time"),
    ],
)
async def test_schedule_needs_a_future_iso_time(send_at: str, expected: str, mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    result = await mcp.call_tool("schedule_newsletter", {"newsletter_id": 2, "send_at": send_at})
    assert result.is_error and requests_seen(sandbox) == before
    assert "`send_at`" in text(result) and expected in text(result), text(result)
    assert "future ISO-8601 date-time with offset" in text(result)


async def test_schedule_accepts_z_and_sends_the_offset(mcp: Client, api: RawApi, sandbox: Any) -> None:
    newsletter_id = await unsent_newsletter(api)
    await ok(mcp, "schedule_newsletter", newsletter_id=newsletter_id, send_at="2099-06-01T08:30:00Z")
    stored = sandbox.store.newsletters[newsletter_id].scheduled_at
    assert datetime.fromisoformat(stored) == datetime(2099, 6, 1, 8, 30, tzinfo=UTC)


async def test_a_sent_newsletter_cannot_be_changed(mcp: Client, api: RawApi) -> None:
    page = await api.get("/api/mailing/newsletters", limit=100)
    sent_id = next(n["id"] for n in page["items"] if n["state"]["isSent"])
    result = await mcp.call_tool("schedule_newsletter", {"newsletter_id": sent_id, "send_at": future()})
    assert result.is_error and "cannot be changed" in text(result) and "nothing was changed" in text(result).lower()


# ---------------------------------------------------------------- SMS without Twilio
@pytest.mark.parametrize(
    ("tool", "status"),
    [("list_sms_message_services", "424"), ("list_sms_phone_numbers", "424"), ("get_twilio_account", "404")],
)
async def test_sms_without_twilio_says_where_to_configure_it(tool: str, status: str) -> None:
    from systeme_mcp.sandbox import Sandbox

    bare = Sandbox(rate_limit=None, twilio_connected=False)
    async with open_runtime(sandbox_settings(toolsets=["sms"]), sandbox=bare) as rt, Client(create_server(rt)) as c:
        result = await c.call_tool(tool, {})
    message = text(result)
    assert result.is_error and status in message
    assert "Twilio (SMS) integration is not configured on this Systeme.io account" in message
    assert "Settings → Integrations → Twilio" in message
    assert not re.search(r"Not found \(404\).*does not exist", message), "must not read as a wrong id"
