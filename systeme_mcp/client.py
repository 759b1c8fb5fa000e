"""SystemeClient: the one place that talks HTTP to Systeme.io, the Maton gateway or the sandbox.

It owns the credentials (as `auth.py` objects), content types, timeouts, client-side pacing from X-RateLimit-*
headers, paging (`pages`), retries and the mapping of failures to `errors`; the numbers are in `policy.py`.
Retry rules:
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from . import errors
from .auth import ApiKeyAuth, BearerAuth
from .catalog import Operation
from .config import Settings
from .pacing import Pacer
from .policy import (
    CONNECT_TIMEOUT_CAP,
    ERROR_TEXT_CHARS,
    PAGE_SIZE,
    RETRY_STATUSES,
    USER_AGENT,
    WRITE_RETRY_STATUSES,
    backoff_delay,
    parse_retry_after,
)
from .projection import items_of
from .wire import RequestPlan, build_request

log = logging.getLogger("systeme_mcp.client")

SANDBOX_KEY = "sandbox-maton-key"


@dataclass(frozen=True)
class Response:
    status: int
    data: Any
    headers: dict[str, str]
    attempts: int = 1


@dataclass(frozen=True)
class Page:
    """One page of a list operation: its items (at the declared `items_path`) and whether more follow."""

    items: list[Any]
    has_more: bool
    data: Any


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
            timeout=httpx2.Timeout(settings.timeout, connect=min(CONNECT_TIMEOUT_CAP, settings.timeout)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )
        self._auth = self._credentials(settings)

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

    def _credentials(self, settings: Settings) -> dict[str, httpx2.Auth | None]:
        """The Auth for each API this backend talks to (None: no credential for it)."""
        if self.backend == "sandbox":
            gateway: httpx2.Auth | None = BearerAuth(SANDBOX_KEY, settings.maton_connection)
            return {"systeme": gateway, "maton": BearerAuth(SANDBOX_KEY)}
        maton = settings.maton_api_key.get_secret_value() if settings.maton_api_key else None
        if self.backend == "direct":
            key = settings.systeme_api_key.get_secret_value() if settings.systeme_api_key else ""
            gateway = ApiKeyAuth(key)
        else:
            gateway = BearerAuth(maton, settings.maton_connection) if maton else None
        return {"systeme": gateway, "maton": BearerAuth(maton) if maton else None}

    def _auth_for(self, plan: RequestPlan) -> httpx2.Auth:
        auth = self._auth.get(plan.api)
        if auth is None:
            raise errors.AuthError(
                status=401,
                request=plan.describe(),
                detail="Maton connection tools need MATON_API_KEY (the direct API key cannot manage connections).",
            )
        return auth

    def scrub(self, text: str) -> str:
        """Remove every secret from text that may be shown to the model or logged."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    # ------------------------------------------------------------------ sending
    async def pages(self, op: Operation, args: dict[str, Any], max_pages: int) -> AsyncIterator[Page]:
        """The pages of list operation `op`, at most `max_pages`, each request retried as `send` does.

        Pages of the largest size the operation allows unless `args` sets `limit`; the next cursor is the last
        item's id (`starting_after`). The last page yielded has `has_more` True when the cap stopped it.
        """
        query = dict(args)
        if "limit" in op.params and "limit" not in query:
            query["limit"] = op.params["limit"].maximum or PAGE_SIZE
        for _ in range(max_pages):
            data = (await self.send(build_request(op, query))).data
            items = items_of(op, data)
            has_more = bool(data.get("hasMore")) if isinstance(data, dict) and op.paginated else False
            last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
            has_more = has_more and last is not None
            yield Page(items, has_more, data)
            if not has_more:
                return
            query["starting_after"] = last

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
        headers: dict[str, str] = {}
        if plan.body is not None:
            headers["Content-Type"] = "application/merge-patch+json" if plan.method == "PATCH" else "application/json"
        try:
            auth = self._auth_for(plan)
            answer = await self._http.request(
                plan.method,
                self._url(plan),
                params=plan.query or None,
                content=content,
                headers=headers,
                auth=auth,
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
                data = self.scrub(answer.text[:ERROR_TEXT_CHARS])
        return Response(answer.status_code, data, headers)

    def _error(self, plan: RequestPlan, answer: Response) -> errors.ApiError:
        data = answer.data
        if isinstance(data, (dict, list)):
            data = json.loads(self.scrub(json.dumps(data)))
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        return errors.from_response(
            answer.status,
            data,
            plan.describe(),
            maton=self.backend != "direct",
            retry_after=retry_after.seconds if retry_after else None,
            retry_asked=retry_after.asked if retry_after and retry_after.capped else None,
        )
