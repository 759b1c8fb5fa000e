"""Serving the MCP server over stdio or Streamable HTTP.

stdio: every line the SDK cannot read (not JSON, not a JSON-RPC 2.0 message, a batch) gets a JSON-RPC error
instead of silence. HTTP (the protections are in http_guard.py): loopback by default, Host/Origin checks,
a bearer token required off loopback and checked in constant time, capped request heads and bodies, deadlines
on slow or idle connections, a cap on sessions, and rate-limited logs of rejected requests."""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
from types import TracebackType
from typing import Any, Protocol, cast

import anyio
from mcp import types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from starlette.types import ASGIApp

from .config import MIN_SECRET_CHARS, Settings
from .runtime import open_runtime
from .server import create_server, serving
from .session_limits import PER_CLIENT_SESSIONS, SessionsPerClient
from .upstream import valid_text

log = logging.getLogger("systeme_mcp")


class _Receiver(Protocol):
    async def receive(self) -> SessionMessage | Exception: ...
    async def aclose(self) -> None: ...


class _Sender(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


def rejection(exc: Exception) -> types.JSONRPCError:
    """The JSON-RPC error for a line the SDK could not read (`exc` is what it passed on instead of a message):
    -32700 when it is not JSON, else -32600, with the request's id when it has a usable one."""
    problems = exc.errors() if isinstance(exc, ValidationError) else []
    if not problems or any(p["type"] == "json_invalid" for p in problems):
        error = types.ErrorData(code=types.PARSE_ERROR, message="Parse error: the line is not valid JSON")
        return types.JSONRPCError(jsonrpc="2.0", id=None, error=error)
    # the union's per-member errors carry the whole message as `input` where a top-level field is missing
    whole = [p["input"] for p in problems if len(p["loc"]) == 1 or (p["type"] == "missing" and len(p["loc"]) == 2)]
    message = whole[0] if whole else None
    given = message.get("id") if isinstance(message, dict) else None
    request_id = given if isinstance(given, str | int) and not isinstance(given, bool) else None
    why = "a batch (unsupported: one message per line)" if isinstance(message, list) else "not a JSON-RPC 2.0 message"
    error = types.ErrorData(code=types.INVALID_REQUEST, message=f"Invalid request: {why}")
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)


def surrogates_replaced(exc: Exception) -> SessionMessage | None:
    """The message of a line the SDK refused only for a lone-surrogate escape (`"\\ud800"`, legal JSON that
    pydantic's parser rejects), with each lone surrogate made U+FFFD; None for any other unreadable line."""
    problems = exc.errors() if isinstance(exc, ValidationError) else []
    line = problems[0].get("input") if len(problems) == 1 and problems[0]["type"] == "json_invalid" else None
    if not isinstance(line, str) or "\\ud" not in line.lower() or len(line) > MAX_RECOVERED_LINE:
        return None
    try:
        repaired = json.dumps(valid_text(json.loads(line)), ensure_ascii=False)
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(repaired, by_name=False))
    except (ValueError, ValidationError):
        return None


MAX_RECOVERED_LINE = 1024 * 1024  # characters: larger unreadable lines are refused, not re-parsed


class AnswerMalformedLines:
    """The stdio read stream without the SDK's unreadable lines: it passes each one on as an exception, which the
    server drops, so a client would wait for ever for an answer. Each is answered here (`rejection`), as the
    HTTP transport answers a bad body, and never reaches the server."""

    def __init__(self, inner: _Receiver, write: _Sender) -> None:
        self._inner, self._write = inner, write

    @property
    def last_context(self) -> Any:  # the sender's contextvars, which the server restores per message
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            recovered = surrogates_replaced(item)
            if recovered is not None:
                return recovered
            await self._write.send(SessionMessage(rejection(item)))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> AnswerMalformedLines:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> AnswerMalformedLines:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


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
    for name in settings.short_secrets():  # the name only: never the value, nor its length
        log.warning(
            "systeme-mcp: %s is shorter than %d characters: it looks too short to be a real secret, so it is not "
            "redacted from messages",
            name,
            MIN_SECRET_CHARS,
        )


