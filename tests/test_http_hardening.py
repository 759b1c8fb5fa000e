"""The transports in a hostile world. HTTP (real uvicorn on 127.0.0.1, configured as `serve` configures it):
the bearer scheme in any letter case, the public host allow-list (Host and Origin) including behind a wildcard
bind, a deadline for request heads and a cap on their size, the SDK's session cap and idle reclaim, and
rate-limited logs of rejected requests. stdio (a real subprocess): every malformed line gets a JSON-RPC error
and the server keeps answering."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream
from starlette.types import Message, Receive, Scope, Send

from systeme_mcp import http_guard, transport
from systeme_mcp.http_guard import (
    LOG_BURST,
    REJECTION_LOGGERS,
    HeadDeadlineProtocol,
    RateLimitFilter,
    limit_rejection_logs,
    security_settings,
    uvicorn_config,
)
from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.session_limits import SessionsPerClient, _opens_session
from systeme_mcp.transport import http_app

from .conftest import sandbox_settings
from .helpers import ACCEPT, INIT
from .processes import tls

pytestmark = pytest.mark.anyio
TOKEN = "tok_hardening_tests_5b1f0c"
AUTH = {**ACCEPT, "Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def http_server(sandbox: Any, **overrides: Any) -> AsyncIterator[tuple[str, int]]:
    """The server as `serve` runs it (http_app + uvicorn_config) on a socket bound before uvicorn starts."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = int(sock.getsockname()[1])
        settings = sandbox_settings(port=port, **overrides)
        async with open_runtime(settings, sandbox=sandbox) as runtime:
            app = http_app(create_server(runtime), settings)
            server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                yield f"http://127.0.0.1:{port}/mcp", port
                server.should_exit = True


@pytest.fixture
def limited_logs() -> Iterator[None]:
    limit_rejection_logs()
    limit_rejection_logs()  # idempotent
    yield
    for name in REJECTION_LOGGERS:
        logger = logging.getLogger(name)
        for found in [f for f in logger.filters if isinstance(f, RateLimitFilter)]:
            logger.removeFilter(found)


# ---------------------------------------------------------------------------------------------- bearer token


async def test_the_bearer_scheme_is_case_insensitive_and_the_token_exact(sandbox: Any) -> None:
    async with http_server(sandbox, auth_token=TOKEN) as (url, _), httpx2.AsyncClient(verify=tls()) as http:
        for value in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN}"):
            answer = await http.post(url, json=INIT, headers={**ACCEPT, "Authorization": value})
            assert answer.status_code == 200, value
        for value in ("", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN.upper()}", f"Bearer {TOKEN}x", TOKEN):
            answer = await http.post(url, json=INIT, headers={**ACCEPT, "Authorization": value})
            assert answer.status_code == 401, value
            assert answer.headers["www-authenticate"] == "Bearer"
        twice = [*ACCEPT.items(), ("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer nope")]
        assert (await http.post(url, json=INIT, headers=twice)).status_code == 401


# ---------------------------------------------------------------------------------------------- host allow-list


async def test_a_wildcard_bind_accepts_the_named_public_host(sandbox: Any) -> None:
    overrides = {"host": "0.0.0.0", "auth_token": TOKEN, "allowed_hosts": ["mcp.example.com"]}
    async with http_server(sandbox, **overrides) as (url, port), httpx2.AsyncClient(verify=tls()) as http:

        async def status(**headers: str) -> int:
            return (await http.post(url, json=INIT, headers={**AUTH, **headers})).status_code

        assert await status(Host="mcp.example.com") == 200
        assert await status(Host="mcp.example.com:443", Origin="https://mcp.example.com") == 200
        assert await status(Host=f"127.0.0.1:{port}") == 200
        assert await status(Host="evil.example") == 421
        assert await status(Host=f"0.0.0.0:{port}") == 421
        assert await status(Host="mcp.example.com", Origin="https://evil.example") == 403


