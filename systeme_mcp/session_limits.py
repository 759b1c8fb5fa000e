"""Per-client limits on 2025-11-25 (stateful) HTTP sessions, so one client cannot take every session slot.

The SDK caps sessions for the whole server (`max_sessions`) and closes idle ones; this middleware adds a cap
per client address: an `initialize` that would open one more session for a client already holding
`PER_CLIENT_SESSIONS` gets a 503 JSON-RPC error, and nothing reaches the server. A session counts from the
answer that hands out its `Mcp-Session-Id` until it is deleted or has been idle as long as the SDK keeps it.
(2026-07-28 requests are stateless: they open no session and are never counted.) What it remembers is bounded
by the sessions alive now: clients whose sessions all ended or idled out are swept, at most once per `idle`
period, so a public server seeing ever new addresses does not grow without end.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PER_CLIENT_SESSIONS = 20  # sessions one client address may hold at once
MAX_PEEKED_BODY = 1024 * 1024  # bytes of a session-less POST read to see whether it opens a session

log = logging.getLogger("systeme_mcp.http")


class SessionsPerClient:
    """ASGI middleware: at most `limit` live sessions per client address (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        idle: float,
        limit: int = PER_CLIENT_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.idle, self.limit, self.clock = app, idle, limit, clock
        self._live: dict[str, dict[str, float]] = {}  # client address → session id → last request
        self._opening: dict[str, int] = {}  # client address → session-opening requests being answered now
        self._next_sweep = clock() + idle

    def clients(self) -> int:
        """How many client addresses it keeps anything for."""
        return len(self._live.keys() | self._opening.keys())

    def _sweep(self, now: float) -> None:
        """Forget idle sessions and, with them, clients left with none."""
        self._next_sweep = now + self.idle
        for client in list(self._live):
            if not self.held(client):
                del self._live[client]

    def held(self, client: str) -> int:
        """Live sessions of `client` now (idle ones dropped)."""
        sessions = self._live.get(client, {})
        now = self.clock()
        for sid in [s for s, seen in sessions.items() if now - seen > self.idle]:
            del sessions[sid]
        return len(sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "?"
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        sid = headers.get(b"mcp-session-id", b"").decode("latin-1")
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        if sid:
            known = self._live.get(client)
            if known is not None and scope["method"] == "DELETE":
                known.pop(sid, None)
                if not known:
                    del self._live[client]
            elif known is not None and sid in known:
                known[sid] = now
            await self.app(scope, receive, send)
            return
        opening = False
        if scope["method"] == "POST":
            body, receive = await _peek(receive)
            opening = _opens_session(body)
            # opens still being answered count too, or a burst of concurrent initializes would all get through
            if opening and self.held(client) + self._opening.get(client, 0) >= self.limit:
                log.warning("refused a new session for %s: it already holds %d", client, self.limit)
                await _too_many(send, self.limit)
                return

        pending = [opening]  # this request holds an opening slot until its session is known (or it ends)

        def settle() -> None:
            if pending[0]:
                pending[0] = False
                self._opening[client] -= 1
                if not self._opening[client]:
                    del self._opening[client]

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = dict((k.lower(), v) for k, v in message.get("headers") or []).get(b"mcp-session-id")
                if given:
                    self._live.setdefault(client, {})[given.decode("latin-1")] = self.clock()
                settle()
            await send(message)

        if opening:
            self._opening[client] = self._opening.get(client, 0) + 1
        try:
            await self.app(scope, receive, noting)
        finally:
            settle()


async def _peek(receive: Receive) -> tuple[bytes, Receive]:
    """The request body (up to MAX_PEEKED_BODY) and a `receive` that replays it to the app."""
    chunks: list[Message] = []
    size = 0
    while True:
        message = await receive()
        chunks.append(message)
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body") or size > MAX_PEEKED_BODY:
            break
    body = b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")

    async def replay() -> Message:
        return chunks.pop(0) if chunks else await receive()

    return body, replay


def _opens_session(body: bytes) -> bool:
    """Whether `body` is an `initialize`, as the SDK reads it (`json.loads`: UTF-8, -16 or -32, escapes)."""
    if b"initialize" not in body and b"\\" not in body and b"\x00" not in body:
        return False  # it cannot name the method, not even escaped or in UTF-16/32: nothing to parse
    try:
        message: Any = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("method") == "initialize"


async def _too_many(send: Send, limit: int) -> None:
    error = {"code": -32000, "message": f"Too many open sessions for this client (at most {limit}); close one"}
    payload = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})
