"""The server over its real transports: stdio in a subprocess, and Streamable HTTP on 127.0.0.1 with its
protections (Host/Origin checks, bearer token, refusal to bind off loopback without a token)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client, StdioServerParameters

from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.transport import http_app

from .conftest import sandbox_settings
from .helpers import ACCEPT, INIT, text
from .processes import tls

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http_server(sandbox: Any, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    token = getattr(request, "param", None)
    # bound and listening before uvicorn starts: early connections wait in the backlog, no readiness polling
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = int(sock.getsockname()[1])
        settings = sandbox_settings(port=port, auth_token=token)
        async with open_runtime(settings, sandbox=sandbox) as runtime:
            app = http_app(create_server(runtime), settings)
            server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                yield f"http://127.0.0.1:{port}/mcp"
                server.should_exit = True


async def test_stdio_server_lists_and_calls_tools() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MATON_API_KEY", "SYSTEME_API_KEY")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "systeme_mcp.cli"], env=env)
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            assert len(tools) >= 30  # the default toolsets
            result = await client.call_tool("list_tags", {"limit": 10})
            assert not result.is_error and result.structured_content, text(result)
            assert result.structured_content["items"] and all("name" in i for i in result.structured_content["items"])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_server_serves_both_protocol_eras(http_server: str, mode: str) -> None:
    async with Client(http_server, mode=mode) as client:
        result = await client.call_tool("list_courses", {})
        assert not result.is_error and result.structured_content and len(result.structured_content["items"]) == 3


async def test_http_rejects_a_foreign_origin_and_host(http_server: str) -> None:
    async with httpx2.AsyncClient(verify=tls()) as http:
        evil_origin = await http.post(http_server, json=INIT, headers={**ACCEPT, "Origin": "http://evil.example"})
        assert evil_origin.status_code == 403
        evil_host = await http.post(http_server, json=INIT, headers={**ACCEPT, "Host": "evil.example"})
        assert evil_host.status_code == 421
        fine = await http.post(http_server, json=INIT, headers={**ACCEPT, "Origin": "http://localhost:3000"})
        assert fine.status_code == 200


async def test_http_caps_the_request_body(http_server: str) -> None:
    big = {**INIT, "params": {**INIT["params"], "padding": "x" * (2 * 1024 * 1024)}}  # type: ignore[dict-item]
    async with httpx2.AsyncClient(verify=tls()) as http:
        answer = await http.post(http_server, json=big, headers=ACCEPT)
        assert answer.status_code == 413


@pytest.mark.parametrize("http_server", ["t0ken-for-tests"], indirect=True)
async def test_http_bearer_token_is_required_when_set(http_server: str) -> None:
    async with httpx2.AsyncClient(verify=tls()) as http:
        assert (await http.post(http_server, json=INIT, headers=ACCEPT)).status_code == 401
        wrong = {**ACCEPT, "Authorization": "Bearer nope"}
        assert (await http.post(http_server, json=INIT, headers=wrong)).status_code == 401
        right = {**ACCEPT, "Authorization": "Bearer t0ken-for-tests"}
        assert (await http.post(http_server, json=INIT, headers=right)).status_code == 200


async def test_binding_off_loopback_requires_a_token(sandbox: Any) -> None:
    settings = sandbox_settings(host="0.0.0.0")
    async with open_runtime(settings, sandbox=sandbox) as runtime:
        with pytest.raises(ValueError, match="without --auth-token"):
            http_app(create_server(runtime), settings)
