"""What a tool call runs with: the server-wide Runtime (settings, catalog, client) and a per-call context."""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import types

from .catalog import Catalog, load_catalog
from .client import SystemeClient
from .config import SHARED_STORES, Settings
from .errors import SystemeError
from .governor import open_governor
from .projection import cut, visible
from .subscriptions import Subscriptions
from .write_identity import scope

log = logging.getLogger("systeme_mcp")
NOTICE_CHARS = 1_000  # characters of one log or progress message
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
SANDBOX_URL = "http://sandbox.systeme.local"  # where the embedded sandbox answers (in-process, never dialled)
SANDBOX_LOG = 1_000  # requests (and webhook deliveries) the embedded sandbox remembers: it lives as long as the server
LOG_EVERY = 5.0  # seconds of the runtime's clock between two "how far it got" log lines of one long call


@dataclass
class Runtime:
    """Server-wide state: built once at start, shared by every call."""

    settings: Settings
    catalog: Catalog
    client: SystemeClient
    sandbox: Any = None  # the Sandbox given to open_runtime (the one it makes itself: LazySandbox, at first use)
    log_level: str = "info"  # minimum level of log messages sent to clients (logging/setLevel)
    jobs: Any = None  # the JobRunner (jobs.py) running this process's durable jobs
    clock: Callable[[], float] = time.monotonic  # monotonic seconds (tests: a virtual clock)
    subscriptions: Subscriptions = field(default_factory=Subscriptions)  # who watches which resource
    tenants: Any = None  # per-request tenancy: the tenants' clients (tenancy.Tenants); None: single tenant
    tenant: Any = None  # in a tenant's view of the runtime (`for_tenant`): that tenancy.Tenant
    repeats: Any = None  # the repeats.RepeatStore: identical writes claimed and remembered (shared by a fleet)
    repeat_secret: bytes = field(default=b"", repr=False)  # the key write identities are hashed under

    @functools.cached_property
    def account(self) -> str:
        """Whose jobs this (view of the) runtime runs and shows: the tenant's id, else `Settings.account` (a hash,
        computed once: the settings and tenant of a runtime never change; `for_tenant` makes a new one)."""
        return self.tenant.id if self.tenant is not None else self.settings.account

    async def touched(self, ids: list[str]) -> None:
        """A write of this account touched these records (repeats.py forgets results of identical calls naming
        them); never fails the write, which has happened."""
        if not ids or self.repeats is None:
            return
        try:
            await self.repeats.touch(scope(self.repeat_secret, self.account), ids)
        except SystemeError as exc:
            log.warning("could not record which records a write touched: %s", exc)

    def for_tenant(self, tenant: Any) -> Runtime:
        """The runtime as one tenant's calls see it: its client (key, pacer, pool), its jobs; the rest shared."""
        return dataclasses.replace(self, client=tenant.client, tenant=tenant)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    sandbox: Any = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[Runtime]:
    """Create the shared client for `settings` (and the sandbox if that is the backend); close it after.
    `sleep` and `clock` replace the client's waits and monotonic clock (tests: waits that take no time)."""
    catalog = catalog or load_catalog()
    if settings.resolved_backend == "sandbox":
        base = (sandbox.base_url if sandbox is not None else SANDBOX_URL).rstrip("/")
        settings = settings.model_copy(update={"maton_gateway_url": base, "maton_ctrl_url": base})
        transport = transport or (sandbox.transport() if sandbox is not None else LazySandbox())
    timing: dict[str, Any] = {k: v for k, v in (("sleep", sleep), ("clock", clock)) if v is not None}
    replica = secrets.token_hex(8)  # this process in the fleet's heartbeats (repeats_redis)
    redis = None  # one redis-py client for the process: the store's and every governor's connections
    if settings.store_url.startswith(SHARED_STORES):
        from .jobstore_redis import connect  # imported here: redis-py is loaded only when a fleet uses Redis

        redis = connect(settings.store_url)

    def make(client_settings: Settings, account: str | None = None, maton: str | None = None) -> SystemeClient:
        """A client of `client_settings`, its requests paced as `account` (and `maton`; see open_governor)."""
        pacer = open_governor(client_settings, account=account, maton=maton, redis=redis, replica=replica, **timing)
        return SystemeClient(client_settings, transport=transport, governor=pacer, **timing)

    client = make(settings)
    from .jobs import JobRunner  # imported here: jobs builds on this module (CallContext, Runtime)
    from .jobstore import open_store  # imported here, beside it: the store is the runner's

    store = open_store(settings.store_url, redis=redis)
    runtime = Runtime(settings=settings, catalog=catalog, client=client, sandbox=sandbox, clock=clock or time.monotonic)
    if settings.tenancy == "per-request":
        from .tenancy import Tenants  # imported here: only per-request tenancy needs it (and starlette)

        runtime.tenants = Tenants(settings, make, clock=clock or time.monotonic)
    runtime.jobs = JobRunner(runtime, store)
    from .repeats import open_repeats, secret_of  # imported here: it builds on this module (CallContext)

    runtime.repeats, runtime.repeat_secret = open_repeats(settings, runtime.clock, redis, replica), secret_of(settings)
    try:
        async with anyio.create_task_group() as tg:
            await runtime.repeats.serve(tg)
            await runtime.jobs.serve(tg)
            try:
                yield runtime
            finally:
                with anyio.CancelScope(shield=True):
                    await runtime.jobs.release()
                tg.cancel_scope.cancel()
    finally:
        await runtime.repeats.aclose()
        await store.aclose()
        if runtime.tenants is not None:
            await runtime.tenants.aclose()
        await client.aclose()
        if redis is not None:
            await redis.aclose()


