"""A hostile upstream: everything Systeme.io (or a proxy, or an impostor) sends is untrusted.

Each defence is checked against a scripted upstream — httpx2.MockTransport in-process, and for the drip-fed and
stalled answers a real TCP server on 127.0.0.1 — through `calls.execute` and, for a few, a real MCP session:
bounded error texts, size caps before and after decompression (a gzip bomb is cut after a few KB on the
wire), one deadline per call that no drip, stall, retry or pacing wait passes, 3xx and non-JSON and wrong-shape
2xx answers as errors (outcome unknown for writes), lone surrogates replaced, hostile rate-limit headers clamped.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
from mcp import Client, MCPError

from systeme_mcp import answers, calls, errors
from systeme_mcp.calls import OutcomeKind
from systeme_mcp.catalog import load_catalog
from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.policy import MAX_RETRY_AFTER, parse_retry_after, rate_remaining, refill_wait
from systeme_mcp.runtime import CallContext, Runtime, open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.wire import RequestPlan

from .helpers import VirtualClock, text
from .test_client import KEY, Recorder, make_client

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
CAP = 8 * MiB  # the default SYSTEME_MAX_RESPONSE_BYTES
CATALOG = load_catalog()


def context(client: SystemeClient) -> CallContext:
    return CallContext(Runtime(settings=client.settings, catalog=CATALOG, client=client))


async def execute(client: SystemeClient, tool: str, args: dict[str, Any]) -> calls.Outcome:
    return await calls.execute(context(client), CATALOG[tool], args)


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return lambda request: httpx2.Response(status, json=body, headers=headers)


def raw(status: int, content: bytes, content_type: str = "application/json") -> Any:
    return lambda request: httpx2.Response(status, content=content, headers={"Content-Type": content_type})


@dataclass
class Served:
    """How many body bytes a streamed answer handed to the client (the wire-side counter)."""

    bytes: int = 0


def streamed(status: int, body: Callable[[Served], AsyncIterator[bytes]], served: Served, **headers: str) -> Any:
    """An answer whose body is streamed chunk by chunk (no Content-Length), as a real network delivers it."""
    return lambda request: httpx2.Response(status, content=body(served), headers=headers)


async def big_error(served: Served) -> AsyncIterator[bytes]:
    """A 10 MB JSON error body, 64 KiB at a time."""
    chunk = b"x" * 65536
    parts = [b'{"detail": "', *([chunk] * (10_000_000 // len(chunk))), b'"}']
    for part in parts:
        served.bytes += len(part)
        yield part


async def gzip_bomb(served: Served) -> AsyncIterator[bytes]:
    """1 GiB of zeros, gzip-compressed on the fly (about 1 MB on the wire if read to the end)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    for _ in range(1024):
        out = packer.compress(zeros)
        if out:
            served.bytes += len(out)
            yield out
    tail = packer.flush()
    served.bytes += len(tail)
    yield tail


# ---------------------------------------------------------------- bounded error texts
async def test_a_10_mb_error_body_is_not_read_past_the_cap_and_the_message_stays_short() -> None:
    served = Served()
    handler = Recorder(streamed(422, big_error, served, **{"Content-Type": "application/json"}))
    outcome = await execute(make_client(handler), "create_tag", {"name": "vip"})
    assert outcome.kind == OutcomeKind.NOT_APPLIED and isinstance(outcome.error, errors.InvalidRequest)
    assert len(outcome.error.message()) < 500 and "cap" in outcome.error.message()
    assert served.bytes <= CAP + 2 * 65536  # reading stopped at the cap, not at 10 MB


