"""Resource subscriptions: which session watches which resource URI, and the one call that says resources changed.

One API for both protocol eras, `Subscriptions.notify_updated(*uris)` (on `Runtime.subscriptions`):
- 2025-11-25: a session names URIs with `resources/subscribe` / `resources/unsubscribe`; an update goes to that
  session alone, as `notifications/resources/updated` on its own channel (stdio: the pipe; Streamable HTTP: the
  session's GET stream, when the client keeps one open).
- 2026-07-28 has no such methods: a client opens `subscriptions/listen` with `resourceSubscriptions`, and updates
  ride that stream, stamped and filtered per stream by the SDK's `ListenHandler`; we publish on its bus.

What a write may change is declared per operation (`changes` in tool_specs: URIs with `{argument}` placeholders;
`systeme://contacts/*` is every watched contact) and announced by `calls.execute` after every write that may
have applied, whichever tool made it (declared, bulk, upsert). Other code with news (jobs) calls
`notify_updated` itself. Any URI may be watched, as the SDK's listen streams honour any: a record that does not
exist yet may come to. Bounded: URI length, URIs per session; delivery is best-effort and never fails a write.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import anyio
from mcp import MCPError, types
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated

from .catalog import Operation

log = logging.getLogger("systeme_mcp.subscriptions")

MAX_URI = 1_000  # characters of a watched URI
MAX_WATCHED = 100  # URIs one session (or one listen stream) may watch
SEND_TIMEOUT = 2.0  # seconds one notification may take to hand to a session before it is given up
EVERY = "/*"  # a `changes` URI ending so stands for every watched URI one path segment under it
_PLACEHOLDER = re.compile(r"{(\w+)}")


def changed_uris(op: Operation, args: dict[str, Any]) -> list[str]:
    """The resource URIs a write of `op` with `args` may have changed: its `changes`, placeholders filled in (a
    URI whose argument was not given is left out)."""
    found: list[str] = []
    for template in op.changes:
        names = _PLACEHOLDER.findall(template)
        if all(args.get(name) is not None for name in names):
            found.append(_PLACEHOLDER.sub(lambda m: str(args[m.group(1)]), template))
    return found


def _connection(session: Any) -> Any:
    """The connection a request came on (one per client session). The SDK (2.3) gives handlers a per-request
    `ServerSession` and keeps its `Connection` — which carries `exit_stack`, the per-connection teardown, and
    `send_resource_updated` on the session's own channel — in `_connection`."""
    return session._connection


def _checked(uris: list[str]) -> list[str]:
    if len(uris) > MAX_WATCHED:
        raise MCPError(types.INVALID_PARAMS, f"At most {MAX_WATCHED} resource subscriptions per session")
    if any(len(uri) > MAX_URI for uri in uris):
        raise MCPError(types.INVALID_PARAMS, f"A resource URI is at most {MAX_URI} characters")
    return uris


class Subscriptions:
    """Who watches what, for one server process (every session of it): legacy sessions by connection, modern
    listen streams by URI."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self.bus)
        self._sessions: dict[int, tuple[Any, set[str]]] = {}  # id(connection) → (connection, its URIs)
        self._listening: Counter[str] = Counter()  # URI → open listen streams watching it

    # ---------------------------------------------------------------- 2025-11-25: resources/(un)subscribe
    def subscribe(self, session: Any, uri: str) -> None:
        """Add `uri` to what the session of this request watches (forgotten when the session ends)."""
        connection = _connection(session)
        key = id(connection)
        if key not in self._sessions:
            self._sessions[key] = (connection, set())
            connection.exit_stack.callback(self._sessions.pop, key, None)
        watched = self._sessions[key][1]
        if uri not in watched:
            watched.add(_checked([*watched, uri])[-1])

    def unsubscribe(self, session: Any, uri: str) -> None:
        """Stop sending this session updates of `uri` (a URI it does not watch: nothing to do)."""
        entry = self._sessions.get(id(_connection(session)))
        if entry is not None:
            entry[1].discard(uri)

    # ---------------------------------------------------------------- 2026-07-28: subscriptions/listen
    async def listen(self, ctx: Any, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        """Serve one `subscriptions/listen` stream (the SDK's handler), counting the URIs it watches meanwhile."""
        uris = list(dict.fromkeys(_checked(params.notifications.resource_subscriptions or [])))
        self._listening.update(uris)
        try:
            return await self._listen(ctx, params)
        finally:
            for uri in uris:
                self._listening[uri] -= 1
                if self._listening[uri] <= 0:
                    del self._listening[uri]

    # ---------------------------------------------------------------- news
    def watched(self) -> set[str]:
        """Every URI some session or stream watches now."""
        legacy = {uri for _, uris in self._sessions.values() for uri in uris}
        return legacy | set(self._listening)

    def _expand(self, uris: tuple[str, ...]) -> list[str]:
        watched = self.watched()
        found: list[str] = []
        for uri in uris:
            if uri.endswith(EVERY):
                base = uri[: -len(EVERY) + 1]
                found += sorted(w for w in watched if w.startswith(base) and "/" not in w[len(base) :])
            elif uri in watched:
                found.append(uri)
        return list(dict.fromkeys(found))

    async def notify_updated(self, *uris: str) -> None:
        """Tell every session and stream watching one of `uris` that it changed (`…/*`: every watched URI one
        segment under it). For any task: a tool call, a job. Best-effort: never raises, never waits long."""
        for uri in self._expand(uris):
            for connection, watched in list(self._sessions.values()):
                if uri in watched:
                    await self._send(connection, uri)
            if self._listening[uri]:
                await self.bus.publish(ResourceUpdated(uri))

    @staticmethod
    async def _send(connection: Any, uri: str) -> None:
        try:
            with anyio.move_on_after(SEND_TIMEOUT):
                await connection.send_resource_updated(uri)
        except Exception:  # one session's broken channel must not fail the write that changed the resource
            log.debug("resource update for %s not delivered", uri, exc_info=True)