def http_app(server: Any, settings: Settings, tenants: Any = None) -> ASGIApp:
    """The Streamable HTTP ASGI app at /mcp, with the transport's protections applied; per-request tenancy
    needs the runtime's `tenants` (tenancy.Tenants): each request is then authenticated by its tenant's key."""
    from . import http_guard as guard  # lazy: HTTP only (stdio start-up need not load uvicorn)

    host = settings.host
    token = settings.auth_token.get_secret_value() if settings.auth_token else ""
    if (settings.tenancy == "per-request") != (tenants is not None):
        raise ValueError("SYSTEME_TENANCY=per-request serves HTTP with the runtime's tenants, and only then")
    if not guard.is_loopback(host) and not token and tenants is None:  # a tenant's key authenticates its requests
        raise ValueError(
            f"refusing to serve HTTP on non-loopback address {host} without --auth-token / SYSTEME_AUTH_TOKEN"
        )
    if guard.is_unspecified(host) and not settings.allowed_hosts:
        log.warning(
            "systeme-mcp: listening on every interface (%s) with no --allowed-hosts / SYSTEME_ALLOWED_HOSTS: only "
            "requests addressed to localhost, 127.0.0.1 or [::1] are accepted; name the host clients use",
            host or "*",
        )
    app: ASGIApp = server.streamable_http_app(
        transport_security=guard.security_settings(host, settings.allowed_hosts),
        host=host,
        max_request_body_size=guard.MAX_BODY_BYTES,
        session_idle_timeout=guard.SESSION_IDLE_TIMEOUT,
        max_sessions=guard.MAX_SESSIONS,
    )
    limit = settings.sessions_per_client or PER_CLIENT_SESSIONS
    app = SessionsPerClient(app, idle=guard.SESSION_IDLE_TIMEOUT, limit=limit)
    if tenants is not None:
        from .tenancy import TenantGuard  # lazy, as http_guard: HTTP only

        return TenantGuard(app, tenants)
    return guard.BearerTokenGuard(app, token) if token else app


def bound_socket(host: str, port: int) -> socket.socket:
    """The HTTP socket, bound before anything says where the server is: a busy port, a host that is not this
    machine's or a port it may not use stops start-up with a message naming them. It listens only once uvicorn
    serves it, after the app's own checks (a token off loopback) have passed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":  # there SO_REUSEADDR would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = f"port {port} is already in use on {host} (another server?); stop it or choose another port"
        else:
            why = f"{exc.strerror or exc}"
        where = "--host / --port, SYSTEME_HOST / SYSTEME_PORT"
        raise ValueError(f"cannot serve HTTP on {host}:{port}: {why} ({where})") from None
    sock.setblocking(False)
    return sock


async def _run(settings: Settings) -> None:
    announce(settings)
    if settings.transport == "stdio":
        from mcp.server.stdio import stdio_server  # lazy: per transport

        from .stdin_lines import StdinLines, claimed_stdin  # lazy: stdio only

        async with serving(settings) as server:
            with claimed_stdin() as fd:
                async with stdio_server(stdin=cast(Any, StdinLines(fd))) as (read, write):
                    await server.run(AnswerMalformedLines(read, write), write, server.create_initialization_options())
        return
    import uvicorn  # lazy: HTTP only (stdio start-up)

    from . import http_guard  # lazy: HTTP only (stdio start-up)

    with bound_socket(settings.host, settings.port) as sock:
        async with open_runtime(settings) as runtime:
            app = http_app(create_server(runtime), settings, runtime.tenants)
            config = http_guard.uvicorn_config(app, settings.host, settings.port)
            http_guard.limit_rejection_logs()
            url = f"http://{settings.host}:{sock.getsockname()[1]}/mcp"
            print(f"systeme-mcp: Streamable HTTP on {url}", file=sys.stderr, flush=True)
            await uvicorn.Server(config).serve(sockets=[sock])


def run(settings: Settings) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    anyio.run(_run, settings)