async def test_a_huge_error_detail_and_violation_list_are_cut_saying_how_much() -> None:
    violations = [{"propertyPath": "name" * 100, "message": "bad " * 250} for _ in range(1_000)]
    body = {"detail": "y" * 1_000_000, "violations": violations}
    outcome = await execute(make_client(Recorder(reply(422, body))), "create_tag", {"name": "vip"})
    err = outcome.error
    assert isinstance(err, errors.InvalidRequest) and outcome.kind == OutcomeKind.NOT_APPLIED
    assert len(err.detail) < 2_100 and "more chars" in err.detail
    assert len(err.violations) == errors.MAX_VIOLATIONS + 1 and "980 more violations" in err.message()
    assert len(err.message()) < 10_000
    assert len(answers.failure_text(CATALOG["create_tag"], {"name": "vip"}, outcome)) < 10_000


# ---------------------------------------------------------------- size caps
async def test_a_gzip_bomb_is_cut_after_a_few_kb_on_the_wire() -> None:
    served = Served()
    handler = Recorder(streamed(200, gzip_bomb, served, **{"Content-Encoding": "gzip"}))
    outcome = await execute(make_client(handler), "list_contacts", {})
    err = outcome.error
    assert isinstance(err, errors.AnswerTooLarge) and err.code == "answer_too_large"
    assert outcome.kind == OutcomeKind.NOT_APPLIED  # a read: nothing changed
    assert err.decoded is not None and CAP < err.decoded <= CAP + MiB  # decoding stopped right at the cap
    assert err.read == served.bytes < 64 * 1024  # kilobytes read of a gigabyte bomb
    assert "SYSTEME_MAX_RESPONSE_BYTES" in err.message() and str(CAP) in err.message()
    assert len(handler.requests) == 1  # not retried


async def test_a_too_large_answer_to_a_write_leaves_its_outcome_unknown() -> None:
    served = Served()
    handler = Recorder(streamed(200, gzip_bomb, served, **{"Content-Encoding": "gzip"}))
    outcome = await execute(make_client(handler), "update_contact", {"contact_id": 5, "first_name": "Ana"})
    assert outcome.kind == OutcomeKind.UNKNOWN and isinstance(outcome.error, errors.AnswerTooLarge)
    assert calls.ambiguous(outcome.error)


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    handler = Recorder(lambda r: httpx2.Response(200, content=b"[]" * 600, headers={"Content-Length": "1200"}))
    with pytest.raises(errors.AnswerTooLarge) as caught:
        await make_client(handler, max_response_bytes=1024).send(RequestPlan("GET", "/api/contacts"))
    assert caught.value.decoded is None and caught.value.read == 1200


async def test_a_plain_body_over_the_cap_is_cut_on_the_wire() -> None:
    served = Served()

    async def endless(served: Served) -> AsyncIterator[bytes]:
        yield b"["
        while True:
            served.bytes += 4096
            yield b"1," * 2048

    handler = Recorder(streamed(200, endless, served))
    with pytest.raises(errors.AnswerTooLarge) as caught:
        await make_client(handler, max_response_bytes=64 * 1024).send(RequestPlan("GET", "/api/contacts"))
    assert 64 * 1024 < caught.value.read <= 64 * 1024 + 4097 and served.bytes <= 64 * 1024 + 8192


# ---------------------------------------------------------------- deadline (virtual clock)
async def test_a_retry_sequence_stops_at_the_deadline() -> None:
    sleeps: list[float] = []
    handler = Recorder(reply(503, {"detail": "busy"}, {"Retry-After": "4"}))
    client = make_client(handler, sleeps, call_deadline=10, max_attempts=10, retry_budget=600)
    with pytest.raises(errors.ServerError):
        await client.send(RequestPlan("GET", "/api/contacts"))
    assert sum(sleeps) <= 10 and len(handler.requests) == 3  # waited 4 + 4; a third wait would pass 10 s


async def test_a_retry_after_longer_than_the_time_left_answers_at_once() -> None:
    sleeps: list[float] = []
    handler = Recorder(reply(429, {"detail": "slow down"}, {"Retry-After": "50"}), 200)
    with pytest.raises(errors.RateLimited) as caught:
        await make_client(handler, sleeps, retry_budget=600, call_deadline=45).send(RequestPlan("GET", "/api/tags"))
    assert sleeps == [] and len(handler.requests) == 1
    message = caught.value.message()
    assert caught.value.retry_after == 50 and "retry in 50 s" in message and "45 s call deadline" in message


