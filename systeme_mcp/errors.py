"""What can go wrong talking to Systeme.io or Maton, and what each failure tells the model to do next.

    SystemeError
    ├── ApiError                    the service answered with an error status
    │   ├── AuthError               401/403: key missing, wrong or not allowed
    │   ├── NotFound                404
    │   ├── InvalidRequest          400/422: per-field violations
    │   ├── RateLimited             429: when to retry
    │   ├── NotConfigured           a feature the account has not set up (declared per operation)
    │   ├── ConnectionMissing       Maton gateway 400: no usable Systeme.io connection
    │   └── ServerError             5xx
    ├── TransportError              no answer: could not connect, reset, timed out
    └── ReadOnlyRefused             a write attempted while the server is read-only

`message()` never contains a secret: the client scrubs keys from anything that came off the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


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


class RateLimited(ApiError):
    code = "rate_limited"

    def message(self) -> str:
        wait = f"{self.retry_after:g} s" if self.retry_after is not None else "a few seconds"
        if self.retry_asked is not None:
            wait += f" (the API asked for {self.retry_asked:g} s; waits are capped at {self.retry_after:g} s)"
        return f"Rate limited by Systeme.io (429) on {self.request}, even after waiting; retry in {wait}."


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


@dataclass
class TransportError(SystemeError):
    """No usable answer. `sent` is False only when the request provably never reached the server."""

    request: str
    reason: str
    sent: bool = True
    code = "no_answer"

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        return f"No answer from Systeme.io for {self.request}: {self.reason}."


@dataclass
class ReadOnlyRefused(SystemeError):
    request: str
    code = "read_only"

    def message(self) -> str:
        return f"Refused {self.request}: the server runs in read-only mode, so nothing was sent."


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
            violations = [v for v in raw if isinstance(v, dict)]
        if isinstance(body.get("error"), dict):
            detail = str(body["error"].get("message") or body["error"])
    elif isinstance(body, str):
        # proxies answer 5xx with HTML pages: keep only their text, never markup
        detail = " ".join(re.sub(r"<[^>]*>", " ", body).split())[:200]
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
