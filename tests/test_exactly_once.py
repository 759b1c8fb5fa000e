"""Each post-failure check of issue 5, forced with an exact sandbox fault on the write's route: the answer must
say what happened, and the sandbox must hold the write exactly once (or not at all, when that is what it says).

Faults (see systeme_mcp/sandbox/faults.py): `reset_after` / `timeout_after` apply the write, then lose the answer;
`reset_before` / `timeout` / `500` / `502` / `503` lose it without applying; `429` is refused before anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client, types

from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server

from .conftest import sandbox_settings
from .helpers import RawApi, VirtualClock, text

pytestmark = pytest.mark.anyio

APPLIED_FIRST = ["reset_after", "timeout_after"]
NOT_APPLIED = ["reset_before", "timeout", "500", "502", "503"]


@asynccontextmanager
async def session(sandbox: Any) -> AsyncIterator[Client]:
    """A client session on `sandbox`; the client's waits (backoff, Retry-After) run on a clock of its own that
    moves only when it waits, so retries take no wall-clock time."""
    clock = VirtualClock()
    async with (
        open_runtime(sandbox_settings(toolsets=["all"]), sandbox=sandbox, sleep=clock.sleep, clock=clock) as rt,
        Client(create_server(rt), cache=None) as client,
    ):
        yield client


@pytest.fixture
async def mcp(sandbox: Any) -> AsyncIterator[Client]:
    async with session(sandbox) as client:
        yield client


def fault(sandbox: Any, kind: str, *routes: str, times: int = 1) -> None:
    """Fault the next `times` requests matching `routes` with `kind` (all other requests pass)."""
    from systeme_mcp.sandbox import FaultPlan

    sandbox.faults.set(FaultPlan(rate=1.0, kinds=(kind,), routes=routes, max_faults=times, retry_after=0))


def outcome(result: types.CallToolResult) -> str:
    assert not result.is_error, text(result)
    return str((result.structured_content or {})["outcome"])


def failure(result: types.CallToolResult) -> dict[str, Any]:
    """The structured content of a failed write's answer (it says the outcome, and why it failed)."""
    assert result.is_error and result.structured_content is not None, text(result)
    return dict(result.structured_content)


def sent(sandbox: Any, method: str, suffix: str) -> int:
    """How many `method` requests whose path ends with `suffix` reached the sandbox."""
    return sum(r.method == method and r.path.endswith(suffix) for r in sandbox.requests)


# ---------------------------------------------------------------------------- contact by email
@pytest.mark.parametrize("kind", APPLIED_FIRST)
async def test_contact_whose_answer_was_lost_is_found_by_email(kind: str, mcp: Client, sandbox: Any) -> None:
    fault(sandbox, kind, "POST /api/contacts")
    result = await mcp.call_tool("create_contact", {"email": "lost@example.com"})
    assert outcome(result) == "applied"
    assert "reading it back" in text(result)
    assert sum(c.email == "lost@example.com" for c in sandbox.store.contacts.values()) == 1
    assert sent(sandbox, "POST", "/api/contacts") == 1, "the write must not be sent twice"


@pytest.mark.parametrize("kind", NOT_APPLIED)
async def test_contact_not_created_is_sent_again_after_checking(kind: str, mcp: Client, sandbox: Any) -> None:
    fault(sandbox, kind, "POST /api/contacts")
    result = await mcp.call_tool("create_contact", {"email": "again@example.com"})
    assert outcome(result) == "applied"
    assert "sent again after confirming it had not been applied" in text(result)
    assert sum(c.email == "again@example.com" for c in sandbox.store.contacts.values()) == 1
    assert sent(sandbox, "POST", "/api/contacts") == 2


async def test_a_failed_read_back_is_read_again_not_given_up(mcp: Client, sandbox: Any) -> None:
    # the write's answer is lost, then the first read-back fails with a 500 (which the client does not retry)
    fault(sandbox, "500", "POST /api/contacts", "GET /api/contacts", times=2)
    result = await mcp.call_tool("create_contact", {"email": "reread@example.com"})
    assert outcome(result) == "applied"
    assert sum(c.email == "reread@example.com" for c in sandbox.store.contacts.values()) == 1


async def test_429_on_a_write_is_retried_because_nothing_was_done(mcp: Client, sandbox: Any) -> None:
    fault(sandbox, "429", "POST /api/contacts", times=2)
    result = await mcp.call_tool("create_contact", {"email": "limited@example.com"})
    assert outcome(result) == "applied" and "first answer was lost" not in text(result)
    assert sent(sandbox, "POST", "/api/contacts") == 3
    assert sum(c.email == "limited@example.com" for c in sandbox.store.contacts.values()) == 1