async def test_a_wildcard_bind_without_allowed_hosts_warns_and_serves_loopback(
    sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="systeme_mcp"):
        async with (
            http_server(sandbox, host="0.0.0.0", auth_token=TOKEN) as (url, _),
            httpx2.AsyncClient(verify=tls()) as http,
        ):
            assert (await http.post(url, json=INIT, headers=AUTH)).status_code == 200
    assert any("--allowed-hosts" in r.getMessage() for r in caplog.records)


def test_the_allow_list_names_real_hosts_only() -> None:
    wildcard = security_settings("0.0.0.0", [])
    assert not [h for h in wildcard.allowed_hosts if h.startswith("0.0.0.0")]
    public = security_settings("::", ["mcp.example.com", "api.example.org:8443"])
    assert {"mcp.example.com", "mcp.example.com:*", "api.example.org:8443"} <= set(public.allowed_hosts)
    assert "api.example.org:8443:*" not in public.allowed_hosts
    assert {"https://mcp.example.com", "https://api.example.org:8443"} <= set(public.allowed_origins)
    specific = security_settings("192.0.2.7", [])
    assert "192.0.2.7:*" in specific.allowed_hosts and "http://192.0.2.7:*" in specific.allowed_origins
    assert "[2001:db8::1]:*" in security_settings("2001:db8::1", []).allowed_hosts


# ---------------------------------------------------------------------------------------------- connection limits


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    pass


def test_uvicorn_runs_with_limits() -> None:
    config = uvicorn_config(_nothing, "127.0.0.1", 0)
    assert config.http is HeadDeadlineProtocol and config.ws == "none"
    assert config.timeout_keep_alive == http_guard.KEEP_ALIVE_TIMEOUT
    assert config.h11_max_incomplete_event_size == http_guard.MAX_HEADER_BYTES
    assert config.limit_concurrency == http_guard.MAX_CONNECTIONS > 2 * http_guard.MAX_SESSIONS


async def _closed_by_server(stream: ByteStream) -> bool:
    try:
        while await stream.receive():
            pass
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return True
    return False


async def test_a_slow_or_silent_connection_is_closed(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_guard, "HEADER_TIMEOUT", 0.2)
    async with http_server(sandbox) as (_, port):
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", port) as silent:
                assert await _closed_by_server(silent)
            async with await anyio.connect_tcp("127.0.0.1", port) as slow:
                await slow.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
                assert await _closed_by_server(slow)
        async with httpx2.AsyncClient(verify=tls()) as http:  # a prompt client is unaffected
            assert (await http.post(f"http://127.0.0.1:{port}/mcp", json=INIT, headers=ACCEPT)).status_code == 200


async def test_an_oversized_request_head_is_refused(sandbox: Any) -> None:
    async with http_server(sandbox) as (_, port), await anyio.connect_tcp("127.0.0.1", port) as stream:
        with anyio.fail_after(10):
            await stream.send(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (20 * 1024))
            assert (await stream.receive()).startswith(b"HTTP/1.1 400")


async def test_legacy_sessions_are_capped(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_guard, "MAX_SESSIONS", 2)
    async with http_server(sandbox) as (url, _), httpx2.AsyncClient(verify=tls()) as http:
        opened = [await http.post(url, json=INIT, headers=ACCEPT) for _ in range(3)]
        assert [a.status_code for a in opened] == [200, 200, 503]


async def test_one_client_cannot_take_every_session(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "PER_CLIENT_SESSIONS", 2)
    async with http_server(sandbox) as (url, _), httpx2.AsyncClient(verify=tls()) as http:
        opened = [await http.post(url, json=INIT, headers=ACCEPT) for _ in range(3)]
        assert [a.status_code for a in opened] == [200, 200, 503]
        assert opened[2].json()["error"]["code"] == -32000
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        session = opened[0].headers["mcp-session-id"]
        assert (await http.post(url, json=ping, headers={**ACCEPT, "Mcp-Session-Id": session})).status_code == 200
        assert (await http.delete(url, headers={**ACCEPT, "Mcp-Session-Id": session})).status_code < 300
        assert (await http.post(url, json=INIT, headers=ACCEPT)).status_code == 200  # a slot was freed


