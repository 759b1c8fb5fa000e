"""The ASGI app: one dispatcher for the three path families plus the admin endpoints.

Per request: log it, draw a fault, authenticate (X-API-Key for `/api`, Maton Bearer for `/systeme/api` and
`/connections`), take a rate-limit token (Systeme families), cap the body (413), route (404/405), check the
media type (415), run the handler, save the rows it changed (with a state file), answer (problem+json on
errors, rate-limit headers on every Systeme answer), then send webhook deliveries. Any unexpected exception
becomes a bare problem+json 500.

Not modelled: HTTP/2, compression, CORS, keep-alive limits, `OPTIONS` preflight answers.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import admin, api_crm, api_marketing, api_school, api_webhooks, errors, gateway
from .errors import GatewayError, Problem
from .faults import APPLIED_FIRST, InjectedFault
from .routing import Call, Reply, Router, check_content_type
from .validation import Query

if TYPE_CHECKING:
    from . import Sandbox

log = logging.getLogger("systeme_mcp.sandbox")

API = Router()
for _module in (api_crm, api_school, api_webhooks, api_marketing):
    API.include(_module.router)

PROXY_HTML = (
    "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center><hr><center>nginx</center></body></html>"
)
MISSING_KEY = "Full authentication is required to access this resource."


@dataclass
class RequestRecord:
    """One request that reached the sandbox (faulted ones included)."""

    method: str
    path: str
    query: str
    family: str  # direct | gateway | ctrl | other
    at: float = field(default_factory=time.time)
    status: int | None = None  # None when the connection was dropped
    fault: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RequestLog(list[RequestRecord]):
    """The received requests, oldest first (a list; `clear()` empties it): the last `keep` (None: all)."""

    def __init__(self, keep: int | None = None) -> None:
        super().__init__()
        self.keep = keep

    def append(self, record: RequestRecord) -> None:
        super().append(record)
        if self.keep is not None and len(self) > self.keep:
            del self[0]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""


def _json_answer(status: int, body: Any, headers: dict[str, str], media: str) -> Answer:
    if body is None:
        return Answer(status, headers)
    if isinstance(body, str):
        return Answer(status, {**headers, "Content-Type": "text/html; charset=utf-8"}, body.encode())
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Answer(status, {**headers, "Content-Type": f"{media}; charset=utf-8"}, data)


def problem_answer(p: Problem, headers: dict[str, str]) -> Answer:
    media = "application/json" if p.bare else "application/problem+json"
    return _json_answer(p.status, p.body(), {**headers, **p.headers}, media)


def classify(path: str) -> str:
    if path.startswith("/__sandbox"):
        return "admin"
    if path == "/api" or path.startswith("/api/"):
        return "direct"
    if path == "/systeme" or path.startswith("/systeme/"):
        return "gateway"
    if path == "/connections" or path.startswith("/connections/"):
        return "ctrl"
    return "other"


class Dispatcher:
    """The raw ASGI callable behind `Sandbox.app`."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.admin = admin.build(sb)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sb = self.sb
        method, path = str(scope["method"]).upper(), str(scope["path"])
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        family = classify(path)
        record = RequestRecord(method, path, query, family)
        if family != "admin":
            sb.requests.append(record)
        inprocess = bool(scope.get("sandbox.inprocess"))
        kind = sb.faults.draw(method, path) if family in ("direct", "gateway", "ctrl") else None
        record.fault = kind
        plan = sb.faults.plan
        if kind == "slow" and plan is not None:
            await anyio.sleep(plan.slow_seconds)
        if kind in ("reset_before", "refused", "timeout"):
            await self._drop(send, kind, inprocess)
        if kind in ("500", "502", "503", "429"):
            answer = self._fault_answer(kind)
        else:
            answer = await self._answer(scope, family, method, path, query, headers, receive)
        if kind in APPLIED_FIRST:
            record.status = None
            await sb.webhooks.flush()
            await self._drop(send, str(kind), inprocess)
        record.status = answer.status
        await send({"type": "http.response.start", "status": answer.status, "headers": self._raw_headers(answer)})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})
        await sb.webhooks.flush()

    @staticmethod
    def _raw_headers(answer: Answer) -> list[tuple[bytes, bytes]]:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        raw.append((b"content-length", str(len(answer.body)).encode()))
        return raw

    async def _drop(self, send: Send, kind: str, inprocess: bool) -> None:
        """Lose the connection (over HTTP: after stalling for timeouts); in-process the transport maps it."""
        plan = self.sb.faults.plan
        if kind.startswith("timeout") and not inprocess and plan is not None:
            await anyio.sleep(plan.timeout_seconds)
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"64")]})
        raise InjectedFault(kind)

    def _fault_answer(self, kind: str) -> Answer:
        plan = self.sb.faults.plan
        retry = str(plan.retry_after if plan else 1)
        if kind == "500":
            return problem_answer(Problem(500, "Internal Server Error"), {})
        if kind == "429":
            limit = self.sb.rate_limit
            headers = {"Retry-After": retry, "X-RateLimit-Remaining": "0", "X-RateLimit-Refill": retry}
            headers["X-RateLimit-Limit"] = str(limit.capacity if limit else 100)
            return problem_answer(Problem(429, "Too Many Requests"), headers)
        title = "502 Bad Gateway" if kind == "502" else "503 Service Temporarily Unavailable"
        headers = {"Content-Type": "text/html"} | ({"Retry-After": retry} if kind == "503" else {})
        return Answer(int(kind), headers, PROXY_HTML.format(title).encode())

    async def _answer(
        self,
        scope: Scope,
        family: str,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        receive: Receive,
    ) -> Answer:
        sb = self.sb
        limit_headers: dict[str, str] = {}
        try:
            if family == "admin":
                reply = await self._route(
                    self.admin, scope, method, path.removeprefix("/__sandbox"), path, query, headers, receive
                )
                return _json_answer(reply.status, reply.body, reply.headers, "application/json")
            if family == "ctrl":
                gateway.bearer(headers, sb.maton_keys)
                reply = await self._route(gateway.ctrl, scope, method, path, path, query, headers, receive)
                return _json_answer(reply.status, reply.body, reply.headers, "application/json")
            if family == "other":
                if path == "/" and method in ("GET", "HEAD"):
                    return _json_answer(200, sb.index(), {}, "application/json")
                raise errors.not_found()
            limit_headers = sb.peek_limit()
            if family == "gateway":
                gateway.bearer(headers, sb.maton_keys)
                gateway.select_connection(sb.store, headers.get("maton-connection"))
                api_path = path.removeprefix("/systeme")
            else:
                self._check_api_key(headers.get("x-api-key"))
                api_path = path
            allowed, limit_headers = sb.take_token()
            if not allowed:
                raise Problem(429, "Too Many Requests", headers={"Retry-After": limit_headers.pop("Retry-After", "1")})
            if not api_path.startswith("/api/"):
                raise errors.not_found()
            reply = await self._route(
                API, scope, method, api_path.removeprefix("/api"), api_path, query, headers, receive
            )
            return _json_answer(reply.status, reply.body, {**limit_headers, **reply.headers}, "application/json")
        except Problem as p:
            if family == "ctrl" and p.status in (404, 405):
                return _json_answer(
                    p.status, GatewayError(p.status, "NOT_FOUND", p.detail).body(), {}, "application/json"
                )
            return problem_answer(p, limit_headers)
        except GatewayError as g:
            return _json_answer(g.status, g.body(), {}, "application/json")
        except InjectedFault:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            return problem_answer(Problem(500, "Internal Server Error"), limit_headers)

    def _check_api_key(self, key: str | None) -> None:
        if key is None or not key.strip():
            raise Problem(401, MISSING_KEY, bare=True)
        if self.sb.api_keys is not None and key.strip() not in self.sb.api_keys:
            raise Problem(401, "Invalid API Key.", bare=True, headers={"WWW-Authenticate": "API Key"})

    async def _route(
        self,
        router: Router,
        scope: Scope,
        method: str,
        path: str,
        shown: str,
        query: str,
        headers: dict[str, str],
        receive: Receive,
    ) -> Reply:
        route, params = router.match(method, path, shown)
        body = await self._read_body(headers, receive)
        check_content_type(route, headers.get("content-type"), body)
        host = headers.get("host") or "sandbox.systeme.local"
        call = Call(
            self.sb.env,
            method,
            path,
            params,
            Query(parse_qsl(query, keep_blank_values=True)),
            body,
            headers.get("content-type"),
            f"{scope.get('scheme', 'http')}://{host}",
        )
        reply = route.handler(call)
        self.sb.persist_changes()  # nothing to do unless the handler changed a table (a GET can: /__sandbox/connect)
        return reply

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        cap = self.sb.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise Problem(413, f"The request body is larger than {cap} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > cap:
                raise Problem(413, f"The request body is larger than {cap} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def build_app(sb: Sandbox) -> Starlette:
    """The Starlette app serving every path through the dispatcher."""
    dispatcher = Dispatcher(sb)
    return Starlette(routes=[Route("/{path:path}", endpoint=dispatcher)])
