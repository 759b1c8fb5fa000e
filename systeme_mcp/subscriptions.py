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

Per account: each session and listen stream is its account's (`Runtime.account` of the request that opened it:
per-request tenancy, its tenant's id), and news of an account reaches only its own, so a tenant watching another's
job URI (or `systeme://tags`) hears nothing of it — exactly as for a URI that names nothing, so not even whether
the job exists. Listen streams get a bus and handler per account (`_Listeners`), made with its first stream.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
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


@dataclass
class _Listeners:
    """One account's listen streams: a bus of their own, and the URIs they watch (how many streams each)."""

    bus: InMemorySubscriptionBus = field(default_factory=InMemorySubscriptionBus)
    uris: Counter[str] = field(default_factory=Counter)
    streams: int = 0

    def __post_init__(self) -> None:
        self.handler = ListenHandler(self.bus)


class Subscriptions:
    """Who watches what, for one server process (every session of it), per account: legacy sessions by
    connection, modern listen streams by URI."""

    def __init__(self) -> None:
        self._sessions: dict[int, tuple[Any, str, set[str]]] = {}  # id(connection) → (connection, account, URIs)
        self._listeners: dict[str, _Listeners] = {}  # account → its open listen streams

    # ---------------------------------------------------------------- 2025-11-25: resources/(un)subscribe
    def subscribe(self, session: Any, uri: str, account: str) -> None:
        """Add `uri` to what the session of this request (of `account`) watches (forgotten when it ends)."""
        connection = _connection(session)
        key = id(connection)
        if key not in self._sessions:
            self._sessions[key] = (connection, account, set())
            connection.exit_stack.callback(self._sessions.pop, key, None)
        watched = self._sessions[key][2]
        if uri not in watched:
            watched.add(_checked([*watched, uri])[-1])

    def unsubscribe(self, session: Any, uri: str) -> None:
        """Stop sending this session updates of `uri` (a URI it does not watch: nothing to do)."""
        entry = self._sessions.get(id(_connection(session)))
        if entry is not None:
            entry[2].discard(uri)

    # ---------------------------------------------------------------- 2026-07-28: subscriptions/listen
    async def listen(
        self, ctx: Any, params: types.SubscriptionsListenRequestParams, account: str
    ) -> types.SubscriptionsListenResult:
        """Serve one `subscriptions/listen` stream of `account` (the SDK's handler, on the account's bus), counting
        the URIs it watches meanwhile."""
        uris = list(dict.fromkeys(_checked(params.notifications.resource_subscriptions or [])))
        listeners = self._listeners.setdefault(account, _Listeners())
        listeners.streams += 1
        listeners.uris.update(uris)
        try:
            return await listeners.handler(ctx, params)
        finally:
            listeners.uris.subtract(uris)
            listeners.uris = +listeners.uris  # drops the URIs no stream watches any more
            listeners.streams -= 1
            if listeners.streams == 0:
                del self._listeners[account]

    # ---------------------------------------------------------------- news
    def watched(self, account: str | None = None) -> set[str]:
        """Every URI some session or stream of `account` (None: of any account) watches now."""
        legacy = {uri for _, owner, uris in self._sessions.values() if account in (None, owner) for uri in uris}
        streams = [listeners for owner, listeners in self._listeners.items() if account in (None, owner)]
        return legacy.union(*(listeners.uris for listeners in streams))

    def _expand(self, uris: tuple[str, ...], account: str) -> list[str]:
        watched = self.watched(account)
        found: list[str] = []
        for uri in uris:
            if uri.endswith(EVERY):
                base = uri[: -len(EVERY) + 1]
                found += sorted(w for w in watched if w.startswith(base) and "/" not in w[len(base) :])
            elif uri in watched:
                found.append(uri)
        return list(dict.fromkeys(found))

    async def notify_updated(self, *uris: str, account: str) -> None:
        """Tell every session and stream of `account` watching one of `uris` that it changed (`…/*`: every URI
        they watch one segment under it). For any task: a tool call, a job. Best-effort: never raises, never waits
        long."""
        for uri in self._expand(uris, account):
            for connection, owner, watched in list(self._sessions.values()):
                if owner == account and uri in watched:
                    await self._send(connection, uri)
            listeners = self._listeners.get(account)
            if listeners is not None and listeners.uris[uri]:
                await listeners.bus.publish(ResourceUpdated(uri))

    @staticmethod
    async def _send(connection: Any, uri: str) -> None:
        try:
            with anyio.move_on_after(SEND_TIMEOUT):
                await connection.send_resource_updated(uri)
        except Exception:  # one session's broken channel must not fail the write that changed the resource
            log.debug("resource update for %s not delivered", uri, exc_info=True)
