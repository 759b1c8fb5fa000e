"""Per-request tenancy (SYSTEME_TENANCY=per-request, Streamable HTTP only): each HTTP request brings its tenant's
upstream key, and everything that touches the account is that tenant's own.

- The credential: `Authorization: Bearer <Maton API key>` (and an optional `Maton-Connection: <id>`) for the
  gateway backend, `X-Systeme-Api-Key: <key>` for the direct one. It IS the request's authentication (the
  server's own SYSTEME_AUTH_TOKEN would need the same header, so that mode refuses it): a request without one
  is answered 401, with a `WWW-Authenticate` naming the header, before any MCP processing (`TenantGuard`).
  Where it comes from is a `CredentialSource` (`credential_for(request)`): headers today; an OAuth 2.1
  resource server (a verified principal mapped to a stored credential) is another source, nothing else changes.
- The tenant id: HMAC-SHA256 of the credential under SYSTEME_TENANT_SECRET, a key of its own that never rotates
  (the state ring does: were the ids made with it, each rotation would orphan every tenant's jobs). It names the
  tenant's jobs in the store and binds its confirmations; the key itself is kept only in memory, in its client.
- Per tenant (`Tenants`): a `SystemeClient` of its own (its key, pacer and HTTP connection pool; its scrub knows
  its key; its rate budget named by the tenant id, and with the gateway its Maton bucket by `maton_id`, never by an
  unkeyed hash of the key), made on the tenant's first request and kept in a bounded LRU; one unused past `IDLE`
  seconds, or past `CAPACITY` tenants, is closed. A tenant in use (a request or a job of its own running) is never
  closed. Every tenant's governor shares the process's one Redis client (`jobstore_redis.connect`)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import SecretStr
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .client import SystemeClient
from .config import Settings

log = logging.getLogger("systeme_mcp.http")
CAPACITY = 256  # tenants whose clients are kept open at once
IDLE = 900.0  # seconds a tenant's client is kept open unused
SCOPE_KEY = "systeme_mcp.tenant"  # where TenantGuard leaves the request's Tenant in the ASGI scope
KEY_HEADER = {"gateway": "Authorization", "direct": "X-Systeme-Api-Key"}
CONNECTION_HEADER = "Maton-Connection"
SESSION_HEADER = b"mcp-session-id"
SESSIONS_KEPT = 4096  # session owners remembered, least recently used out (the SDK holds at most
# http_guard.MAX_SESSIONS open at once, so only a session idle through thousands of others' requests is forgotten)


@dataclass(frozen=True)
class Credential:
    """One tenant's upstream credential (never shown: its repr hides the key)."""

    key: SecretStr
    connection: str | None = None  # a Maton connection id (gateway only)


class CredentialSource(Protocol):
    """Where a request's credential comes from; `challenge` is the WWW-Authenticate of a request without one."""

    challenge: str

    def credential_for(self, request: HTTPConnection) -> Credential | None: ...


class HeaderCredentials:
    """The credential from the request's headers (see the module doc)."""

    def __init__(self, backend: Literal["gateway", "direct"]) -> None:
        self.backend = backend
        if backend == "gateway":
            self.challenge = (
                'Bearer realm="systeme-mcp", error="invalid_request", error_description="send your Maton API key: '
                f'Authorization: Bearer <key>, optionally {CONNECTION_HEADER}: <connection id>"'
            )
        else:
            header = KEY_HEADER["direct"]
            self.challenge = (
                f'ApiKey realm="systeme-mcp", header="{header}", error_description="send your Systeme.io API key: '
                f'{header}: <key>"'
            )

    def credential_for(self, request: HTTPConnection) -> Credential | None:
        given = request.headers.getlist(KEY_HEADER[self.backend])
        if len(given) != 1:
            return None
        key = given[0].strip()
        if self.backend == "direct":
            return Credential(SecretStr(key)) if key else None
        scheme, _, token = key.partition(" ")
        connections = request.headers.getlist(CONNECTION_HEADER)
        if scheme.lower() != "bearer" or not token.strip() or len(connections) > 1:
            return None
        connection = None
        if connections:
            try:
                connection = str(uuid.UUID(connections[0].strip()))
            except ValueError:
                return None
        return Credential(SecretStr(token.strip()), connection)


def tenant_id(secret: str, backend: str, credential: Credential) -> str:
    """The tenant's name: a keyed hash of its credential (without the server's secret it reveals nothing)."""
    material = "\x00".join([backend, credential.key.get_secret_value(), credential.connection or ""])
    return "t_" + hmac.new(secret.encode(), material.encode(), hashlib.sha256).hexdigest()[:32]


def maton_id(secret: str, credential: Credential) -> str:
    """The Maton account a gateway tenant spends the 10 req/s of: a keyed hash of its key alone (every connection
    of one Maton key shares it)."""
    return tenant_id(secret, "maton", Credential(credential.key))


@dataclass(eq=False)
class Tenant:
    id: str
    client: SystemeClient
    last_used: float
    holds: int = 0  # requests and jobs using the client now: it is not closed while any does


