"""send_newsletter (issue 15, item 3): irreversible and reaching a whole audience, so it confirms like a destructive
tool, and both the confirmation and a `dry_run` preview name the subject and the audience size (contacts with
any included tag, less those with an excluded one). The audience is named in the call and set before the send,
so what was counted is what is sent to. Through real MCP client sessions in both protocol eras; every count is
checked against the sandbox's own API, every outcome in structured content."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client, types

from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server

from .cases.marketing import audience, unsent_newsletter
from .conftest import sandbox_settings
from .helpers import RawApi, text

pytestmark = pytest.mark.anyio
MODES = ["auto", "legacy"]


def writes(sandbox: Any) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sandbox.requests if r.method != "GET"]


class Asker:
    """An elicitation callback answering `answer` (None: decline), keeping each question."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params.message)
        if self.answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"confirm": self.answer})


@asynccontextmanager
async def session(sandbox: Any, mode: str, asker: Asker | None = None) -> AsyncIterator[Client]:
    settings = sandbox_settings(confirm_destructive=True, toolsets=["mailing"])
    async with (
        open_runtime(settings, sandbox=sandbox) as runtime,
        Client(create_server(runtime), mode=mode, elicitation_callback=asker) as client,
    ):
        yield client


async def setup(api: RawApi) -> tuple[int, str, list[int], list[int], set[int]]:
    """An unsent newsletter, its subject, included and excluded tags that overlap, and the audience they make."""
    newsletter_id = await unsent_newsletter(api)
    subject = (await api.get(f"/api/mailing/newsletters/{newsletter_id}"))["content"]["subject"]
    tags = [t["id"] for t in (await api.get("/api/tags", limit=10, order="asc"))["items"]]
    included, excluded = tags[:3], tags[1:2]  # a contact with tags[0] and tags[1] is excluded
    reached = await audience(api, included, excluded)
    assert reached and reached != await audience(api, included, []), "the seed makes the exclusion matter"
    return newsletter_id, subject, included, excluded, reached


def arguments(newsletter_id: int, included: list[int], excluded: list[int], **more: Any) -> dict[str, Any]:
    return {"newsletter_id": newsletter_id, "included_tag_ids": included, "excluded_tag_ids": excluded, **more}


@pytest.mark.parametrize("mode", MODES)
async def test_a_dry_run_names_subject_and_audience_and_sends_nothing(sandbox: Any, api: RawApi, mode: str) -> None:
    newsletter_id, subject, included, excluded, reached = await setup(api)
    sandbox.requests.clear()
    async with session(sandbox, mode, Asker(True)) as mcp:
        result = await mcp.call_tool("send_newsletter", arguments(newsletter_id, included, excluded, dry_run=True))
    assert not result.is_error and result.structured_content is not None, text(result)
    out = result.structured_content
    assert out["dry_run"] is True and out["outcome"] == "not_applied"
    assert out["target"]["id"] == newsletter_id and out["target"]["subject"] == subject
    assert out["audience"] == {
        "size": len(reached),
        "exact": True,
        "included_tag_ids": included,
        "excluded_tag_ids": excluded,
    }
    assert out["apply"] == {
        "tool": "send_newsletter",
        "arguments": arguments(newsletter_id, included, excluded, dry_run=False),
    }
    assert writes(sandbox) == [], "a dry run wrote something"
    assert (await api.get(f"/api/mailing/newsletters/{newsletter_id}"))["state"]["isSent"] is False


@pytest.mark.parametrize("mode", MODES)
async def test_without_elicitation_the_refusal_names_subject_and_audience(sandbox: Any, api: RawApi, mode: str) -> None:
    newsletter_id, subject, included, excluded, reached = await setup(api)
    sandbox.requests.clear()
    async with session(sandbox, mode) as mcp:
        first = await mcp.call_tool("send_newsletter", arguments(newsletter_id, included, excluded))
        assert first.is_error and first.structured_content is not None
        assert first.structured_content["outcome"] == "not_applied"
        assert first.structured_content["error"] == {"kind": "needs_confirmation"}
        assert first.structured_content["target"]["subject"] == subject
        assert first.structured_content["audience"]["size"] == len(reached)
        assert writes(sandbox) == []
        second = await mcp.call_tool("send_newsletter", arguments(newsletter_id, included, excluded, confirm=True))
        assert not second.is_error and second.structured_content is not None, text(second)
        assert second.structured_content["outcome"] == "applied"
    assert set(sandbox.store.newsletters[newsletter_id].sent_to) == reached


@pytest.mark.parametrize("mode", MODES)
async def test_the_question_names_subject_and_audience_and_an_accept_sends(
    sandbox: Any, api: RawApi, mode: str
) -> None:
    newsletter_id, subject, included, excluded, reached = await setup(api)
    asker = Asker(True)
    async with session(sandbox, mode, asker) as mcp:
        result = await mcp.call_tool("send_newsletter", arguments(newsletter_id, included, excluded))
    assert not result.is_error and result.structured_content is not None, text(result)
    assert result.structured_content["outcome"] == "applied"
    assert len(asker.asked) == 1
    assert subject in asker.asked[0] and f"{len(reached)} contacts" in asker.asked[0]
    stored = sandbox.store.newsletters[newsletter_id]
    assert stored.is_sent and set(stored.sent_to) == reached
    assert (stored.included_tag_ids, stored.excluded_tag_ids) == (included, excluded)  # the audience that was counted
    sends = [w for w in writes(sandbox) if w[1].endswith("/send")]
    assert sends == [("POST", f"/systeme/api/mailing/newsletters/{newsletter_id}/send")]  # once, via the gateway


@pytest.mark.parametrize("mode", MODES)
async def test_a_declined_question_sends_and_sets_nothing(sandbox: Any, api: RawApi, mode: str) -> None:
    newsletter_id, _, included, excluded, _ = await setup(api)
    sandbox.requests.clear()
    async with session(sandbox, mode, Asker(None)) as mcp:
        result = await mcp.call_tool("send_newsletter", arguments(newsletter_id, included, excluded))
    assert result.structured_content is not None and result.structured_content["outcome"] == "not_applied"
    assert writes(sandbox) == [] and not sandbox.store.newsletters[newsletter_id].is_sent


async def test_a_sent_newsletter_is_not_sent_again(sandbox: Any, api: RawApi) -> None:
    page = await api.get("/api/mailing/newsletters", limit=100)
    sent = next(n["id"] for n in page["items"] if n["state"]["isSent"])
    tag = await api.first_id("/api/tags")
    sandbox.requests.clear()
    async with session(sandbox, "auto") as mcp:
        result = await mcp.call_tool("send_newsletter", arguments(sent, [tag], [], confirm=True))
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["outcome"] == "not_applied"
    assert result.structured_content["error"]["status"] == 422  # setting the audience of a sent one is refused
    assert not [w for w in writes(sandbox) if w[1].endswith("/send")], "the send was made anyway"


async def test_an_audience_is_required(sandbox: Any) -> None:
    async with session(sandbox, "auto") as mcp:
        bad: dict[str, Any]
        for bad in ({}, {"included_tag_ids": []}):
            result = await mcp.call_tool("send_newsletter", {"newsletter_id": 1, **bad})
            assert result.structured_content is not None
            assert result.structured_content["error"] == {"kind": "invalid_arguments"}
            assert "`included_tag_ids`" in text(result)
    assert writes(sandbox) == []
