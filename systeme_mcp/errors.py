"""What can go wrong talking to Systeme.io or Maton, and what each failure tells the model to do next.

    SystemeError
    ├── ApiError                    the service answered with an error status
    │   ├── AuthError               401/403: key missing, wrong or not allowed
    │   ├── NotFound                404
    │   ├── InvalidRequest          400/422: per-field violations
    │   ├── RateLimited             429: when to retry
    │   │   └── PacedOut            not sent: the rate-limit wait is longer than the call deadline leaves
    │   ├── NotConfigured           a feature the account has not set up (declared per operation)
    │   ├── ConnectionMissing       Maton gateway 400: no usable Systeme.io connection
    │   ├── ServerError             5xx
    │   └── UnexpectedAnswer        an answer no one can believe: not JSON, the wrong shape, undecodable
    │       ├── AnswerTooLarge      the body passed SYSTEME_MAX_RESPONSE_BYTES (on the wire or decoded)
    │       └── Redirected          a 3xx: redirects are never followed
    ├── TransportError              no answer: could not connect, reset, timed out
    │   └── DeadlineExceeded        no complete answer within SYSTEME_CALL_DEADLINE
    └── ReadOnlyRefused             a write attempted while the server is read-only

`message()` never contains a secret: the client scrubs keys from anything that came off the wire. What the
upstream says is bounded here too: `detail` is cut to DETAIL_CHARS and violations to MAX_VIOLATIONS, each
cut saying how much was left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .config import Settings

DETAIL_CHARS = 2_000  # characters of the API's own error text kept
MAX_VIOLATIONS = 20  # per-field violations kept
VIOLATION_CHARS = 200  # characters of one violation's path or message kept


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…[cut: {len(text) - limit} more chars]"


class SystemeError(Exception):
    """Base class; `message()` is the text the model reads. `attempts`: how many times it was sent.
    `code` names the kind of failure in structured answers."""

    attempts: int = 1
    code = "error"

    def message(self) -> str:
        return str(self)


@dataclass
class ApiError(SystemeError):
    status: int
    detail: str = ""
    violations: list[dict[str, Any]] = field(default_factory=list)
    request: str = ""
    retry_after: float | None = None  # seconds, from the Retry-After header (capped)
    retry_asked: float | None = None  # what the header asked for, when that was over the cap

    code = "api_error"

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        return f"Systeme.io answered {self.status} to {self.request}: {self.detail or 'no detail'}."


class AuthError(ApiError):
    code = "auth"

    def message(self) -> str:
        if self.status == 403:
            return (
                f"Access denied (403) to {self.request}: {self.detail}. The key is valid but this record or "
                "feature is not available to it (plan or permissions)."
            )
        return (
            f"Authentication failed (401): {self.detail or 'no detail'} Check the API key the server was started "
            "with (MATON_API_KEY for the Maton gateway, SYSTEME_API_KEY for the direct API); restart the server "
            "after changing it."
        )


@dataclass
class NotFound(ApiError):
    what: str = ""
    code = "not_found"

    def message(self) -> str:
        return f"Not found (404): {self.what or self.request} does not exist (deleted, or a wrong id)."


class InvalidRequest(ApiError):
    code = "invalid_request"

    def message(self) -> str:
        lines = [f"- {v.get('propertyPath') or '(request)'}: {v.get('message')}" for v in self.violations]
        listed = "\n".join(lines) if lines else f"- {self.detail}"
        return f"Systeme.io rejected {self.request} ({self.status}); nothing was changed:\n{listed}"


@dataclass
class RateLimited(ApiError):
    """429. `deadline` (seconds) is set when the wait asked for was not taken: it would pass the call deadline."""

    deadline: float | None = None
    code = "rate_limited"

    def _wait(self) -> str:
        wait = f"{self.retry_after:g} s" if self.retry_after is not None else "a few seconds"
        if self.retry_asked is not None:
            wait += f" (the API asked for {self.retry_asked:g} s; waits are capped at {self.retry_after:g} s)"
        return wait

    def message(self) -> str:
        if self.deadline is not None:
            return (
                f"Rate limited by Systeme.io (429) on {self.request}; waiting as asked would pass the "
                f"{self.deadline:g} s call deadline (SYSTEME_CALL_DEADLINE), so it was not retried; retry in "
                f"{self._wait()}."
            )
        return f"Rate limited by Systeme.io (429) on {self.request}, even after waiting; retry in {self._wait()}."


@dataclass
class PacedOut(RateLimited):
    """Never sent: the client's rate-limit pacing would hold it past the call deadline (`retry_after`: seconds)."""

    def message(self) -> str:
        return (
            f"Not sent: {self.request} would have to wait {self._wait()} for Systeme.io's rate limit (X-RateLimit-* "
            f"headers or an earlier 429), longer than the time left in the {self.deadline or 0:g} s call deadline "
            f"(SYSTEME_CALL_DEADLINE). Nothing was sent; retry in {self._wait()}."
        )


