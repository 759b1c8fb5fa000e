"""The Maton side: the gateway in front of `/systeme/api/...` and the control API (`/connections`).

Gateway: `Authorization: Bearer <maton key>` (missing/invalid → 401), optional `Maton-Connection: <uuid>`
(unknown, other app or not ACTIVE → 400); without it the oldest ACTIVE systeme connection is used (none →
400). Then the request is served as the Systeme.io API serves it, errors passed through unchanged.
Control API: `GET /connections?app=&status=` → `{"connections": [...]}`, `POST /connections {"app", "method"?}` →
`{"connection": {...}}` (PENDING, with an authorization `url` on the sandbox itself: a GET on it makes the
connection ACTIVE), `GET /connections/{id}` → `{"connection": {...}}`, `DELETE /connections/{id}` → 200 `{}`.
Gateway/control errors: `{"error": {"code", "message"}}` (guessed shape).

Not modelled: OAuth scopes and token refresh (the 500s of expired connections), apps other than as names,
the gateway's 10 req/s account limit, Maton triggers, pagination of the connection list.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from . import errors
from .errors import GatewayError
from .routing import Call, Reply, Router
from .store import Connection, Store

ctrl = Router()
STATUSES = ("ACTIVE", "PENDING", "FAILED")
METHODS = ("API_KEY", "BASIC", "OAUTH1", "OAUTH2", "MCP")  # Maton's skill: `method` is optional on create
APP_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
CONNECT_PATH = "/__sandbox/connect"


def bearer(headers: dict[str, str], keys: frozenset[str] | None) -> None:
    """401 in the gateway's shape unless a valid Maton key is presented."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GatewayError(401, "UNAUTHORIZED", "Missing Maton API key: send Authorization: Bearer <MATON_API_KEY>.")
    if keys is not None and token.strip() not in keys:
        raise GatewayError(401, "UNAUTHORIZED", "Invalid Maton API key.")


def select_connection(store: Store, wanted: str | None, app: str = "systeme") -> Connection:
    """The connection the gateway will use, or its 400."""
    if wanted:
        conn = store.connections.get(wanted.strip())
        if conn is None or conn.app != app:
            raise GatewayError(
                400, "CONNECTION_NOT_FOUND", f"No {app} connection with id {wanted.strip()!r} was found."
            )
        if conn.status != "ACTIVE":
            raise GatewayError(400, "CONNECTION_NOT_ACTIVE", f"Connection {conn.id} is {conn.status}, not ACTIVE.")
        return conn
    active = [c for c in store.connections.values() if c.app == app and c.status == "ACTIVE"]
    if not active:
        raise GatewayError(
            400, "CONNECTION_NOT_FOUND", f"No active {app} connection: create one with POST /connections."
        )
    return min(active, key=lambda c: c.created_at)


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connection_json(conn: Connection, base_url: str) -> dict[str, Any]:
    return {
        "connection_id": conn.id,
        "status": conn.status,
        "creation_time": _time(conn.created_at),
        "last_updated_time": _time(conn.updated_at),
        "url": f"{base_url}{CONNECT_PATH}?session_token={conn.session_token}",
        "app": conn.app,
        "method": conn.method,
        "metadata": dict(conn.metadata),
    }


def _connection(call: Call) -> Connection:
    conn = call.store.connections.get(call.params["id"])
    if conn is None:
        raise GatewayError(404, "NOT_FOUND", f"Connection {call.params['id']} not found.")
    return conn


@ctrl.route("GET", "/connections")
def list_connections(call: Call) -> Reply:
    app, status = call.query.text("app"), call.query.text("status")
    rows = [
        connection_json(c, call.base_url)
        for c in sorted(call.store.connections.values(), key=lambda c: c.created_at)
        if (app is None or c.app == app) and (status is None or c.status == status.upper())
    ]
    return Reply(200, {"connections": rows})


@ctrl.route("POST", "/connections")
def create_connection(call: Call) -> Reply:
    try:
        body = call.body()
    except errors.Problem:
        raise GatewayError(400, "BAD_REQUEST", 'The body must be a JSON object such as {"app": "systeme"}.') from None
    app = body.data.get("app")
    if not isinstance(app, str) or not APP_RE.match(app):
        raise GatewayError(400, "BAD_REQUEST", "Field 'app' must name an app, e.g. \"systeme\".")
    method = body.data.get("method", "OAUTH2")
    if method not in METHODS:
        raise GatewayError(400, "BAD_REQUEST", f"Field 'method' must be one of {', '.join(METHODS)}.")
    now = call.env.clock()
    conn = Connection(str(uuid.uuid4()), app, "PENDING", now, now, secrets.token_urlsafe(16), method=method)
    call.store.connections[conn.id] = conn
    return Reply(200, {"connection": connection_json(conn, call.base_url)})


@ctrl.route("GET", "/connections/{id:str}")
def get_connection(call: Call) -> Reply:
    return Reply(200, {"connection": connection_json(_connection(call), call.base_url)})


@ctrl.route("DELETE", "/connections/{id:str}")
def delete_connection(call: Call) -> Reply:
    conn = _connection(call)
    del call.store.connections[conn.id]
    return Reply(200, {})


def authorize(store: Store, token: str | None, now: float) -> Connection | None:
    """Complete the OAuth walk: the connection whose authorization url was visited becomes ACTIVE."""
    for conn in store.connections.values():
        if token and secrets.compare_digest(conn.session_token, token):
            conn.status, conn.updated_at = "ACTIVE", now
            store.connections.touch(conn.id)
            return conn
    return None
