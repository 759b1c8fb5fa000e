"""In-process transport: the sandbox app behind `httpx2.ASGITransport`, with injected network faults
turned into the exceptions a client would see over a real network.

- `reset_before`, `reset_after` → `httpx2.RemoteProtocolError` ("Server disconnected without sending ...")
- `timeout`, `timeout_after`   → `httpx2.ReadTimeout` (raised at once: no waiting in tests)
- `refused`                    → `httpx2.ConnectError` (the request provably never reached the server)
"""

from __future__ import annotations

from typing import Any

import httpx2
from starlette.types import ASGIApp, Receive, Scope, Send

from .faults import InjectedFault


class _Marked:
    """Marks the scope as in-process so the app raises instead of stalling for timeouts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["sandbox.inprocess"] = True
        await self.app(scope, receive, send)


def network_error(kind: str, request: httpx2.Request) -> httpx2.TransportError:
    """The httpx2 exception a real network would give for fault `kind`."""
    if kind.startswith("timeout"):
        return httpx2.ReadTimeout("The read operation timed out", request=request)
    if kind == "refused":
        return httpx2.ConnectError("[Errno 111] Connection refused", request=request)
    return httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)


class SandboxTransport(httpx2.AsyncBaseTransport):
    """An `httpx2.AsyncBaseTransport` serving requests from the sandbox app in this process."""

    def __init__(self, app: ASGIApp, **kwargs: Any) -> None:
        self._inner = httpx2.ASGITransport(app=_Marked(app), **kwargs)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except InjectedFault as fault:
            raise network_error(fault.kind, request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()