@dataclass
class NotConfigured(ApiError):
    feature: str = ""
    where: str = ""
    code = "not_configured"

    def message(self) -> str:
        return (
            f"{self.feature} is not configured on this Systeme.io account ({self.status}: {self.detail}). {self.where}"
        )


class ConnectionMissing(ApiError):
    code = "connection_missing"

    def message(self) -> str:
        return (
            f"The Maton gateway has no usable Systeme.io connection ({self.status}: {self.detail}). Call "
            "list_connections to see connections; create_connection starts a new one (open its url to "
            "authorize), then set MATON_CONNECTION or retry."
        )


class ServerError(ApiError):
    code = "server_error"

    def message(self) -> str:
        return f"Systeme.io failed ({self.status}) on {self.request}: {self.detail or 'server error'}."


class UnexpectedAnswer(ApiError):
    """The service answered (`status`), but not with anything that can be believed; `detail` says what came."""

    code = "unexpected_answer"

    def message(self) -> str:
        return f"Unexpected answer from Systeme.io to {self.request} ({self.status}): {self.detail}."


@dataclass
class AnswerTooLarge(UnexpectedAnswer):
    """The body passed the size cap; reading stopped there. `read`: bytes read off the wire, `decoded`: after
    decompression (None: not decoded yet, the declared Content-Length was over the cap)."""

    cap: int = 0
    read: int = 0
    decoded: int | None = None
    code = "answer_too_large"

    def message(self) -> str:
        if self.decoded is None:
            seen = f"it declared {self.read} bytes, so none were read"
        else:
            seen = f"reading stopped after {self.read} bytes on the wire ({self.decoded} decoded)"
        return (
            f"The answer to {self.request} ({self.status}) was larger than the {self.cap}-byte cap: {seen}. "
            "Narrow the request (filters, a smaller limit), or raise SYSTEME_MAX_RESPONSE_BYTES if answers this "
            "large are expected."
        )


@dataclass
class Redirected(UnexpectedAnswer):
    """A 3xx: never followed (credentials must not go elsewhere). `host`: the Location's host only."""

    host: str = ""
    code = "redirected"

    def message(self) -> str:
        where = f" to host {self.host}" if self.host else " without a usable Location"
        return (
            f"Systeme.io answered {self.status} (a redirect{where}) to {self.request} instead of an answer; "
            "redirects are not followed. Check SYSTEME_API_URL / MATON_GATEWAY_URL and any proxy in between."
        )


@dataclass
class TransportError(SystemeError):
    """No usable answer. `sent` is False only when the request provably never reached the server. `upstream`
    names who did not answer (the Maton gateway, Systeme.io, Maton's connection API, with the host); `hint`
    says what to check."""

    request: str
    reason: str
    sent: bool = True
    upstream: str = "Systeme.io"
    hint: str = ""
    code = "no_answer"

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        text = f"No answer from {self.upstream} for {self.request}: {self.reason}."
        return f"{text} {self.hint}" if self.hint else text