async def test_refused_connection_is_retried_because_nothing_was_sent(mcp: Client, sandbox: Any) -> None:
    fault(sandbox, "refused", "POST /api/contacts")
    result = await mcp.call_tool("create_contact", {"email": "refused@example.com"})
    assert outcome(result) == "applied"
    assert sum(c.email == "refused@example.com" for c in sandbox.store.contacts.values()) == 1


# ---------------------------------------------------------------------------- tag by name, field by slug
@pytest.mark.parametrize("kind", ["reset_after", "reset_before"])
async def test_tag_is_checked_by_name(kind: str, mcp: Client, sandbox: Any) -> None:
    fault(sandbox, kind, "POST /api/tags")
    result = await mcp.call_tool("create_tag", {"name": "Lost answer"})
    assert outcome(result) == "applied"
    assert sum(t.name == "Lost answer" for t in sandbox.store.tags.values()) == 1
    assert sent(sandbox, "POST", "/api/tags") == (1 if kind == "reset_after" else 2)


async def test_unknown_when_the_read_back_keeps_failing(mcp: Client, sandbox: Any, monkeypatch: Any) -> None:
    # the POST applies and its answer is lost; every read-back then fails: nothing confirmed, nothing resent
    fault(sandbox, "reset_after", "POST /api/tags")
    draw = sandbox.faults.draw
    monkeypatch.setattr(
        sandbox.faults, "draw", lambda m, p: "500" if (m, p.split("/api")[-1]) == ("GET", "/tags") else draw(m, p)
    )
    result = await mcp.call_tool("create_tag", {"name": "Unconfirmed"})
    answer = failure(result)
    assert answer["outcome"] == "unknown" and answer["error"] == {"kind": "no_answer"}  # the lost answer's reason
    assert "Check with list_tags" in text(result)  # the text names the read that settles it
    assert sum(t.name == "Unconfirmed" for t in sandbox.store.tags.values()) == 1
    assert sent(sandbox, "POST", "/api/tags") == 1, "never resent without a confirmed absence"


@pytest.mark.parametrize("kind", ["timeout_after", "timeout"])
async def test_field_is_checked_by_slug(kind: str, mcp: Client, sandbox: Any) -> None:
    fault(sandbox, kind, "POST /api/contact_fields")
    result = await mcp.call_tool("create_contact_field", {"name": "Lost", "slug": "lost_slug"})
    assert outcome(result) == "applied"
    assert "lost_slug" in sandbox.store.fields
    assert sent(sandbox, "POST", "/api/contact_fields") == (1 if kind == "timeout_after" else 2)


# ---------------------------------------------------------------------------- enrollment, membership
def _free_pair(table: Any, contacts: Any, groups: Any, attr: str) -> tuple[int, int]:
    taken = {(row.contact_id, getattr(row, attr)) for row in table.values()}
    return next((c, g) for c in sorted(contacts) for g in sorted(groups) if (c, g) not in taken)


@pytest.mark.parametrize("kind", ["reset_after", "500"])
async def test_enrollment_is_checked_by_contact_and_course(kind: str, mcp: Client, sandbox: Any) -> None:
    s = sandbox.store
    contact, course = _free_pair(s.enrollments, s.contacts, s.courses, "course_id")
    fault(sandbox, kind, "POST /api/school/courses/*/enrollments")
    result = await mcp.call_tool(
        "create_enrollment", {"course_id": course, "contact_id": contact, "access_type": "full_access"}
    )
    assert outcome(result) == "applied"
    found = [e for e in s.enrollments.values() if (e.contact_id, e.course_id) == (contact, course)]
    assert len(found) == 1 and found[0].access_type == "full_access"


async def test_enrollment_read_back_requires_the_requested_access(mcp: Client, sandbox: Any) -> None:
    """An existing enrollment with another access type is not mistaken for the lost write."""
    s = sandbox.store
    existing = next(e for e in s.enrollments.values() if e.access_type == "full_access")
    fault(sandbox, "reset_before", "POST /api/school/courses/*/enrollments")
    arguments = {"course_id": existing.course_id, "contact_id": existing.contact_id, "access_type": "dripping_content"}
    result = await mcp.call_tool("create_enrollment", arguments)
    assert outcome(result) == "applied" and "sent again" in text(result)
    assert existing.access_type == "dripping_content"


