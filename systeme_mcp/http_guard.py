"""The Streamable HTTP transport's protections, apart from transport.py so that stdio never loads uvicorn: the
bearer-token guard, the Host/Origin allow-list (DNS rebinding), a deadline for each request's head (slowloris),
uvicorn's connection limits, the SDK's session cap and idle reclaim, and rate-limited logs of rejected requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY_BYTES = 1024 * 1024  # a request body beyond this gets 413 before it is parsed
MAX_HEADER_BYTES = 16 * 1024  # h11: a request head beyond this gets 400
HEADER_TIMEOUT = 10.0  # seconds a connection has to send a request's head, from connect or the previous answer
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection is kept open
MAX_CONNECTIONS = 256  # uvicorn answers 503 beyond this many open connections (or requests being served)
MAX_SESSIONS = 100  # 2025-11-25 sessions open at once; the SDK answers 503 to the opening request of one more
SESSION_IDLE_TIMEOUT = 600.0  # the SDK closes a 2025-11-25 session with no request in flight (nor GET stream) this long
LOG_BURST, LOG_WINDOW = 10, 60.0  # at most this many lines per window from each logger that reports rejections
REJECTION_LOGGERS = (
    "systeme_mcp.http",
    "mcp.server.transport_security",  # "Invalid Host header: ...", "Invalid Origin header: ..."
    "mcp.server.streamable_http",
    "mcp.server.streamable_http_manager",  # unknown session ids, the session cap
    "mcp.server._streamable_http_modern",
    "uvicorn.error",  # "Invalid HTTP request received.", "Exceeded concurrency limit."
)
LOOPBACK_NAMES = ("localhost",)

log = logging.getLogger("systeme_mcp.http")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host in LOOPBACK_NAMES or (ip is not None and ip.is_loopback)


def is_unspecified(host: str) -> bool:
    """A wildcard bind (0.0.0.0, ::): it names no host a client would put in its Host header."""
    ip = _ip(host)
    return not host or (ip is not None and ip.is_unspecified)


def _has_port(host: str) -> bool:
    return ":" in host and not host.endswith("]") and host.rsplit(":", 1)[1].isdigit()


def security_settings(bind: str, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """Host and Origin values accepted: the loopback names, `allowed_hosts` (the public names clients use) and
    the bind address when it is a specific one (a wildcard bind adds nothing: `0.0.0.0` is never a Host)."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    names = list(allowed_hosts)
    if not is_loopback(bind) and not is_unspecified(bind):
        ip = _ip(bind)
        names.append(f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else bind.lower())
    for name in names:
        patterns = [name] if _has_port(name) else [name, f"{name}:*"]
        hosts += patterns
        origins += [f"{scheme}://{pattern}" for pattern in patterns for scheme in ("https", "http")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


class BearerTokenGuard:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`, the scheme in any letter
    case; the token is compared in constant time (as SHA-256 digests: its length does not show either).
    WebSocket connections are refused; lifespan events pass."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._digest = hashlib.sha256(token.encode()).digest()

    def authorized(self, scope: Scope) -> bool:
        given = [value for name, value in scope.get("headers") or [] if name.lower() == b"authorization"]
        if len(given) != 1:
            return False
        scheme, _, token = given[0].strip().partition(b" ")
        digest = hashlib.sha256(token.strip()).digest()
        return hmac.compare_digest(digest, self._digest) and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and self.authorized(scope)):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        log.warning("rejected a request from %s: missing or wrong bearer token", client[0] if client else "?")
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"error":"missing or wrong bearer token"}'})


class RateLimitFilter(logging.Filter):
    """At most `burst` records per `window` seconds pass, so a flood of rejected requests cannot grow stderr
    without bound; the first record let through after some were dropped says how many."""

    def __init__(
        self, burst: int = LOG_BURST, window: float = LOG_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._burst, self._window, self._clock = burst, window, clock
        self._start, self._passed, self._dropped = -math.inf, 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if now - self._start >= self._window:
            self._start, self._passed = now, 0
        if self._passed >= self._burst:
            self._dropped += 1
            return False
        self._passed += 1
        if self._dropped:
            record.msg, record.args = f"{record.getMessage()} ({self._dropped} similar lines suppressed)", None
            self._dropped = 0
        return True


def limit_rejection_logs() -> None:
    """Rate-limit every logger that reports rejected requests (once per logger; idempotent)."""
    for name in REJECTION_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter())


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head: a connection that sends nothing, or its
    headers a byte at a time, is closed after HEADER_TIMEOUT seconds instead of holding a connection slot
    (uvicorn's keep-alive timer runs only between requests and stops at the first byte)."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(HEADER_TIMEOUT, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """uvicorn with the limits above (h11 only: the head deadline and size cap are h11's; no WebSocket)."""
    limits: dict[str, Any] = {
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": MAX_CONNECTIONS,
    }
    quiet: dict[str, Any] = {"log_level": "warning", "server_header": False, "ws": "none"}
    return uvicorn.Config(app, host=host, port=port, lifespan="on", http=HeadDeadlineProtocol, **limits, **quiet)
