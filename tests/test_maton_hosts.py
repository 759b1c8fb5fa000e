"""Maton's hosts (issue 15, item 1): the hosts Maton documents today by default (`api.maton.ai` for the gateway
and the control API), the legacy ones (`gateway.maton.ai`, `ctrl.maton.ai`) tried once when the current one
cannot be reached at all, the host that answered kept for the process, and explicit URLs used as given.

Two real sandboxes behind real sockets on 127.0.0.1 — one port closed (connection refused), one serving — stand
in for the hosts: a transport maps each host name to one of them and records where every request was sent, so
the settings are exactly the defaults. Every call goes through a real MCP client session."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client

from systeme_mcp.config import Settings
from systeme_mcp.runtime import open_runtime
from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.serve import running
from systeme_mcp.server import create_server

from .helpers import VirtualClock
from .processes import tls

pytestmark = pytest.mark.anyio

CURRENT, GATEWAY, CTRL = "api.maton.ai", "gateway.maton.ai", "ctrl.maton.ai"
KEY = "maton-test-key-0123456789"


class HostMap(httpx2.AsyncBaseTransport):
    """Sends each request to the loopback server its host name maps to (over real TCP), recording (host, path)."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts
        self.sent: list[tuple[str, str]] = []
        self.inner = httpx2.AsyncHTTPTransport(verify=tls())

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append((request.url.host, request.url.path))
        target = httpx2.URL(self.hosts[request.url.host])
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        return await self.inner.handle_async_request(request)

    def hosts_for(self, prefix: str) -> list[str]:
        return [host for host, path in self.sent if path.startswith(prefix)]

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def closed_port() -> str:
    """A loopback address nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def current() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(rate_limit=None, membership_delay=0.0)
    with running(sb) as base:
        yield sb, base


@pytest.fixture
def legacy() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(rate_limit=None, membership_delay=0.0, seed=1)
    with running(sb) as base:
        yield sb, base


@asynccontextmanager
async def session(settings: Settings, transport: HostMap) -> AsyncIterator[Client]:
    """A real MCP client session on a server whose client reaches the hosts through `transport`."""
    clock = VirtualClock()
    async with (
        open_runtime(settings, transport=transport, sleep=clock.sleep, clock=clock) as runtime,
        Client(create_server(runtime), cache=None) as client,
    ):
        yield client


def gateway_settings(**explicit: Any) -> Settings:
    return Settings(backend="gateway", maton_api_key=KEY, max_attempts=2, **explicit)


def paths(sb: Sandbox) -> list[str]:
    return [r.path for r in sb.requests]


async def test_the_hosts_maton_documents_today_are_used_and_kept(
    current: tuple[Sandbox, str], legacy: tuple[Sandbox, str], closed_port: str, caplog: pytest.LogCaptureFixture
) -> None:
    (now_sb, now_base), (old_sb, old_base) = current, legacy
    hosts = HostMap({CURRENT: now_base, GATEWAY: old_base, CTRL: old_base})
    caplog.set_level(logging.INFO, logger="systeme_mcp.hosts")
    async with session(gateway_settings(), hosts) as mcp:
        tags = await mcp.call_tool("list_tags", {"limit": 10})
        connections = await mcp.call_tool("list_connections", {})
        assert not tags.is_error and not connections.is_error
        assert tags.structured_content is not None and tags.structured_content["items"]
        assert "/systeme/api/tags" in paths(now_sb) and "/connections" in paths(now_sb)
        assert hosts.hosts_for("/systeme") == [CURRENT] and hosts.hosts_for("/connections") == [CURRENT]
        # kept: once it has answered, a refusal of the current host is not taken as a reason to change host
        hosts.hosts[CURRENT] = closed_port
        refused = await mcp.call_tool("create_tag", {"name": "kept-host"})
        assert refused.structured_content is not None
        assert refused.structured_content["outcome"] == "not_applied"
        assert refused.structured_content["error"]["kind"] == "no_answer"
    assert old_sb.requests == [], "the legacy host was used although the current one answered"
    assert set(hosts.hosts_for("/")) == {CURRENT}
    chosen = [r for r in caplog.records if r.name == "systeme_mcp.hosts"]
    assert [r.levelno for r in chosen] == [logging.INFO, logging.INFO]  # said once per API, as information


async def test_an_unreachable_current_host_falls_back_once_to_the_legacy_one(
    legacy: tuple[Sandbox, str], closed_port: str, caplog: pytest.LogCaptureFixture
) -> None:
    old_sb, old_base = legacy
    hosts = HostMap({CURRENT: closed_port, GATEWAY: old_base, CTRL: old_base})
    caplog.set_level(logging.INFO, logger="systeme_mcp.hosts")
    async with session(gateway_settings(), hosts) as mcp:
        first = await mcp.call_tool("list_tags", {"limit": 10})
        assert not first.is_error and first.structured_content is not None and first.structured_content["items"]
        created = await mcp.call_tool("create_tag", {"name": "via-legacy"})  # a POST too: it was never sent
        assert created.structured_content is not None and created.structured_content["outcome"] == "applied"
        again = await mcp.call_tool("list_tags", {"query": "via-legacy"})
        assert again.structured_content is not None
        assert [t["name"] for t in again.structured_content["items"]] == ["via-legacy"]
        connections = await mcp.call_tool("list_connections", {"status": "ACTIVE"})
        assert not connections.is_error and connections.structured_content is not None
        assert connections.structured_content["items"]
    # the current host was tried once per API; every later request went straight to the legacy host
    assert hosts.hosts_for("/systeme") == [CURRENT, GATEWAY, GATEWAY, GATEWAY]
    assert hosts.hosts_for("/connections") == [CURRENT, CTRL]
    assert paths(old_sb).count("/systeme/api/tags") == 3 and "/connections" in paths(old_sb)
    warnings = [r for r in caplog.records if r.name == "systeme_mcp.hosts"]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]  # once per API, not per request
    assert {GATEWAY in r.getMessage() or CTRL in r.getMessage() for r in warnings} == {True}


async def test_an_explicit_url_is_used_as_given_without_fallback(
    legacy: tuple[Sandbox, str], closed_port: str, caplog: pytest.LogCaptureFixture
) -> None:
    old_sb, old_base = legacy
    hosts = HostMap({CURRENT: closed_port, GATEWAY: old_base, CTRL: old_base})
    explicit = {"maton_gateway_url": f"https://{CURRENT}", "maton_ctrl_url": f"https://{CURRENT}"}
    caplog.set_level(logging.INFO, logger="systeme_mcp.hosts")
    async with session(gateway_settings(**explicit), hosts) as mcp:
        refused = await mcp.call_tool("create_tag", {"name": "explicit"})
        assert refused.structured_content is not None
        assert refused.structured_content["outcome"] == "not_applied"  # refused: provably never sent
        assert refused.structured_content["error"]["kind"] == "no_answer"
        listed = await mcp.call_tool("list_connections", {})
        assert listed.is_error
    assert old_sb.requests == [] and set(hosts.hosts_for("/")) == {CURRENT}
    assert hosts.hosts_for("/systeme") == [CURRENT, CURRENT]  # max_attempts=2: retried on the same host only
    assert not [r for r in caplog.records if r.name == "systeme_mcp.hosts"]


def test_the_defaults_are_the_hosts_maton_documents_today() -> None:
    from systeme_mcp.hosts import routes

    plain = routes(Settings(backend="gateway", maton_api_key=KEY), "gateway")
    assert plain["systeme"].bases == (f"https://{CURRENT}", f"https://{GATEWAY}")
    assert plain["maton"].bases == (f"https://{CURRENT}", f"https://{CTRL}")
    assert plain["systeme"].url(plain["systeme"].bases[0], "/api/tags") == f"https://{CURRENT}/systeme/api/tags"
    pinned = routes(gateway_settings(maton_gateway_url="https://gw.example.com"), "gateway")
    assert pinned["systeme"].bases == ("https://gw.example.com",) and len(pinned["maton"].bases) == 2
    direct = routes(Settings(backend="direct", systeme_api_key=KEY), "direct")
    assert direct["systeme"].bases == ("https://api.systeme.io",) and direct["systeme"].prefix == ""