@dataclass
class DeadlineExceeded(TransportError):
    """The call deadline passed before a complete answer (a stall, a drip-fed body, retries, waits)."""

    deadline: float = 0.0
    write: bool = False
    code = "deadline_exceeded"

    def message(self) -> str:
        text = (
            f"No complete answer from {self.upstream} for {self.request} within the {self.deadline:g} s call "
            "deadline (SYSTEME_CALL_DEADLINE; raise it if the API is just slow)."
        )
        if self.write and self.sent:
            return text + " The request was sent, so the write's outcome is unknown."
        if self.write:
            return text + " The request was never sent: nothing was changed."
        return text


def upstream_of(settings: Settings, api: str) -> tuple[str, str]:
    """Who a request to `api` goes to, as messages name it (with the host), and what to check when it cannot be
    reached: the host, the base-URL variable, and that the key was never put to the test."""
    backend = settings.resolved_backend
    if backend == "sandbox":
        return "the embedded sandbox", ""
    if api == "maton":
        name, url, variable = "Maton's connection API", settings.maton_ctrl_url, "MATON_CTRL_URL"
    elif backend == "direct":
        name, url, variable = "Systeme.io", settings.systeme_api_url, "SYSTEME_API_URL"
    else:
        name, url, variable = "the Maton gateway", settings.maton_gateway_url, "MATON_GATEWAY_URL"
    key = "SYSTEME_API_KEY" if backend == "direct" and api != "maton" else "MATON_API_KEY"
    host = urlsplit(url).netloc.rpartition("@")[2] or url  # never a user:password part
    hint = (
        f"Check that this machine can reach {host} (network, proxy, firewall), and {variable} if you set it; "
        f"{key} was not checked, since nothing reached {name}."
    )
    return f"{name} ({host})", hint


@dataclass
class ReadOnlyRefused(SystemeError):
    request: str
    code = "read_only"

    def message(self) -> str:
        return f"Refused {self.request}: the server runs in read-only mode, so nothing was sent."


def _violations(raw: list[Any]) -> list[dict[str, Any]]:
    """The first MAX_VIOLATIONS per-field violations, their texts cut; a last entry says how many were left out."""
    found = [v for v in raw if isinstance(v, dict)]
    kept = [
        {k: _cut(str(v[k]), VIOLATION_CHARS) for k in ("propertyPath", "message", "code") if v.get(k) is not None}
        for v in found[:MAX_VIOLATIONS]
    ]
    if len(found) > MAX_VIOLATIONS:
        kept.append({"message": f"…and {len(found) - MAX_VIOLATIONS} more violations (cut)"})
    return kept


def from_response(
    status: int,
    body: Any,
    request: str,
    *,
    maton: bool,
    retry_after: float | None,
    retry_asked: float | None = None,
) -> ApiError:
    """Map an error answer to the right ApiError subclass, keeping the API's own wording."""
    detail = ""
    violations: list[dict[str, Any]] = []
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("message") or body.get("error") or body.get("title") or "")
        raw = body.get("violations")
        if isinstance(raw, list):
            violations = _violations(raw)
        if isinstance(body.get("error"), dict):
            detail = str(body["error"].get("message") or body["error"])
        detail = _cut(detail, DETAIL_CHARS)
    elif isinstance(body, str):
        # proxies answer 5xx with HTML pages: keep only their text, never markup
        detail = " ".join(re.sub(r"<[^>]*>", " ", body[: DETAIL_CHARS * 4]).split())[:200]
    args: dict[str, Any] = {
        "status": status,
        "detail": detail,
        "violations": violations,
        "request": request,
        "retry_after": retry_after,
        "retry_asked": retry_asked,
    }
    if status in (401, 403):
        return AuthError(**args)
    if status == 404:
        return NotFound(**args)
    if status == 429:
        return RateLimited(**args)
    if status == 400 and maton and "connection" in detail.lower():
        return ConnectionMissing(**args)
    if status in (400, 422):
        return InvalidRequest(**args)
    if status >= 500:
        return ServerError(**args)
    return ApiError(**args)
