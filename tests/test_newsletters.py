"""Newsletters (issue 8): the HTML check (what Systeme.io would drop is named with its position, and refused
before anything is sent), the future-time check of scheduling, and a sent newsletter that cannot be changed.
Through real MCP client sessions in both protocol eras, with the mailing toolset loaded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from mcp import Client, types

from systeme_mcp import newsletter_html

from .cases.marketing import future, unsent_newsletter
from .helpers import RawApi, ok, requests_seen, text

pytestmark = pytest.mark.anyio


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["mailing"]}


def refused_before_sending(result: types.CallToolResult) -> None:
    """The write was refused for its arguments: nothing was applied (nor sent: the callers count requests)."""
    assert result.is_error and result.structured_content is not None, text(result)
    assert result.structured_content["outcome"] == "not_applied"
    assert result.structured_content["error"] == {"kind": "invalid_arguments"}


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
    refused_before_sending(result)
    assert requests_seen(sandbox) == before
    message = text(result)
    assert "`body_html`" in message
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
    refused_before_sending(result)
    assert requests_seen(sandbox) == before
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
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["outcome"] == "not_applied"
    assert result.structured_content["error"] == {"kind": "invalid_request", "status": 422}
    assert "A sent newsletter cannot be changed" in text(result)  # the API's reason is only in the text
