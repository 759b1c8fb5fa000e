"""Serving the MCP server over stdio or Streamable HTTP (hardened: loopback default, Host/Origin checks,
bearer token required off loopback and checked in constant time, capped request bodies)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import sys
from typing import Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import Settings
from .server import serving

log = logging.getLogger("systeme_mcp")

MAX_BODY_BYTES = 1024 * 1024
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenGuard:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"missing or wrong bearer token"}'})
                return
        await self.app(scope, receive, send)


def announce(settings: Settings) -> None:
    """One line on stderr saying which backend is in use (never the key)."""
    backend = settings.resolved_backend
    if backend == "sandbox":
        log.warning(
            "systeme-mcp: no MATON_API_KEY or SYSTEME_API_KEY set; using the embedded Systeme.io sandbox "
            "(demo data; nothing leaves this machine)."
        )
    else:
        where = settings.maton_gateway_url if backend == "gateway" else settings.systeme_api_url
        log.warning("systeme-mcp: using the %s backend at %s", backend, where)


def http_app(server: Any, settings: Settings) -> ASGIApp:
    """The Streamable HTTP ASGI app at /mcp, with the transport's protections applied."""
    from mcp.server.transport_security import TransportSecuritySettings  # lazy: HTTP only (stdio start-up)

    host = settings.host
    token = settings.auth_token.get_secret_value() if settings.auth_token else ""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"refusing to serve HTTP on non-loopback address {host} without --auth-token / SYSTEME_AUTH_TOKEN"
        )
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host):
        hosts.append(f"{host}:*")
        origins += [f"http://{host}:*", f"https://{host}:*"]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    app: ASGIApp = server.streamable_http_app(
        transport_security=security, host=host, max_request_body_size=MAX_BODY_BYTES
    )
    return BearerTokenGuard(app, token) if token else app


async def _run(settings: Settings) -> None:
    announce(settings)
    async with serving(settings) as server:
        if settings.transport == "stdio":
            from mcp.server.stdio import stdio_server  # lazy: per transport

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
            return
        import uvicorn  # lazy: HTTP only (stdio start-up)

        app = http_app(server, settings)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", lifespan="on")
        print(f"systeme-mcp: Streamable HTTP on http://{settings.host}:{settings.port}/mcp", file=sys.stderr)
        await uvicorn.Server(config).serve()


def run(settings: Settings) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    anyio.run(_run, settings)
