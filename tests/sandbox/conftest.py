"""Fixtures for the sandbox suite: a fresh Sandbox per test, reached in-process or over real HTTP.

`client` is parametrized: `inprocess` goes through `sb.transport()`; `http` goes through uvicorn on a free
loopback port (one server for the session, in front of a swappable app, so every test still gets a fresh
sandbox).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.serve import running

from .sandbox_testkit import KEY


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Swap:
    """An ASGI app forwarding to the current test's sandbox."""

    def __init__(self) -> None:
        self.current: Sandbox | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        assert self.current is not None
        await self.current.app(scope, receive, send)


@pytest.fixture(scope="session")
def tls() -> ssl.SSLContext:
    """The default verifying TLS context, built once: an httpx2 client builds one per client otherwise (loading
    the CA bundle, ~30 ms each), although the loopback server speaks plain HTTP."""
    return ssl.create_default_context()


@pytest.fixture(scope="session")
def http_server() -> Iterator[tuple[Swap, str]]:
    swap = Swap()
    with running(swap) as base:
        yield swap, base


@pytest.fixture
def sb() -> Sandbox:
    """A fresh sandbox: no rate limit, memberships visible at once."""
    return Sandbox(rate_limit=None, membership_delay=0.0)


@pytest.fixture(params=["inprocess", "http"])
async def client(request: pytest.FixtureRequest, sb: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    """An httpx2 client on `sb` with a valid X-API-Key, in-process or over loopback HTTP."""
    if request.param == "inprocess":
        async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
            yield c
        return
    swap, base = request.getfixturevalue("http_server")
    swap.current = sb
    async with httpx2.AsyncClient(base_url=base, headers=KEY, timeout=5.0, verify=request.getfixturevalue("tls")) as c:
        yield c


@pytest.fixture
async def local(sb: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    """An in-process client on `sb` only (for transport-level behaviour)."""
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        yield c