@pytest.mark.parametrize("delay", [0.0, 0.5])
async def test_membership_is_checked_by_contact_and_community(delay: float) -> None:
    """202 and queued: with a delay the read-back cannot see it yet, so it is sent again; a repeat join is
    accepted without a second membership, so the result is still exactly one."""
    from systeme_mcp.sandbox import Sandbox

    clock = VirtualClock()  # the sandbox's clock: it moves only when the test moves it
    sandbox = Sandbox(rate_limit=None, membership_delay=delay, clock=clock)
    s = sandbox.store
    contact, community = _free_pair(s.memberships, s.contacts, s.communities, "community_id")
    async with session(sandbox) as mcp:
        fault(sandbox, "reset_after", "POST /api/community/communities/*/memberships")
        result = await mcp.call_tool("create_membership", {"community_id": community, "contact_id": contact})
    assert outcome(result) == "applied"
    assert ("reading it back" if delay == 0 else "sent again") in text(result)
    assert sum((m.contact_id, m.community_id) == (contact, community) for m in s.memberships.values()) == 1
    api = RawApi(sandbox)
    try:
        listed = await api.get("/api/community/memberships", community=community, contact=contact)
        assert len(listed["items"]) == (1 if delay == 0 else 0)  # still queued until the delay has passed
        clock.now += delay
        listed = await api.get("/api/community/memberships", community=community, contact=contact)
        assert len(listed["items"]) == 1
    finally:
        await api.aclose()


# ---------------------------------------------------------------------------- tag on the contact (idempotent)
@pytest.mark.parametrize("kind", ["reset_after", "timeout_after", "reset_before", "500", "502"])
async def test_tagging_a_contact_is_simply_repeated(kind: str, mcp: Client, sandbox: Any) -> None:
    s = sandbox.store
    contact = next(c for c in s.contacts.values() if 1 not in c.tag_ids)
    fault(sandbox, kind, "POST /api/contacts/*/tags")
    result = await mcp.call_tool("add_tag_to_contact", {"contact_id": contact.id, "tag_id": 1})
    assert outcome(result) == "applied"
    assert contact.tag_ids.count(1) == 1
    assert sent(sandbox, "POST", f"/api/contacts/{contact.id}/tags") == 2


# ---------------------------------------------------------------------------- webhook by name + url
@pytest.mark.parametrize("kind", ["reset_after", "503"])
async def test_webhook_is_checked_by_name_and_url(kind: str, mcp: Client, sandbox: Any) -> None:
    fault(sandbox, kind, "POST /api/webhooks")
    hook = {
        "name": "Lost hook",
        "url": "https://hooks.example.com/lost",
        "secret": "lost-hook-secret",
        "events": ["SALE_NEW"],
    }
    result = await mcp.call_tool("create_webhook", hook)
    assert outcome(result) == "applied"
    assert sum(h.name == "Lost hook" for h in sandbox.store.webhooks.values()) == 1


# ---------------------------------------------------------------------------- subscription cancel
def _active_subscription(sandbox: Any) -> Any:
    return next(s for s in sandbox.store.subscriptions.values() if s.status == "active" and s.cancelled_at is None)


async def test_cancel_repeated_after_a_lost_answer_is_already_applied(mcp: Client, sandbox: Any) -> None:
    sub = _active_subscription(sandbox)
    fault(sandbox, "reset_after", "POST /api/payment/subscriptions/*/cancel")
    result = await mcp.call_tool("cancel_subscription", {"subscription_id": sub.id, "when": "now"})
    assert outcome(result) == "already_applied"
    assert sub.status == "cancelled"


async def test_cancel_that_did_not_happen_is_sent_again(mcp: Client, sandbox: Any) -> None:
    sub = _active_subscription(sandbox)
    fault(sandbox, "timeout", "POST /api/payment/subscriptions/*/cancel")
    result = await mcp.call_tool("cancel_subscription", {"subscription_id": sub.id, "when": "now"})
    assert outcome(result) == "applied"
    assert sub.status == "cancelled"


async def test_cancel_of_a_cancelled_subscription_says_nothing_changed(mcp: Client, sandbox: Any) -> None:
    sub = _active_subscription(sandbox)
    sub.status = "cancelled"  # elsewhere (in the account's dashboard): the server has no record of it
    result = await mcp.call_tool("cancel_subscription", {"subscription_id": sub.id, "when": "now"})
    answer = failure(result)
    assert answer["outcome"] == "not_applied" and answer["error"] == {"kind": "invalid_request", "status": 422}
    assert "already cancelled" in text(result)  # the API's reason is only in the text


# ---------------------------------------------------------------------------- connection: no check possible
@pytest.mark.parametrize("kind, created", [("reset_after", 1), ("reset_before", 0), ("timeout", 0)])
async def test_connection_outcome_is_reported_unknown(kind: str, created: int, mcp: Client, sandbox: Any) -> None:
    before = len(sandbox.store.connections)
    fault(sandbox, kind, "POST /connections")
    result = await mcp.call_tool("create_connection", {"app": "systeme"})
    answer = failure(result)
    assert answer["outcome"] == "unknown" and answer["error"] == {"kind": "no_answer"}
    assert 'list_connections(status="PENDING")' in text(result)  # the text names the read that settles it
    assert len(sandbox.store.connections) == before + created
    assert sent(sandbox, "POST", "/connections") == 1, "a write that cannot be checked is never resent"
