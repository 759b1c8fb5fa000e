"""SystemeClient: the one place that talks HTTP to Systeme.io, the Maton gateway or the sandbox.

It owns auth headers, content types, timeouts, client-side pacing from X-RateLimit-* headers, retries and the
mapping of failures to `errors`. Retry rules:
- idempotent requests (GET, PUT, DELETE, merge-patch PATCH) are retried on connection errors, timeouts,
  502/503/504 and 429, with exponential backoff and jitter, within `max_attempts` and `retry_budget` seconds;
  an idempotent *write* is also retried on 500: its outcome is otherwise unknown and repeating it is harmless
  (a 500 on a read is final: nothing is at stake and it is rarely transient);
- non-idempotent requests (POST) are retried only when they provably never arrived: a connect error or a 429
  (the API rejected it before doing anything). Any other failure is reported as ambiguous (`sent=True`) so
  the caller can check whether the write happened before doing anything else.
Waits are anyio sleeps, so an MCP cancellation interrupts them.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from . import errors
from .config import Settings
from .pacing import Pacer
from .wire import RequestPlan

log = logging.getLogger("systeme_mcp.client")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
WRITE_RETRY_STATUSES = RETRY_STATUSES | {500}  # idempotent writes: a 500 leaves the outcome unknown
BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
USER_AGENT = "systeme-mcp/0.1"
SANDBOX_KEY = "sandbox-maton-key"


@dataclass(frozen=True)
class Response:
    status: int
    data: Any
    headers: dict[str, str]
    attempts: int = 1


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: Retry-After if given, else capped exponential + jitter."""
    if retry_after is not None:
        return max(0.0, retry_after)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class SystemeClient:
    """One shared httpx2.AsyncClient for the server's lifetime; every tool call goes through `send`."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.backend = settings.resolved_backend
        self._secrets = settings.secrets() + ([SANDBOX_KEY] if self.backend == "sandbox" else [])
        self._sleep = sleep
        self._clock = clock
        self.pacer = Pacer(sleep=sleep, clock=clock)
        self._http = httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(settings.timeout, connect=min(10.0, settings.timeout)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )
        self.sandbox: Any = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ addressing and auth
    def _url(self, plan: RequestPlan) -> str:
        s = self.settings
        if plan.api == "maton":
            return s.maton_ctrl_url + plan.path
        if self.backend == "direct":
            return s.systeme_api_url + plan.path
        return s.maton_gateway_url + "/systeme" + plan.path

    def _headers(self, plan: RequestPlan) -> dict[str, str]:
        headers: dict[str, str] = {}
        if plan.body is not None:
            headers["Content-Type"] = "application/merge-patch+json" if plan.method == "PATCH" else "application/json"
        if self.backend == "direct" and plan.api == "systeme":
            key = self.settings.systeme_api_key
            headers["X-API-Key"] = key.get_secret_value() if key else ""
            return headers
        maton = self.settings.maton_api_key
        if self.backend == "sandbox":
            headers["Authorization"] = f"Bearer {SANDBOX_KEY}"
        elif maton:
            headers["Authorization"] = f"Bearer {maton.get_secret_value()}"
        else:
            raise errors.AuthError(
                status=401,
                request=plan.describe(),
                detail="Maton connection tools need MATON_API_KEY (the direct API key cannot manage connections).",
            )
        if plan.api == "systeme" and self.settings.maton_connection:
            headers["Maton-Connection"] = self.settings.maton_connection
        return headers

    def scrub(self, text: str) -> str:
        """Remove every secret from text that may be shown to the model or logged."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    # ------------------------------------------------------------------ sending
    async def send(self, plan: RequestPlan) -> Response:
        """Send `plan` under the retry policy; return the answer or raise a SystemeError."""
        if self.settings.read_only and plan.method != "GET":
            raise errors.ReadOnlyRefused(plan.describe())
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(plan)
            if isinstance(outcome, Response) and outcome.status < 400:
                return Response(outcome.status, outcome.data, outcome.headers, attempt)
            failure = outcome if isinstance(outcome, errors.SystemeError) else self._error(plan, outcome)
            delay = self._retry_delay(plan, failure, attempt, self._clock() - started)
            if delay is None:
                failure.attempts = attempt
                raise failure
            log.info("retrying %s in %.2fs after: %s", plan.describe(), delay, self.scrub(failure.message()))
            if not isinstance(failure, errors.RateLimited):  # after a 429 the shared pacer holds every request
                await self._sleep(delay)

    def _retry_delay(self, plan: RequestPlan, failure: errors.SystemeError, attempt: int, spent: float) -> float | None:
        if attempt >= self.settings.max_attempts:
            return None
        retry_after: float | None = None
        if isinstance(failure, errors.RateLimited):
            retry_after = failure.retry_after
        elif isinstance(failure, errors.TransportError):
            if failure.sent and not plan.idempotent:
                return None
        elif isinstance(failure, errors.ApiError):
            statuses = RETRY_STATUSES if plan.method == "GET" else WRITE_RETRY_STATUSES
            if failure.status not in statuses or not plan.idempotent:
                return None
            retry_after = failure.retry_after
        else:
            return None
        delay = backoff_delay(attempt, retry_after)
        if spent + delay > self.settings.retry_budget:
            return None
        return delay

    async def _attempt(self, plan: RequestPlan) -> Response | errors.SystemeError:
        await self.pacer.acquire()
        try:
            return await self._exchange(plan)
        except httpx2.ConnectError as exc:
            return errors.TransportError(plan.describe(), self.scrub(f"could not connect ({exc})"), sent=False)
        except httpx2.TimeoutException as exc:
            sent = not isinstance(exc, (httpx2.ConnectTimeout, httpx2.PoolTimeout))
            return errors.TransportError(plan.describe(), "timed out waiting for the answer", sent=sent)
        except httpx2.TransportError as exc:
            reason = self.scrub(f"connection lost ({type(exc).__name__})")
            return errors.TransportError(plan.describe(), reason, sent=True)

    async def _exchange(self, plan: RequestPlan) -> Response:
        content = None if plan.body is None else json.dumps(plan.body).encode()
        try:
            answer = await self._http.request(
                plan.method, self._url(plan), params=plan.query or None, content=content, headers=self._headers(plan)
            )
        except BaseException:
            self.pacer.observe({}, None)
            raise
        headers = dict(answer.headers)
        self.pacer.observe(headers, answer.status_code)
        data: Any = None
        if answer.content:
            try:
                data = answer.json()
            except ValueError:
                data = self.scrub(answer.text[:500])
        return Response(answer.status_code, data, headers)

    def _error(self, plan: RequestPlan, answer: Response) -> errors.ApiError:
        data = answer.data
        if isinstance(data, (dict, list)):
            data = json.loads(self.scrub(json.dumps(data)))
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        return errors.from_response(
            answer.status, data, plan.describe(), maton=self.backend != "direct", retry_after=retry_after
        )
