"""Planted secrets never leak: the Maton key, the Systeme key, a webhook secret, a state key ring and a tenant
secret are planted, a full session touches every tool family plus the error paths (401 with a wrong key, 404,
422, injected 500s / resets / timeouts / refusals, an upstream that echoes the request's headers and URL back),
and every answer (text and structured), every log record (DEBUG, every logger) and every log notification the
client received is grepped for them. Also `repr`/`str` of the settings and the text of exceptions."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from mcp import Client, types

from systeme_mcp import errors
from systeme_mcp.config import Settings
from systeme_mcp.runtime import open_runtime
from systeme_mcp.sandbox import FaultPlan, Sandbox
from systeme_mcp.server import create_server
from systeme_mcp.wire import RequestPlan

from .helpers import VirtualClock
from .test_fuzz import simple_value

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:The logging capability is deprecated")]

MATON_KEY = "mtn_SECRET_planted_4f9c2e71b8a0d3e5"
SYSTEME_KEY = "sys_SECRET_planted_9a8b7c6d5e4f3a2b"
WRONG_KEY = "mtn_SECRET_wrong_key_77aa11bb22cc"
WEBHOOK_SECRET = "whsec_SECRET_planted_3c1e5a7b9d"
AUTH_TOKEN = "tok_SECRET_planted_http_bearer_0x1"
STATE_KEYS = ("state_SECRET_planted_new_5d2a9c81e7b3f046", "state_SECRET_planted_old_a17e3b95c2d8f604")
TENANT_SECRET = "tenant_SECRET_planted_c4e8a2f60b9d1735"
PLANTED = (MATON_KEY, SYSTEME_KEY, WRONG_KEY, WEBHOOK_SECRET, AUTH_TOKEN, *STATE_KEYS, TENANT_SECRET)
MODES = ["auto", "legacy"]


def forms(secret: str) -> set[str]:
    """The secret as it could appear: plain, URL-encoded, JSON-escaped, base64-free distinctive tail."""
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], secret[-14:]}


def hits(text: str) -> list[str]:
    return sorted({f for s in PLANTED for f in forms(s) if f in text})


class EchoingUpstream(httpx2.AsyncBaseTransport):
    """The sandbox, or (when switched on) a misbehaving upstream that echoes the request's URL and headers
    into its error body, or a network layer whose exception text carries them."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.mode: str | None = None  # None | "json" | "text" | "raise"

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.mode is None:
            return await self.inner.handle_async_request(request)
        echoed = f"{request.method} {request.url} headers={dict(request.headers)}"
        if self.mode == "raise":
            raise httpx2.ConnectError(f"could not reach upstream: {echoed}", request=request)
        if self.mode == "text":
            return httpx2.Response(502, text=f"<html><body>Bad gateway {echoed}</body></html>", request=request)
        body = {"status": 400, "title": "Bad Request", "detail": echoed, "headers": dict(request.headers)}
        return httpx2.Response(400, json=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Capture:
    """Everything shown to the client: answers (text + structured), log notifications."""

    answers: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    calls: int = 0
    clock: VirtualClock = field(default_factory=VirtualClock)  # the client's waits: backoff, Retry-After, pacing

    def add(self, result: Any) -> None:
        self.answers.append(json.dumps(result.model_dump(mode="json", by_alias=True), ensure_ascii=False))


@asynccontextmanager
async def session(
    sb: Sandbox, settings: Settings, capture: Capture, mode: str, upstream: EchoingUpstream | None = None
) -> AsyncIterator[Client]:
    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        capture.notifications.append(json.dumps(params.model_dump(mode="json"), ensure_ascii=False))

    transport = upstream or sb.transport()
    clock = capture.clock  # backoff and Retry-After waits take no wall-clock time (the retries still happen)
    async with open_runtime(settings, transport=transport, sleep=clock.sleep, clock=clock) as runtime:
        options: dict[str, Any] = {"mode": mode, "cache": None, "logging_callback": on_log}
        if mode != "legacy":
            options["log_level"] = "debug"
        async with Client(create_server(runtime), **options) as client:
            if mode == "legacy":
                await client.set_logging_level("debug")
            yield client


async def call(client: Client, capture: Capture, tool: str, args: dict[str, Any]) -> types.CallToolResult:
    result = await client.call_tool(tool, args)
    capture.calls += 1
    capture.add(result)
    return result


def gateway(sb: Sandbox, key: str = MATON_KEY, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "backend": "gateway",
        "maton_api_key": key,
        "maton_gateway_url": sb.base_url,
        "maton_ctrl_url": sb.base_url,
        "toolsets": ["all"],
        "confirm_destructive": False,
        "max_attempts": 2,
        "retry_budget": 1.0,
        "auth_token": AUTH_TOKEN,
        "state_secret": ",".join(STATE_KEYS),
        "tenant_secret": TENANT_SECRET,  # unused by one tenant, but a secret all the same: never shown
    }
    return Settings(**(options | overrides))


def direct(sb: Sandbox, key: str = SYSTEME_KEY, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "backend": "direct",
        "systeme_api_key": key,
        "systeme_api_url": sb.base_url,
        "maton_ctrl_url": sb.base_url,
        "toolsets": ["all"],
        "confirm_destructive": False,
        "max_attempts": 2,
        "retry_budget": 1.0,
    }
    return Settings(**(options | overrides))


def sandbox() -> Sandbox:
    return Sandbox(rate_limit=None, membership_delay=0.0, maton_keys={MATON_KEY}, api_keys={SYSTEME_KEY})


async def every_tool(client: Client, capture: Capture) -> None:
    """Each listed tool once with plain arguments (mostly 404s and refusals: the error paths)."""
    for tool in (await client.list_tools()).tools:
        schema = tool.input_schema
        args = {k: simple_value(schema["properties"][k]) for k in schema.get("required", [])}
        await call(client, capture, tool.name, args)


async def full_session(client: Client, capture: Capture, sb: Sandbox) -> None:
    """Every tool family on real records, a planted webhook secret, and the error paths."""
    c = capture
    await call(client, c, "list_contacts", {"limit": 10})
    await call(client, c, "get_contact", {"contact_id": 1})
    await call(client, c, "create_contact", {"email": "planted.session@example.com", "first_name": "P"})
    await call(client, c, "create_contact", {"email": "planted.session@example.com"})  # 422: exists
    await call(client, c, "update_contact", {"contact_id": 2, "first_name": "Q", "fields": {"job_title": "x"}})
    await call(client, c, "get_contact", {"contact_id": 999_999})  # 404
    await call(client, c, "list_tags", {})
    await call(client, c, "create_tag", {"name": "planted-tag"})
    await call(client, c, "create_tag", {"name": "planted-tag"})  # 422: duplicate
    await call(client, c, "add_tag_to_contact", {"contact_id": 3, "tag_id": 1})
    await call(client, c, "remove_tag_from_contact", {"contact_id": 3, "tag_id": 1})
    await call(client, c, "list_contact_fields", {})
    await call(client, c, "list_courses", {})
    await call(client, c, "create_enrollment", {"course_id": 1, "contact_id": 4, "access_type": "full_access"})
    await call(client, c, "list_communities", {})
    await call(client, c, "create_membership", {"community_id": 1, "contact_id": 4})
    await call(client, c, "list_subscriptions", {"contact_id": 1})
    hook = {"name": "planted", "url": "https://planted.example.com/h", "secret": WEBHOOK_SECRET, "events": ["SALE_NEW"]}
    created = await call(client, c, "create_webhook", hook)
    await call(client, c, "create_webhook", hook)  # 422: name/url taken, the secret was sent again
    await call(client, c, "create_webhook", {**hook, "secret": WEBHOOK_SECRET + "x" * 300})  # refused locally
    await call(client, c, "list_webhooks", {})
    webhook_id = (created.structured_content or {}).get("item", {}).get("id")
    if webhook_id:
        await call(client, c, "get_webhook", {"webhook_id": webhook_id})
        await call(client, c, "update_webhook", {"webhook_id": webhook_id, "secret": WEBHOOK_SECRET[::-1]})
        await call(client, c, "get_webhook", {"webhook_id": webhook_id})
    await call(client, c, "list_connections", {})
    await call(client, c, "create_connection", {"app": "systeme"})
    await call(client, c, "list_funnels", {})
    await call(client, c, "list_campaigns", {})
    await call(client, c, "get_twilio_account", {})
    await call(client, c, "find_contacts", {"email_domain": "gmail.test"})
    await call(client, c, "get_contact_by_email", {"email": "planted.session@example.com"})
    await call(client, c, "upsert_contact", {"email": "planted.upsert@example.com", "first_name": "U"})
    await call(client, c, "bulk_add_tag", {"contact_ids": [5, 6], "tag_id": 2, "dry_run": False})
    await every_tool(client, c)
    for kinds in (("500",), ("502",), ("429",), ("reset_before",), ("reset_after",), ("timeout",), ("refused",)):
        sb.faults.set(FaultPlan(rate=1.0, kinds=kinds, retry_after=0))
        await call(client, c, "list_tags", {})
        await call(client, c, "create_tag", {"name": f"fault-{kinds[0]}"})
        await call(client, c, "update_tag", {"tag_id": 1, "name": f"fault-{kinds[0]}"})
        await call(client, c, "delete_tag", {"tag_id": 2})
    sb.faults.clear()
    for resource in (await client.list_resources()).resources:
        capture.answers.append(json.dumps((await client.read_resource(str(resource.uri))).model_dump(mode="json")))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx2", "httpx", "httpcore", "mcp", "systeme_mcp", "anyio", "asyncio", "starlette"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return [formatter.format(r) + repr(r.args) for r in caplog.records]


def assert_clean(capture: Capture, caplog: pytest.LogCaptureFixture) -> None:
    assert capture.calls > 0
    for where, texts in (
        ("answer", capture.answers),
        ("client log notification", capture.notifications),
        ("log record", log_lines(caplog)),
    ):
        found = [(hits(t), t[:300]) for t in texts if hits(t)]
        assert not found, f"planted secret in {where}: {found[:3]}"


@pytest.mark.parametrize("mode", MODES)
async def test_gateway_session_never_shows_the_maton_key_or_the_webhook_secret(
    mode: str, logs: pytest.LogCaptureFixture
) -> None:
    sb, capture = sandbox(), Capture()
    async with session(sb, gateway(sb), capture, mode) as client:
        await full_session(client, capture, sb)
    assert capture.calls > 80
    assert any("webhook" in a and "planted" in a for a in capture.answers)  # the webhook really was created
    assert any(r.family == "gateway" for r in sb.requests)
    assert capture.clock.now > capture.clock.start  # the injected faults were retried after a backoff
    assert_clean(capture, logs)


@pytest.mark.parametrize("mode", MODES)
async def test_direct_session_never_shows_the_systeme_key(mode: str, logs: pytest.LogCaptureFixture) -> None:
    sb, capture = sandbox(), Capture()
    async with session(sb, direct(sb), capture, mode) as client:
        await full_session(client, capture, sb)
    assert any(r.family == "direct" for r in sb.requests)
    assert capture.clock.now > capture.clock.start  # the injected faults were retried after a backoff
    assert_clean(capture, logs)


@pytest.mark.parametrize("settings_for", [gateway, direct], ids=["gateway", "direct"])
async def test_a_wrong_key_gets_401s_that_never_show_it(settings_for: Any, logs: pytest.LogCaptureFixture) -> None:
    sb, capture = sandbox(), Capture()
    async with session(sb, settings_for(sb, key=WRONG_KEY), capture, "auto") as client:
        first = await call(client, capture, "list_contacts", {})
        await call(client, capture, "create_tag", {"name": "x"})
        await call(client, capture, "list_connections", {})
        await every_tool(client, capture)
    assert first.is_error and "401" in first.content[0].text  # type: ignore[union-attr]
    assert_clean(capture, logs)


@pytest.mark.parametrize("echo", ["json", "text", "raise"])
async def test_an_upstream_echoing_headers_and_urls_is_scrubbed(echo: str, logs: pytest.LogCaptureFixture) -> None:
    sb, capture = sandbox(), Capture()
    upstream = EchoingUpstream(sb.transport())
    for settings in (gateway(sb), direct(sb)):
        async with session(sb, settings, capture, "auto", upstream) as client:
            upstream.mode = echo
            for tool, args in (
                ("list_contacts", {}),
                ("get_contact", {"contact_id": 1}),
                ("create_tag", {"name": "echo"}),
                ("update_tag", {"tag_id": 1, "name": "echo"}),
                ("list_connections", {}),
                ("create_webhook", {"name": "e", "url": "https://e.example.com/h", "secret": WEBHOOK_SECRET}),
                ("find_contacts", {"tag": "vip"}),
            ):
                result = await call(client, capture, tool, args)
                assert result.is_error
            upstream.mode = None
    assert_clean(capture, logs)


async def test_exceptions_settings_and_runtime_never_carry_the_keys() -> None:
    sb = sandbox()
    texts: list[str] = []
    for settings in (gateway(sb, key=WRONG_KEY), direct(sb, key=WRONG_KEY), gateway(sb), direct(sb)):
        texts += [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
        clock = VirtualClock()
        async with open_runtime(settings, transport=sb.transport(), sleep=clock.sleep, clock=clock) as runtime:
            texts.append(repr(runtime))
            plan = RequestPlan(method="GET", path="/api/contacts", query={}, body=None, api="systeme")
            try:
                await runtime.client.send(plan)
            except errors.SystemeError as exc:
                texts += [str(exc), repr(exc), exc.message(), repr(exc.__dict__)]
    assert any("401" in t for t in texts)
    leaked = [(hits(t), t[:200]) for t in texts if hits(t)]
    assert not leaked, leaked