async def test_the_per_client_cap_is_a_setting(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEME_SESSIONS_PER_CLIENT", "3")
    async with http_server(sandbox) as (url, _), httpx2.AsyncClient(verify=tls()) as http:
        opened = [await http.post(url, json=INIT, headers=ACCEPT) for _ in range(4)]
        assert [a.status_code for a in opened] == [200, 200, 200, 503]


async def test_a_burst_of_concurrent_opens_gets_no_more_than_the_cap(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "PER_CLIENT_SESSIONS", 2)
    statuses: list[int] = []
    async with http_server(sandbox) as (url, _), httpx2.AsyncClient(verify=tls()) as http:

        async def open_one() -> None:
            statuses.append((await http.post(url, json=INIT, headers=ACCEPT)).status_code)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(open_one)
    assert sorted(statuses) == [200, 200, 503, 503, 503, 503]


def test_a_clients_idle_sessions_stop_counting() -> None:
    now = [0.0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    limits = SessionsPerClient(app, idle=10.0, limit=1, clock=lambda: now[0])
    limits._live["10.0.0.1"] = {"a": 0.0}
    assert limits.held("10.0.0.1") == 1
    now[0] = 11.0
    assert limits.held("10.0.0.1") == 0


async def test_what_the_per_client_cap_remembers_is_bounded_by_the_live_sessions() -> None:
    """Every address ever seen used to keep an entry: a public server would grow without end."""
    now, opened = [0.0], [0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = []
        if scope["path"] == "/open":
            opened[0] += 1
            headers = [(b"mcp-session-id", f"s{opened[0]}".encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    limits = SessionsPerClient(app, idle=10.0, limit=2, clock=lambda: now[0])

    async def request(address: str, path: str, method: str = "POST", sid: str = "") -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize" if path == "/open" else "tools/list"})
        headers = [(b"mcp-session-id", sid.encode())] if sid else []
        scope = {"type": "http", "method": method, "path": path, "headers": headers, "client": (address, 1)}

        async def receive() -> Message:
            return {"type": "http.request", "body": body.encode(), "more_body": False}

        async def send(message: Message) -> None:
            pass

        await limits(scope, receive, send)

    for i in range(30):  # stateless (2026-07-28) requests: nothing to remember
        await request(f"10.1.0.{i}", "/mcp")
    assert limits.clients() == 0
    for i in range(30):
        await request(f"10.2.0.{i}", "/open")
    assert limits.clients() == 30
    await request("10.2.0.0", "/mcp", "DELETE", sid="s1")  # the first session opened, closed by its client
    assert limits.clients() == 29
    now[0] = 11.0  # every other session idle past the SDK's keep time
    await request("10.3.0.1", "/mcp")
    assert limits.clients() == 0


class _Waiter(logging.Handler):
    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle, self.seen = needle, anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.seen.set()


async def test_an_idle_legacy_session_is_reclaimed(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_guard, "SESSION_IDLE_TIMEOUT", 0.3)
    manager_log = logging.getLogger("mcp.server.streamable_http_manager")
    waiter = _Waiter("idle timeout")
    manager_log.addHandler(waiter)
    level = manager_log.level
    manager_log.setLevel(logging.INFO)
    try:
        async with http_server(sandbox) as (url, _), httpx2.AsyncClient(verify=tls()) as http:
            opened = await http.post(url, json=INIT, headers=ACCEPT)
            session = opened.headers["mcp-session-id"]
            with anyio.fail_after(10):
                await waiter.seen.wait()  # the SDK's idle reclaim, no fixed sleep
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            headers = {**ACCEPT, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
            assert (await http.post(url, json=ping, headers=headers)).status_code == 404
    finally:
        manager_log.removeHandler(waiter)
        manager_log.setLevel(level)


# ---------------------------------------------------------------------------------------------- logs


def test_the_rate_limit_filter_drops_a_flood_and_says_so() -> None:
    now = [0.0]
    limit = RateLimitFilter(burst=3, window=60.0, clock=lambda: now[0])

    def record(n: int) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, __file__, 1, "rejected %d", (n,), None)

    passed = [limit.filter(record(n)) for n in range(10)]
    assert passed == [True] * 3 + [False] * 7
    now[0] = 61.0
    later = record(99)
    assert limit.filter(later) and later.getMessage() == "rejected 99 (7 similar lines suppressed)"
    assert [limit.filter(record(n)) for n in range(3)] == [True, True, False]


async def test_rejected_requests_are_logged_at_a_bounded_rate(
    sandbox: Any, limited_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        async with http_server(sandbox, auth_token=TOKEN) as (url, _), httpx2.AsyncClient(verify=tls()) as http:
            for _ in range(2 * LOG_BURST):
                assert (await http.post(url, json=INIT, headers=ACCEPT)).status_code == 401
                answer = await http.post(url, json=INIT, headers={**AUTH, "Host": "evil.example"})
                assert answer.status_code == 421
    by_logger = {name: [r for r in caplog.records if r.name == name] for name in REJECTION_LOGGERS}
    assert len(by_logger["systeme_mcp.http"]) == LOG_BURST
    assert 0 < len(by_logger["mcp.server.transport_security"]) <= LOG_BURST
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- stdio

BAD_LINES: list[tuple[bytes, int, Any]] = [  # (line, expected error code, expected id)
    (b"garbage", -32700, None),
    (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600, None),
    (b'{"jsonrpc":"2.0","id":"x","method":5}', -32600, "x"),
    (b'{"jsonrpc":"2.0","id":3,"method":"ping","params":"\\ud800"}', -32700, None),
    (b"\xed\xa0\x80 \xff", -32700, None),
    (b'{"jsonrpc":"1.0","id":4,"method":"ping"}', -32600, 4),
    (b'"just a string"', -32600, None),
    (b"{}", -32600, None),
    (b'{"jsonrpc":"2.0","id":true,"method":5}', -32600, None),
]


async def test_stdio_answers_every_malformed_line_and_keeps_serving() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEME_", "MATON_"))}
    async with await anyio.open_process([sys.executable, "-m", "systeme_mcp.cli"], env=env) as process:
        assert process.stdin is not None and process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)

        async def ask(line: bytes) -> dict[str, Any]:
            assert process.stdin is not None
            await process.stdin.send(line + b"\n")
            answer: dict[str, Any] = json.loads(await lines.receive_until(b"\n", 1 << 20))
            return answer

        with anyio.fail_after(60):
            for line, code, request_id in BAD_LINES:
                answer = await ask(line)
                assert answer["error"]["code"] == code and answer["id"] == request_id, (line, answer)
                assert answer["jsonrpc"] == "2.0" and "result" not in answer
            initialized = await ask(json.dumps(INIT).encode())
            assert initialized["id"] == 1 and "serverInfo" in initialized["result"]
            await process.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
            wrong = await ask(b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}')
            assert wrong["id"] == 7 and wrong["error"]["code"] < 0
            assert (await ask(b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":[1]}'))["id"] == 8
            assert await ask(b'{"jsonrpc":"2.0","id":9,"method":"ping"}') == {"jsonrpc": "2.0", "id": 9, "result": {}}
            # a lone-surrogate escape is legal JSON: the call is answered (with U+FFFD), not refused
            call = b'{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"list_tags","arguments":'
            answered = await ask(call + b'{"query":"vip\\ud800"}}}')
            assert answered["id"] == 10 and "result" in answered, answered
            await process.stdin.aclose()
            assert await process.wait() == 0


def test_an_initialize_is_seen_however_it_is_encoded() -> None:
    """The per-client cap reads a body as the SDK does (json.loads): skipping the parse of a body that cannot name
    `initialize` must not let an escaped or UTF-16/32 one through uncounted."""
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
    escaped = init.replace('"method"', '"m\\u0065thod"').replace('"initialize"', '"\\u0069nitialize"')
    assert json.loads(escaped)["method"] == "initialize"
    for body in (init.encode(), escaped.encode(), init.encode("utf-16"), init.encode("utf-32-le")):
        assert _opens_session(body), body
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_tag", "arguments": {}}}
    assert not _opens_session(json.dumps(call).encode())
    assert not _opens_session(json.dumps({**call, "params": {"name": "initialize\\"}}).encode())