class Tenants:
    """The tenants' clients, made on first use and kept in a bounded LRU (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        make_client: Callable[[Settings, str, str | None], SystemeClient],
        *,
        capacity: int = CAPACITY,
        idle: float = IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.resolved_backend in ("gateway", "direct") and settings.tenant_secret is not None
        self.backend: Literal["gateway", "direct"] = "gateway" if settings.resolved_backend == "gateway" else "direct"
        self.source: CredentialSource = HeaderCredentials(self.backend)
        self._settings, self._secret = settings, settings.tenant_secret.get_secret_value()
        self._make, self._capacity, self._idle, self._clock = make_client, capacity, idle, clock
        self._live: OrderedDict[str, Tenant] = OrderedDict()

    def settings_for(self, credential: Credential) -> Settings:
        """The server's settings with the tenant's key in place of the process's (its client scrubs it)."""
        if self.backend == "direct":
            return self._settings.model_copy(update={"systeme_api_key": credential.key})
        return self._settings.model_copy(
            update={"maton_api_key": credential.key, "maton_connection": credential.connection}
        )

    async def enter(self, credential: Credential) -> Tenant:
        """The credential's tenant, held (`release` it after), its client made if it has none open."""
        name = tenant_id(self._secret, self.backend, credential)
        tenant = self._live.get(name)
        if tenant is None:
            maton = maton_id(self._secret, credential) if self.backend == "gateway" else None
            client = self._make(self.settings_for(credential), name, maton)
            tenant = self._live[name] = Tenant(name, client, self._clock())
        self._live.move_to_end(name)
        tenant.holds += 1
        await self._evict()
        return tenant

    def release(self, tenant: Tenant) -> None:
        tenant.holds -= 1
        tenant.last_used = self._clock()

    @contextmanager
    def held(self, tenant: Tenant) -> Iterator[Tenant]:
        """Hold `tenant` for the block (a job running on its client)."""
        tenant.holds += 1
        try:
            yield tenant
        finally:
            self.release(tenant)

    def get(self, name: str) -> Tenant | None:
        """The tenant of that id, if its client is open."""
        return self._live.get(name)

    def live(self) -> list[Tenant]:
        return list(self._live.values())

    async def _evict(self) -> None:
        now, over = self._clock(), len(self._live) - self._capacity
        for tenant in list(self._live.values()):  # least recently used first
            if tenant.holds == 0 and (over > 0 or now - tenant.last_used > self._idle):
                over -= 1
                del self._live[tenant.id]
                await tenant.client.aclose()

    async def aclose(self) -> None:
        while self._live:
            await self._live.popitem()[1].client.aclose()


def tenant_of(request: Any) -> Tenant | None:
    """The Tenant TenantGuard found for this HTTP request (the SDK's `ServerRequestContext.request`)."""
    scope = getattr(request, "scope", None)
    found = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return found if isinstance(found, Tenant) else None


def principal(ctx: Any) -> str | None:
    """Whom a confirmation (2026-07-28 requestState) is bound to: the request's tenant; another tenant's echo of it
    is refused by the SDK's RequestStateBoundary."""
    tenant = tenant_of(getattr(ctx, "request", None))
    return tenant.id if tenant is not None else None


class TenantGuard:
    """ASGI middleware: every HTTP request must carry a tenant credential; its Tenant is held while the request is
    served and left in the scope for the handlers. Without one: 401 and the source's challenge. A 2025-11-25
    session belongs to the tenant that opened it: another tenant's request naming it is answered 404, as an
    unknown session is."""

    def __init__(self, app: ASGIApp, tenants: Tenants) -> None:
        self.app, self.tenants = app, tenants
        self._sessions: OrderedDict[bytes, str] = OrderedDict()  # Mcp-Session-Id → the tenant that opened it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        credential = self.tenants.source.credential_for(HTTPConnection(scope)) if scope["type"] == "http" else None
        if credential is None:
            client = scope.get("client")
            log.warning("rejected a request from %s: no tenant credential", client[0] if client else "?")
            if scope["type"] != "http":
                await send({"type": "websocket.close", "code": 1008})
                return
            challenge = self.tenants.source.challenge.encode()
            headers = [(b"content-type", b"application/json"), (b"www-authenticate", challenge)]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"error":"missing or malformed tenant credential"}'})
            return
        session = dict(scope["headers"]).get(SESSION_HEADER)
        tenant = await self.tenants.enter(credential)
        try:
            # an owner no longer remembered (the least recently used of SESSIONS_KEPT) fails closed: the client
            # opens a new session, as after any 404, and no other tenant ever reaches the old one
            if session is not None and self._sessions.get(session) != tenant.id:
                await send(
                    {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"Session not found"})
                return
            if session is not None:
                self._sessions.move_to_end(session)

            async def noting(message: Message) -> None:  # the session this request opened is its tenant's
                if message["type"] == "http.response.start":
                    opened = dict(message.get("headers") or []).get(SESSION_HEADER)
                    if opened is not None and opened not in self._sessions:
                        self._sessions[opened] = tenant.id
                        while len(self._sessions) > SESSIONS_KEPT:
                            self._sessions.popitem(last=False)
                await send(message)

            await self.app({**scope, SCOPE_KEY: tenant}, receive, noting)
        finally:
            self.tenants.release(tenant)
