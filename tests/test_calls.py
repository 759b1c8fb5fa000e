"""The typed core below the protocol: `calls.execute` → `Outcome`, the paginator, Retry-After, auth objects.

Each rule is checked against a scripted upstream (httpx2.MockTransport), so the exact failure is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx2
import pytest

from systeme_mcp import answers, calls, errors
from systeme_mcp.calls import OutcomeKind
from systeme_mcp.catalog import Operation, load_catalog
from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.policy import MAX_RETRY_AFTER, parse_retry_after
from systeme_mcp.runtime import CallContext, Runtime
from systeme_mcp.wire import RequestPlan

from .test_client import Recorder, make_client

pytestmark = pytest.mark.anyio


def context(client: SystemeClient) -> CallContext:
    return CallContext(Runtime(settings=client.settings, catalog=load_catalog(), client=client))


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return lambda request: httpx2.Response(status, json=body, headers=headers)


# ---------------------------------------------------------------- Outcome
async def test_a_delete_that_meets_404_after_a_retry_was_already_applied() -> None:
    handler = Recorder(503, reply(404, {"detail": "Not Found"}))
    outcome = await calls.execute(context(make_client(handler)), load_catalog()["delete_tag"], {"tag_id": 5})
    assert outcome.kind == OutcomeKind.ALREADY_APPLIED and outcome.error is None
    assert len(handler.requests) == 2


async def test_a_delete_that_meets_404_at_once_was_not_applied() -> None:
    handler = Recorder(reply(404, {"detail": "Not Found"}))
    outcome = await calls.execute(context(make_client(handler)), load_catalog()["delete_tag"], {"tag_id": 5})
    assert outcome.kind == OutcomeKind.NOT_APPLIED and isinstance(outcome.error, errors.NotFound)


async def test_a_lost_create_that_is_absent_is_sent_again_once() -> None:
    created = {"id": 9, "name": "vip"}
    handler = Recorder(
        httpx2.ReadTimeout("lost"), reply(200, {"items": [], "hasMore": False}), reply(201, created), 500
    )
    outcome = await calls.execute(context(make_client(handler)), load_catalog()["create_tag"], {"name": "vip"})
    assert outcome.kind == OutcomeKind.APPLIED and outcome.data == created and outcome.note
    assert [r.method for r in handler.requests] == ["POST", "GET", "POST"]


async def test_a_lost_create_that_is_there_is_not_sent_again() -> None:
    tag = {"id": 9, "name": "VIP"}
    handler = Recorder(httpx2.ReadTimeout("lost"), reply(200, {"items": [tag], "hasMore": False}), 500)
    outcome = await calls.execute(context(make_client(handler)), load_catalog()["create_tag"], {"name": "vip"})
    assert outcome.kind == OutcomeKind.APPLIED and outcome.data == tag
    assert [r.method for r in handler.requests] == ["POST", "GET"]


async def test_a_write_whose_outcome_cannot_be_settled_is_unknown() -> None:
    handler = Recorder(httpx2.ReadTimeout("lost"))
    op = load_catalog()["create_connection"]  # no read-back declared
    outcome = await calls.execute(context(make_client(handler, backend="gateway", maton_api_key="k")), op, {})
    assert outcome.kind == OutcomeKind.UNKNOWN and isinstance(outcome.error, errors.TransportError)
    text = answers.failure_text(op, {}, outcome)
    assert op.unknown_hint in text  # the declared way to check, not a name special-cased in code
    assert len(handler.requests) == 1


def refusal(detail: str, violation: str = "") -> errors.InvalidRequest:
    violations = [{"propertyPath": "name", "message": violation}] if violation else []
    return errors.InvalidRequest(status=422, detail=detail, violations=violations, request="POST /api/tags")


def test_already_done_is_read_from_the_apis_own_words() -> None:
    op = load_catalog()["create_tag"]
    assert calls.already_done(op, refusal("name: This value is already used."))
    assert calls.already_done(op, refusal("Validation failed", "This value is already used."))
    assert not calls.already_done(op, refusal("Validation failed", "This value is too long."))
    # our own wording around the API's words never counts
    assert "nothing was changed" in refusal("x").message() and not calls.already_done(op, refusal("x"))
    assert not calls.already_done(load_catalog()["create_funnel"], refusal("already used"))  # nothing declared


async def test_a_declared_not_configured_status_becomes_not_configured() -> None:
    op = load_catalog()["get_twilio_account"]
    handler = Recorder(reply(424, {"detail": "The Twilio integration is not configured"}))
    outcome = await calls.execute(context(make_client(handler)), op, {})
    assert isinstance(outcome.error, errors.NotConfigured)
    assert op.not_configured is not None and op.not_configured.where in outcome.error.message()


async def test_an_undeclared_424_is_an_ordinary_error() -> None:
    handler = Recorder(reply(424, {"detail": "The Twilio integration is not configured"}))
    outcome = await calls.execute(context(make_client(handler)), load_catalog()["list_tags"], {})
    assert outcome.error is not None and not isinstance(outcome.error, errors.NotConfigured)


# ---------------------------------------------------------------- one paginator
def listing(items_path: str) -> Operation:
    base = load_catalog()["list_tags"]
    params = {k: v for k, v in base.params.items() if k in ("limit", "starting_after")}
    return base.model_copy(update={"items_path": items_path, "params": params})


async def test_pages_follow_the_cursor_at_the_declared_items_path() -> None:
    pages = [
        {"data": {"rows": [{"id": 3}, {"id": 2}]}, "hasMore": True},
        {"data": {"rows": [{"id": 1}]}, "hasMore": False},
    ]
    handler = Recorder(reply(200, pages[0]), reply(200, pages[1]))
    seen = [p async for p in make_client(handler).pages(listing("data.rows"), {}, max_pages=5)]
    assert [[i["id"] for i in p.items] for p in seen] == [[3, 2], [1]]
    assert [p.has_more for p in seen] == [True, False]
    assert handler.requests[0].url.params["limit"] == "100"
    assert handler.requests[1].url.params["startingAfter"] == "2"


async def test_pages_stop_at_the_cap_and_say_more_remain() -> None:
    handler = Recorder(reply(200, {"items": [{"id": 5}], "hasMore": True}))
    seen = [p async for p in make_client(handler).pages(listing("items"), {"limit": 1}, max_pages=2)]
    assert len(seen) == 2 and seen[-1].has_more and len(handler.requests) == 2
    assert handler.requests[0].url.params["limit"] == "1"


# ---------------------------------------------------------------- Retry-After
def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == parse_retry_after("7.0", now)
    parsed = parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now)
    assert parsed is not None and parsed.seconds == 30 and not parsed.capped
    past = parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now)
    assert past is not None and past.seconds == 0
    for garbage in ("", "soon", "nan", "-"):
        assert parse_retry_after(garbage, now) is None


def test_a_hostile_retry_after_is_capped_and_the_answer_says_so() -> None:
    parsed = parse_retry_after("999999")
    assert parsed is not None and parsed.seconds == MAX_RETRY_AFTER and parsed.capped
    err = errors.from_response(
        429, {}, "GET /api/tags", maton=False, retry_after=parsed.seconds, retry_asked=parsed.asked
    )
    assert isinstance(err, errors.RateLimited)
    assert f"{MAX_RETRY_AFTER:g} s" in err.message() and "999999" in err.message()


async def test_a_capped_retry_after_is_what_the_client_waits() -> None:
    sleeps: list[float] = []
    handler = Recorder(reply(429, {"detail": "slow down"}, {"Retry-After": "999999"}), 200)
    client = make_client(handler, sleeps, retry_budget=600)
    await client.send(RequestPlan("GET", "/api/tags"))
    assert len(handler.requests) == 2
    assert max(sleeps) <= MAX_RETRY_AFTER


# ---------------------------------------------------------------- auth objects
async def test_connection_tools_on_the_direct_backend_need_the_maton_key_and_send_nothing() -> None:
    handler = Recorder(200)
    client = make_client(handler)  # direct backend, no Maton key
    with pytest.raises(errors.AuthError):
        await client.send(RequestPlan("GET", "/connections", api="maton"))
    assert handler.requests == []
    assert client.pacer.in_flight == 0  # the refused request left no slot taken


async def test_the_control_api_gets_the_bearer_but_never_the_connection_header() -> None:
    handler = Recorder(200)
    connection = "3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10"
    settings = Settings(backend="gateway", maton_api_key="k", maton_connection=connection)
    client = SystemeClient(settings, transport=httpx2.MockTransport(handler))
    await client.send(RequestPlan("GET", "/connections", api="maton"))
    await client.send(RequestPlan("GET", "/api/tags"))
    control, gateway = handler.requests
    assert control.headers["Authorization"] == gateway.headers["Authorization"] == "Bearer k"
    assert "maton-connection" not in control.headers and gateway.headers["Maton-Connection"] == connection
    await client.aclose()