class LazySandbox(httpx2.AsyncBaseTransport):
    """The embedded sandbox (the backend when no key is set), imported and seeded at the first request: a server
    that only lists its tools never pays for it (~50 ms of a cold start). `sandbox`: it, once built."""

    def __init__(self) -> None:
        self.sandbox: Any = None
        self._transport: httpx2.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._transport is None:
            from .sandbox import Sandbox  # imported here: only the sandbox backend needs it (start-up time)

            self.sandbox = Sandbox(base_url=SANDBOX_URL, keep_log=SANDBOX_LOG)
            self._transport = self.sandbox.transport()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class CallContext:
    """One tool call: the runtime plus the MCP request (for progress, logs and questions to the user)."""

    def __init__(self, runtime: Runtime, request: Any = None, params: Any = None) -> None:
        self.runtime = runtime
        self.request = request  # the SDK's ServerRequestContext (None when called outside MCP)
        self.params = params  # the tools/call params (input_responses on a modern retry)
        self.started = anyio.current_time() if request is not None else 0.0
        self.job_id: str | None = None  # the durable job this call started, once it has
        self.awaiting_user = False  # a question to the user is open: the call budget waits for the answer
        self._next_log = runtime.clock() + LOG_EVERY

    @property
    def client(self) -> SystemeClient:
        return self.runtime.client

    @property
    def catalog(self) -> Catalog:
        return self.runtime.catalog

    async def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress if the client asked for it (it sent a progressToken)."""
        if self.request is None:
            return
        message = self._clean(message) if message is not None else None
        await self.request.session.report_progress(done, total=total, message=message)  # no-op without a token

    def _clean(self, message: str) -> str:
        """A notification's text as answers are: secrets out first, invisible characters shown, bounded."""
        return cut(visible(self.client.scrub(message)), NOTICE_CHARS)

    def log_due(self) -> bool:
        """Whether long work should log how far it got now: true at most once per `LOG_EVERY` seconds of the
        runtime's clock (the first `LOG_EVERY` after the call began). Answering true claims the moment, so of
        concurrent workers asking at once one logs it: each line once, at a steady interval."""
        now = self.runtime.clock()
        if now < self._next_log:
            return False
        self._next_log = now + LOG_EVERY
        return True

    async def log(self, level: types.LoggingLevel, message: str) -> None:
        """A log message to the client (where the client receives logs) and to stderr."""
        message = self._clean(message)
        log.log(logging.INFO if level in ("info", "notice") else logging.WARNING, message)
        if self.request is None or LEVELS.index(level) < LEVELS.index(self.runtime.log_level):
            return
        try:
            with warnings.catch_warnings():  # logging is deprecated in 2026-07-28, but clients still show it
                warnings.simplefilter("ignore")
                await self.request.session.send_log_message(
                    level, message, logger="systeme_mcp", related_request_id=self.request.request_id
                )
        except Exception:  # a log line must never break a call
            log.debug("client log not delivered", exc_info=True)