async def test_a_pacing_wait_longer_than_the_time_left_is_refused_without_sending() -> None:
    sleeps: list[float] = []
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Refill": "30"}
    handler = Recorder(reply(200, {"items": [], "hasMore": False}, spent))
    client = make_client(handler, sleeps, call_deadline=20)
    await client.send(RequestPlan("GET", "/api/tags"))
    outcome = await execute(client, "create_tag", {"name": "vip"})
    err = outcome.error
    assert isinstance(err, errors.PacedOut) and err.code == "rate_limited" and err.retry_after == 30
    assert outcome.kind == OutcomeKind.NOT_APPLIED and "Nothing was sent" in err.message()
    assert sleeps == [] and len(handler.requests) == 1


async def test_a_lost_write_is_settled_within_the_same_deadline() -> None:
    """The read-back after a lost answer shares the call's deadline: it is not a fresh 45 s."""
    sleeps: list[float] = []
    handler = Recorder(httpx2.ReadTimeout("lost"), reply(503, {"detail": "busy"}, {"Retry-After": "6"}))
    client = make_client(handler, sleeps, call_deadline=10, max_attempts=10, retry_budget=600)
    outcome = await execute(client, "create_tag", {"name": "vip"})
    assert outcome.kind == OutcomeKind.UNKNOWN and sum(sleeps) <= 10


