"""SystemeClient: the one place that talks HTTP to Systeme.io, the Maton gateway or the sandbox.

It owns the credentials (as `auth.py` objects), content types, timeouts, pacing by X-RateLimit-* (`governor.py`:
per process, or fleet-wide on a Redis store), paging (`pages`), retries and the mapping of failures to `errors`;
the numbers are in `policy.py`.
Retry rules:
- idempotent requests (GET, PUT, DELETE, merge-patch PATCH) are retried on connection errors, timeouts,
  502/503/504 and 429, with exponential backoff and jitter, within `max_attempts` and `retry_budget` seconds;
  an idempotent *write* is also retried on 500: its outcome is otherwise unknown and repeating it is harmless
  (a 500 on a read is final: nothing is at stake and it is rarely transient);
- non-idempotent requests (POST) are retried only when they provably never arrived: a connect error or a 429
  (the API rejected it before doing anything). Any other failure is reported as ambiguous (`sent=True`) so
  the caller can check whether the write happened before doing anything else.
Waits are anyio sleeps, so an MCP cancellation interrupts them.
Everything the upstream sends is untrusted (`upstream.py`):
- bodies are streamed and capped at `max_response_bytes`, on the wire and decompressed (AnswerTooLarge);
- a whole `send` — pacing waits, every attempt, backoffs — ends by its deadline (`call_deadline`): a wait that
  would pass it is refused at once (PacedOut / RateLimited saying when to retry), a drip-fed or stalled answer
  is cut there (DeadlineExceeded);
- only a 2xx is a success: a 3xx is Redirected (never followed); JSON strings are always valid Unicode.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx2

from . import errors, hosts
from .auth import SANDBOX_KEY, credentials
from .catalog import Operation, ResultShape
from .config import Settings
from .governor import Governor, open_governor
from .outbound import Pool, flat
from .pacing import WaitTooLong, in_background
from .policy import (
    ERROR_TEXT_CHARS,
    MAX_RETRY_AFTER,
    PAGE_SIZE,
    RETRY_STATUSES,
    WRITE_RETRY_STATUSES,
    backoff_delay,
    parse_retry_after,
)
from .projection import items_of
from .upstream import Overflow, answer_problem, decode_json, location_host, read_body
from .wire import RequestPlan, build_request

log = logging.getLogger("systeme_mcp.client")
__all__ = ["SANDBOX_KEY", "Page", "Response", "SystemeClient"]


@dataclass(frozen=True)
class Response:
    """An answer. `is_json` False: a non-empty body that is not JSON (`data` is then its text, cut); `size`:
    bytes of the decoded body."""

    status: int
    data: Any
    headers: dict[str, str]
    attempts: int = 1
    is_json: bool = True
    size: int = 0


@dataclass
class _Tries:
    """One `send`: attempts made, and whether any of them may have reached the server."""

    attempts: int = 0
    sent: bool = False


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
        governor: Governor | None = None,
    ) -> None:
        self.settings = settings
        self.backend = settings.resolved_backend
        self._secrets = settings.secret_pattern(*([SANDBOX_KEY] if self.backend == "sandbox" else []))
        self._sleep = sleep
        self._clock = clock
        # seconds one request may take in all; left at its default it never cuts a longer retry budget set
        self.call_deadline = settings.call_deadline
        if "call_deadline" not in settings.model_fields_set:
            self.call_deadline = max(settings.call_deadline, settings.retry_budget)
        # shared by a fleet on a Redis store; `governor`: one made for this client (a tenant's, on the process's Redis)
        self.pacer = governor or open_governor(settings, sleep=sleep, clock=clock)
        self._pool = Pool(settings, transport)  # the httpx2 client, made at the first request
        self._auth = credentials(settings, self.backend)
        self.routes = hosts.routes(settings, self.backend)  # where each API is (Maton: current host, then legacy)

    @property
    def is_closed(self) -> bool:
        return self._pool.is_closed

    async def aclose(self) -> None:
        await self._pool.aclose()
        await self.pacer.aclose()

    # ------------------------------------------------------------------ auth
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
        """Remove every secret from text that may be shown to the model or logged: in any letter case, plain,
        URL-encoded or JSON-escaped (values too short to be a real secret are left alone; start-up warns)."""
        return self._secrets.sub("[redacted]", text) if self._secrets else text

    # ------------------------------------------------------------------ sending
    async def pages(
        self,
        op: Operation,
        args: dict[str, Any],
        max_pages: int,
        *,
        deadline: float | None = None,
        shape: ResultShape | None = None,
    ) -> AsyncIterator[Page]:
        """The pages of list operation `op`, at most `max_pages`, each request retried as `send` does.

        Pages of the largest size the operation allows unless `args` sets `limit`; the next cursor is the last
        item's id (`starting_after`). The last page yielded has `has_more` True when the cap stopped it. A page
        that is not a list of items (`upstream.answer_problem`) raises UnexpectedAnswer: never read as empty.
        `deadline`: one deadline for every page (default: each page its own).
        """
        query = dict(args)
        if "limit" in op.params and "limit" not in query:
            query["limit"] = op.params["limit"].maximum or PAGE_SIZE
        for _ in range(max_pages):
            plan = build_request(op, query)
            data = self.expect(op, plan, await self.send(plan, deadline=deadline), shape).data
            items = items_of(op, data)
            has_more = bool(data.get("hasMore")) if isinstance(data, dict) and op.paginated else False
            last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
            has_more = has_more and last is not None
            yield Page(items, has_more, data)
            if not has_more:
                return
            query["starting_after"] = last

    @staticmethod
    def expect(op: Operation, plan: RequestPlan, answer: Response, shape: ResultShape | None = None) -> Response:
        """`answer`, if it can be `op`'s declared result; else UnexpectedAnswer saying what came instead."""
        kind = answer.headers.get("content-type", "")
        problem = answer_problem(
            op, answer.data, is_json=answer.is_json, size=answer.size, content_type=kind, shape=shape
        )
        if problem is None:
            return answer
        raise errors.UnexpectedAnswer(status=answer.status, detail=problem, request=plan.describe())

    def deadline(self) -> float:
        """The deadline, on the client's clock, of a call starting now (`call_deadline` seconds from now; background
        work, which no client waits for, may also wait out two full rate-limit holds for its turn)."""
        return self._clock() + self.call_deadline + (2 * MAX_RETRY_AFTER if in_background() else 0.0)

    async def send(self, plan: RequestPlan, *, deadline: float | None = None) -> Response:
        """Send `plan` under the retry policy; return the answer or raise a SystemeError. Nothing — pacing,
        attempts, backoff, a drip-fed body — runs past `deadline` (default: `call_deadline` from now)."""
        if self.settings.read_only and plan.method != "GET":
            raise errors.ReadOnlyRefused(plan.describe())
        deadline = self.deadline() if deadline is None else deadline
        tries = _Tries()
        with anyio.move_on_after(max(0.0, deadline - self._clock())):  # anyio's clock: real network time
            return await self._send(plan, deadline, tries)
        upstream = errors.upstream_of(self.settings, plan.api)[0]
        failure = errors.DeadlineExceeded(
            plan.describe(), "deadline", tries.sent, upstream, deadline=self.call_deadline, write=plan.method != "GET"
        )
        failure.attempts = max(1, tries.attempts)
        log.info("%s: %s", plan.describe(), failure.message())
        raise failure

    async def _send(self, plan: RequestPlan, deadline: float, tries: _Tries) -> Response:
        started = self._clock()
        while True:
            tries.attempts += 1
            outcome = await self._attempt(plan, deadline, tries)
            if isinstance(outcome, Response) and 200 <= outcome.status < 300:
                return outcome if tries.attempts == 1 else replace(outcome, attempts=tries.attempts)
            failure = outcome if isinstance(outcome, errors.SystemeError) else self._error(plan, outcome)
            delay = self._retry_delay(plan, failure, tries.attempts, self._clock() - started)
            if delay is not None and self._clock() + delay > deadline:
                if isinstance(failure, errors.RateLimited) and failure.deadline is None:
                    failure.deadline = self.call_deadline  # says the wait was not taken, and why
                delay = None
            if delay is None:
                failure.attempts = tries.attempts
                raise failure
            log.info("retrying %s in %.2fs after: %s", plan.describe(), delay, self.scrub(failure.message()))
            if not isinstance(failure, errors.RateLimited):  # after a 429 the shared pacer holds every request
                await self._sleep(delay)

    def _retry_delay(self, plan: RequestPlan, failure: errors.SystemeError, attempt: int, spent: float) -> float | None:
        if attempt >= self.settings.max_attempts or isinstance(failure, errors.PacedOut):
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

    async def _attempt(self, plan: RequestPlan, deadline: float, tries: _Tries) -> Response | errors.SystemeError:
        """One attempt: on each candidate host of the API in turn (`hosts.Route`), the next one only after a
        connect error (provably never sent); the host that answers is kept."""
        route = self.routes[plan.api]
        failure: errors.SystemeError | None = None
        for base in route.candidates():
            try:
                await self.pacer.acquire(deadline, write=plan.method != "GET")
            except WaitTooLong as held:
                wait = float(max(1, math.ceil(held.wait)))
                return errors.PacedOut(
                    status=429, request=plan.describe(), retry_after=wait, deadline=self.call_deadline
                )
            sent_before = tries.sent
            try:
                answer = await self._exchange(plan, tries, route.url(base, plan.path))
            except httpx2.ConnectError as exc:
                tries.sent = sent_before
                reason = self.scrub(f"could not connect ({exc})")
                upstream, hint = errors.upstream_of(self.settings, plan.api)
                failure = errors.TransportError(plan.describe(), reason, False, upstream, hint)
                continue
            except httpx2.TimeoutException as exc:
                sent = not isinstance(exc, (httpx2.ConnectTimeout, httpx2.PoolTimeout))
                tries.sent = sent_before or sent
                reason = "timed out waiting for the answer"
                upstream, hint = errors.upstream_of(self.settings, plan.api)
                return errors.TransportError(plan.describe(), reason, sent, upstream, "" if sent else hint)
            except httpx2.RequestError as exc:  # reset, protocol error (a hostile server's garbage), ...
                reason = self.scrub(f"connection lost ({type(exc).__name__})")
                return errors.TransportError(
                    plan.describe(), reason, True, errors.upstream_of(self.settings, plan.api)[0]
                )
            route.answered(base)
            return answer
        assert failure is not None
        return failure

    async def _exchange(self, plan: RequestPlan, tries: _Tries, url: str) -> Response | errors.SystemeError:
        content = None if plan.body is None else json.dumps(plan.body).encode()
        kind = None
        if plan.body is not None:
            kind = "application/merge-patch+json" if plan.method == "PATCH" else "application/json"
        observed = False
        try:
            auth = self._auth_for(plan)
            tries.sent = True  # from here on the request may reach the server
            request = self._pool.request(plan.method, url, plan.query, content, kind)
            async with self._pool.stream(request, auth) as answer:
                status, headers = answer.status_code, flat(answer.headers)
                await self.pacer.observe(headers, status)
                observed = True
                try:
                    body = await read_body(answer, self.settings.max_response_bytes)
                except Overflow as over:
                    cap = self.settings.max_response_bytes
                    return self._unusable(plan, status, headers, f"the body was over the {cap}-byte cap", over)
                except httpx2.DecodingError:
                    encoding = self.scrub(headers.get("content-encoding", "")[:40])
                    return self._unusable(plan, status, headers, f"the body could not be decoded ({encoding})")
        except BaseException:
            if not observed:
                await self.pacer.observe({}, None)
            raise
        data: Any = None
        is_json = True
        if body:
            is_json, data = decode_json(body)
            if not is_json:
                data = self.scrub(body[: ERROR_TEXT_CHARS * 4].decode("utf-8", errors="replace")[:ERROR_TEXT_CHARS])
        return Response(status, data, headers, is_json=is_json, size=len(body))

    def _unusable(
        self, plan: RequestPlan, status: int, headers: dict[str, str], reason: str, over: Overflow | None = None
    ) -> Response | errors.SystemeError:
        """A body that cannot be used (over the cap: `over`): an error status stays that error, with `reason` as
        its text; a 3xx is Redirected; a 2xx is AnswerTooLarge or UnexpectedAnswer."""
        log.warning("%s: unusable answer (%d): %s", plan.describe(), status, reason)
        if status >= 300:
            answer = Response(status, f"({reason})" if status >= 400 else None, headers, is_json=False)
            return answer if status >= 400 else self._error(plan, answer)
        if over is not None:
            cap = self.settings.max_response_bytes
            return errors.AnswerTooLarge(status, request=plan.describe(), cap=cap, read=over.read, decoded=over.decoded)
        return errors.UnexpectedAnswer(status=status, detail=reason, request=plan.describe())

    def _error(self, plan: RequestPlan, answer: Response) -> errors.ApiError:
        if 300 <= answer.status < 400:
            host = self.scrub(location_host(answer.headers.get("location")))
            return errors.Redirected(status=answer.status, detail="redirect", request=plan.describe(), host=host)
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