# ---------------------------------------------------------------- deadline (a real server on 127.0.0.1)
async def _read_request(stream: anyio.abc.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


async def _hostile_server(stream: anyio.abc.SocketStream) -> None:
    """GET /drip: a 200 whose body comes one byte at a time; anything else: headers never come (a stall)."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
        async with stream:
            request = await _read_request(stream)
            if b" /api/drip" in request.split(b"\r\n", 1)[0]:
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
                await stream.send(head)
                for _ in range(100_000):
                    await anyio.sleep(0.1)
                    await stream.send(b" ")
            await anyio.sleep(3600)


@contextlib.asynccontextmanager
async def hostile_server() -> AsyncIterator[str]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _hostile_server)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


def real_client(base: str, **settings: Any) -> SystemeClient:
    options: dict[str, Any] = {"backend": "direct", "systeme_api_key": KEY, "systeme_api_url": base}
    return SystemeClient(Settings(**(options | settings)))  # real clock, real sleeps


async def test_a_drip_fed_body_is_cut_at_the_deadline() -> None:
    with anyio.fail_after(10):
        async with hostile_server() as base:
            client = real_client(base, call_deadline=1.0)
            with pytest.raises(errors.DeadlineExceeded) as caught:
                await client.send(RequestPlan("GET", "/api/drip"))
            await client.aclose()
    err = caught.value
    assert err.code == "deadline_exceeded" and "1 s call deadline" in err.message()
    assert "SYSTEME_CALL_DEADLINE" in err.message()


async def test_a_write_that_meets_a_stall_is_unknown_and_says_the_deadline() -> None:
    with anyio.fail_after(10):
        async with hostile_server() as base:
            client = real_client(base, call_deadline=1.0, max_attempts=4)
            op = CATALOG["update_contact"]
            outcome = await calls.execute(context(client), op, {"contact_id": 5, "first_name": "Ana"})
            await client.aclose()
    assert outcome.kind == OutcomeKind.UNKNOWN and isinstance(outcome.error, errors.DeadlineExceeded)
    assert "outcome is unknown" in outcome.error.message() and "1 s call deadline" in outcome.error.message()


async def test_a_post_that_meets_a_stall_is_not_read_back_past_the_deadline() -> None:
    with anyio.fail_after(10):
        async with hostile_server() as base:
            client = real_client(base, call_deadline=1.0)
            outcome = await calls.execute(context(client), CATALOG["create_tag"], {"name": "vip"})
            await client.aclose()
    assert outcome.kind == OutcomeKind.UNKNOWN and isinstance(outcome.error, errors.DeadlineExceeded)


# ---------------------------------------------------------------- false successes
async def test_a_redirect_is_an_error_naming_only_the_host() -> None:
    location = f"https://user:{KEY}@evil.example/steal?key={KEY}"
    handler = Recorder(lambda r: httpx2.Response(302, headers={"Location": location}))
    read = await execute(make_client(handler), "list_contacts", {})
    assert isinstance(read.error, errors.Redirected) and read.kind == OutcomeKind.NOT_APPLIED
    message = read.error.message()
    assert "302" in message and "evil.example" in message and KEY not in message and "steal" not in message
    write = await execute(make_client(handler), "update_contact", {"contact_id": 5, "first_name": "Ana"})
    assert write.kind == OutcomeKind.UNKNOWN and isinstance(write.error, errors.Redirected)
    assert len(handler.requests) == 2  # never followed, never retried


async def test_a_200_that_is_not_json_is_an_error_for_a_list() -> None:
    handler = Recorder(raw(200, b"<html>maintenance</html>", "text/html"))
    outcome = await execute(make_client(handler), "list_contacts", {})
    err = outcome.error
    assert isinstance(err, errors.UnexpectedAnswer) and err.code == "unexpected_answer"
    assert "not JSON, 24 bytes, content-type text/html" in err.message()


async def test_a_200_that_is_not_json_leaves_a_write_unknown() -> None:
    handler = Recorder(raw(200, b"<html>maintenance</html>", "text/html"))
    patch = await execute(make_client(handler), "update_contact", {"contact_id": 5, "first_name": "Ana"})
    assert patch.kind == OutcomeKind.UNKNOWN and isinstance(patch.error, errors.UnexpectedAnswer)
    post = await execute(make_client(handler), "create_tag", {"name": "vip"})  # the read-back is not JSON either
    assert post.kind == OutcomeKind.UNKNOWN and isinstance(post.error, errors.UnexpectedAnswer)


async def test_empty_and_plain_answers_stay_fine_where_no_result_is_declared() -> None:
    handler = Recorder(lambda r: httpx2.Response(204), raw(200, b"OK", "text/plain"))
    client = make_client(handler, confirm_destructive=False)
    assert (await execute(client, "delete_tag", {"tag_id": 5})).kind == OutcomeKind.APPLIED
    assert (await execute(client, "delete_tag", {"tag_id": 6})).kind == OutcomeKind.APPLIED


@pytest.mark.parametrize(
    "body",
    [{"items": {"id": 1}}, {"items": [1, 2]}, {"items": [{"id": 1}, "x"]}, {"nothing": []}, "items", 42, None],
)
async def test_a_200_of_the_wrong_shape_is_an_error_for_list_contacts(body: Any) -> None:
    handler = Recorder(reply(200, body))
    outcome = await execute(make_client(handler), "list_contacts", {})
    assert isinstance(outcome.error, errors.UnexpectedAnswer), outcome
    assert "expected a list of contact" in outcome.error.message()


@pytest.mark.parametrize("body", [[{"id": 1}], "contact", 7, True])
async def test_a_200_of_the_wrong_shape_is_an_error_for_get_contact(body: Any) -> None:
    handler = Recorder(reply(200, body))
    outcome = await execute(make_client(handler), "get_contact", {"contact_id": 1})
    assert isinstance(outcome.error, errors.UnexpectedAnswer)
    assert "expected a contact object" in outcome.error.message()


async def test_a_wrong_shape_on_the_read_back_never_reads_as_absent() -> None:
    """A lost create whose read-back is not a list must not be taken for "not there" and sent again."""
    handler = Recorder(httpx2.ReadTimeout("lost"), reply(200, {"items": "none"}))
    outcome = await execute(make_client(handler), "create_tag", {"name": "vip"})
    assert outcome.kind == OutcomeKind.UNKNOWN
    assert [r.method for r in handler.requests].count("POST") == 1


async def test_phone_numbers_are_a_list_of_scalars() -> None:
    handler = Recorder(reply(200, {"phoneNumbers": ["+15005550006"]}))
    outcome = await execute(make_client(handler), "list_sms_phone_numbers", {})
    assert outcome.kind == OutcomeKind.APPLIED and outcome.error is None


# ---------------------------------------------------------------- invalid Unicode
SURROGATES = (
    b'{"id": 1, "email": "a\\ud800@x.test", "\\udfffkey": ["\\udc00", {"deep": "\\ud83d"}],'
    b' "fields": [{"slug": "first_name", "value": "ok \\ud83d\\ude00 \\udbff"}], "bad": "\xff\xfe"}'
)


async def test_lone_surrogates_and_invalid_utf8_are_replaced_everywhere() -> None:
    handler = Recorder(raw(200, SURROGATES))
    outcome = await execute(make_client(handler), "get_contact", {"contact_id": 1})
    data = outcome.data
    assert outcome.kind == OutcomeKind.APPLIED and isinstance(data, dict)
    assert data["email"] == "a\ufffd@x.test" and data["\ufffdkey"] == ["\ufffd", {"deep": "\ufffd"}]
    assert data["fields"][0]["value"] == "ok \U0001f600 \ufffd"  # a real pair is kept
    assert data["bad"] == "\ufffd\ufffd"
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # nothing downstream can choke on it


# ---------------------------------------------------------------- hostile headers
HOSTILE = ["1e309", "-5", "nan", "inf", "-inf", "garbage", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT", "0x10", ""]


def test_hostile_retry_after_values_are_clamped_or_ignored() -> None:
    for value in HOSTILE:
        parsed = parse_retry_after(value)
        assert parsed is None or 0 <= parsed.seconds <= MAX_RETRY_AFTER, value


def test_hostile_rate_limit_values_are_clamped_or_ignored() -> None:
    for value in HOSTILE:
        left, wait = rate_remaining(value), refill_wait(value, 1_767_225_600.0)
        assert left is None or 0 <= left <= 1_000_000, value
        assert wait is None or 0 <= wait <= MAX_RETRY_AFTER, value


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_headers_never_make_the_client_wait_long(value: str) -> None:
    sleeps: list[float] = []
    hostile = {"Retry-After": value, "X-RateLimit-Remaining": value, "X-RateLimit-Refill": value}
    script = [reply(429, {"detail": "slow"}, hostile), reply(200, {"items": []}, hostile), 200, 200]
    handler = Recorder(*script)
    client = make_client(handler, sleeps, call_deadline=600, retry_budget=600, max_attempts=3)
    for _ in range(3):
        with contextlib.suppress(errors.RateLimited):
            await client.send(RequestPlan("GET", "/api/tags"))
    assert all(0 <= s <= MAX_RETRY_AFTER for s in sleeps), sleeps


async def test_a_spent_budget_with_garbage_refill_waits_briefly() -> None:
    sleeps: list[float] = []
    handler = Recorder(reply(200, {"items": []}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Refill": "nan"}))
    client = make_client(handler, sleeps)
    await client.send(RequestPlan("GET", "/api/tags"))
    await client.send(RequestPlan("GET", "/api/tags"))
    assert sleeps and max(sleeps) <= 1.0  # a short probe, not a hostile minute


# ---------------------------------------------------------------- through a real MCP session
@contextlib.asynccontextmanager
async def session(handler: Recorder, **settings: Any) -> AsyncIterator[Client]:
    options: dict[str, Any] = {"backend": "direct", "systeme_api_key": KEY, "max_attempts": 4}
    clock = VirtualClock()
    transport = httpx2.MockTransport(handler)
    async with (
        open_runtime(Settings(**(options | settings)), transport=transport, sleep=clock.sleep, clock=clock) as rt,
        Client(create_server(rt), cache=None) as client,
    ):
        yield client


async def test_mcp_a_create_answered_with_html_is_unknown() -> None:
    async with session(Recorder(raw(200, b"<html>hello</html>", "text/html"))) as client:
        result = await client.call_tool("create_tag", {"name": "vip"})
    structured = result.structured_content
    assert result.is_error and structured is not None
    assert structured["outcome"] == "unknown" and structured["error"]["kind"] == "unexpected_answer"
    assert "not JSON" in text(result)


async def test_mcp_an_update_answered_with_a_redirect_is_unknown() -> None:
    location = f"https://evil.example/?key={KEY}"
    async with session(Recorder(lambda r: httpx2.Response(307, headers={"Location": location}))) as client:
        result = await client.call_tool("update_contact", {"contact_id": 5, "first_name": "Ana"})
    structured = result.structured_content
    assert structured is not None and structured["outcome"] == "unknown"
    assert structured["error"]["kind"] == "redirected" and structured["error"]["status"] == 307
    assert "evil.example" in text(result) and KEY not in text(result)


async def test_mcp_an_update_answered_with_a_gzip_bomb_is_unknown() -> None:
    served = Served()
    handler = Recorder(streamed(200, gzip_bomb, served, **{"Content-Encoding": "gzip"}))
    async with session(handler) as client:
        result = await client.call_tool("update_contact", {"contact_id": 5, "first_name": "Ana"})
    structured = result.structured_content
    assert structured is not None and structured["outcome"] == "unknown"
    assert structured["error"]["kind"] == "answer_too_large" and served.bytes < 64 * 1024


async def test_mcp_a_write_held_by_pacing_past_the_deadline_is_not_applied() -> None:
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Refill": "59"}
    async with session(Recorder(reply(200, {"items": [], "hasMore": False}, spent))) as client:
        await client.call_tool("list_tags", {})
        result = await client.call_tool("create_tag", {"name": "vip"})
    structured = result.structured_content
    assert structured is not None and structured["outcome"] == "not_applied"
    assert structured["error"]["kind"] == "rate_limited" and structured["error"]["retry_after"] == 59


async def test_mcp_a_contact_with_lone_surrogates_is_answered() -> None:
    async with session(Recorder(raw(200, SURROGATES))) as client:
        result = await client.call_tool("get_contact", {"contact_id": 1})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["item"]["email"] == "a\ufffd@x.test"


async def test_mcp_a_list_of_the_wrong_shape_is_an_error() -> None:
    async with session(Recorder(reply(200, {"items": {"id": 1}}))) as client:
        result = await client.call_tool("list_contacts", {})
    assert result.is_error and "expected a list of contact objects at `items`" in text(result)


# ---------------------------------------------------------------- found by benchmarks/attacks.py
async def test_a_write_answered_with_broken_json_is_unknown_even_without_a_declared_result() -> None:
    handler = Recorder(raw(200, b'{"id": 5, "tags": [', "application/json"))
    outcome = await execute(make_client(handler), "add_tag_to_contact", {"contact_id": 5, "tag_id": 1})
    assert outcome.kind == OutcomeKind.UNKNOWN and isinstance(outcome.error, errors.UnexpectedAnswer)


@pytest.mark.parametrize("tool", ["list_tags", "list_connections"])
async def test_list_items_without_their_key_are_an_error_not_a_page(tool: str) -> None:
    body = {"items": [{"name": "no id"}], "connections": [{"status": "ACTIVE"}], "hasMore": False}
    handler = Recorder(reply(200, body))
    client = make_client(handler, backend="gateway", maton_api_key=KEY)
    outcome = await execute(client, tool, {})
    assert isinstance(outcome.error, errors.UnexpectedAnswer) and "have no" in outcome.error.message()


async def test_an_item_without_its_key_is_an_error() -> None:
    handler = Recorder(reply(200, {"email": "a@b.test"}))
    outcome = await execute(make_client(handler), "get_contact", {"contact_id": 1})
    assert isinstance(outcome.error, errors.UnexpectedAnswer)


async def test_mcp_the_contact_resource_refuses_a_wrong_shape() -> None:
    async with session(Recorder(reply(200, [{"id": 1}]))) as client:
        with pytest.raises(MCPError):
            await client.read_resource("systeme://contacts/1")
