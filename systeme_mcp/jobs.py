"""Durable jobs: long work that leaves the request/response cycle and survives a restart.

A job kind (bulk tag, import, export, a call over its budget) runs with a `Work`: the job's record, a call
context with no client request, and `each`, which runs the job's items a few at a time and writes each item's
state to the store before it is sent (`in_flight`) and after (`settled`, with its outcome). The `JobRunner`
(one per process) owns the tasks:
- it holds a lease on every job it runs and renews it; a job whose lease ran out (its runner died) is claimed
  and resumed by whichever runner sees it first: settled items are never sent again, in-flight ones are given
  to the kind as `resumed`, which checks before sending (read back, resend only if absent);
- a cancel (from any process: the flag is in the store) stops a job after its items in flight;
- finished jobs are deleted past the retention age and count;
- job work is paced as background traffic (`pacing.background`), leaving headroom for interactive calls.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .job_work import JobKind, StoreUnavailable, Work
from .jobstore import Job, JobStore, Status, new_job_id
from .pacing import background
from .runtime import CallContext, Runtime

log = logging.getLogger("systeme_mcp.jobs")
NOTIFY_EVERY = 1.0  # seconds between update notifications of one job (subscribers; not its first call)


class JobRunner:
    """Runs this process's share of the jobs in `store` (see the module doc)."""

    def __init__(self, runtime: Runtime, store: JobStore, *, clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.store = store
        self.owner = f"{secrets.token_hex(6)}"  # this process's lease-holder name
        self.kinds: dict[str, JobKind] = {}
        self.cancelling: set[str] = set()
        self.on_update: list[Callable[[str, str], Coroutine[Any, Any, None]]] = []  # (job id, account): it progressed
        self._clock = clock
        self._tg: TaskGroup | None = None
        self._local: dict[str, anyio.CancelScope] = {}
        self._events: dict[str, anyio.Event] = {}
        self._started: dict[str, tuple[float, int]] = {}  # job id → (monotonic start of this run, settled then)
        self._notified: dict[str, float] = {}
        self._accounts: dict[str, str] = {}  # job id → its account, for the jobs running here
        self._ready = anyio.Event()
        self._adopted: set[str] = set()  # jobs that are calls past their budget (adopt)
        self._followers: dict[str, list[CallContext]] = {}  # calls waiting for a job, to log its progress to

    def accounts(self) -> list[str]:
        """The accounts whose jobs this runner may run now: the server's, or (per-request tenancy) each tenant's
        with a client open, i.e. that sent a request lately: a tenant's jobs resume after its next request."""
        tenants = self.runtime.tenants
        return [t.id for t in tenants.live()] if tenants is not None else [self.runtime.settings.account]

    def view(self, account: str) -> Runtime:
        """The runtime a job of `account` runs with (per-request tenancy: its tenant's client)."""
        tenants = self.runtime.tenants
        if tenants is None:
            return self.runtime
        tenant = tenants.get(account)
        if tenant is None:
            raise LookupError("the job's tenant has no client open")
        return self.runtime.for_tenant(tenant)

    async def get(self, job_id: str, account: str) -> Job | None:
        """A job of `account` (`Runtime.account`; another account's job is as good as absent)."""
        job = await self.store.get(job_id)
        return job if job is not None and job.tenant == account else None

    @property
    def lease(self) -> float:
        return self.runtime.settings.job_lease

    # ------------------------------------------------------------------ lifecycle
    async def serve(self, tg: TaskGroup) -> None:
        """Run the maintenance loop in `tg` (resume, renew, prune); jobs run there too."""
        self._tg = tg
        tg.start_soon(self._maintain)

    def activate(self, kinds: dict[str, JobKind]) -> None:
        """Register the job kinds; resuming starts once they are known."""
        self.kinds.update(kinds)
        self._ready.set()

    async def release(self) -> None:
        """Give up this runner's leases (clean shutdown): another runner, or the next start, resumes at once."""
        for job_id in list(self._local):
            job = await self.store.get(job_id)
            if job is not None and job.owner == self.owner and not job.finished:
                job.owner, job.lease_until = "", 0.0
                await self.store.save(job)

    async def _maintain(self) -> None:
        await self._ready.wait()
        while True:
            try:
                await self._round()
            except Exception:  # the store may be briefly unavailable; the next round tries again
                log.warning("job maintenance failed", exc_info=True)
            await anyio.sleep(max(0.2, self.lease / 3))

    async def _round(self) -> None:
        now = self._clock()
        for job_id, scope in list(self._local.items()):
            job = await self.store.get(job_id)
            if job is None or not await self.store.claim(job_id, self.owner, now + self.lease, now):
                log.warning("job %s: lease lost to another runner; stopping here", job_id)
                scope.cancel()
            elif job.cancel_requested and job_id not in self.cancelling:
                self.cancel_locally(job_id)
        for account in self.accounts():
            for job in await self.store.jobs("running", limit=1000, tenant=account):
                orphaned = job.id not in self._local and job.lease_until <= now
                if orphaned and job.kind not in self.kinds and await self.store.claim(job.id, self.owner, now, now):
                    why = f"this server has no {job.kind} any more (another version started it); nothing more was sent"
                    await self.finish(job.id, None, "failed", why)
                elif orphaned and await self.store.claim(job.id, self.owner, now + self.lease, now):
                    log.warning("job %s (%s): resuming", job.id, job.kind)
                    self._launch(job)
        settings = self.runtime.settings
        await self.store.prune(now, settings.job_retention_days * 86400, settings.job_retention_count)

    # ------------------------------------------------------------------ jobs
    async def ready(self) -> None:
        """Raise StoreUnavailable unless the store answers (call it before the first write of work to keep)."""
        try:
            await self.store.jobs(limit=1)
        except Exception as exc:  # any store's failure to answer (sqlite3, redis-py)
            raise StoreUnavailable(exc) from None

    async def start(
        self, kind: str, args: dict[str, Any], keys: list[str], *, account: str, total: int | None = None
    ) -> Job:
        """Store a new job of `account` (its items pending) and start running it here."""
        assert kind in self.kinds, f"unknown job kind {kind}"
        now = self._clock()
        job = Job(
            id=new_job_id(),
            kind=kind,
            args=args,
            total=len(keys) if total is None else total,
            created=now,
            updated=now,
            owner=self.owner,
            lease_until=now + self.lease,
            tenant=account,
        )
        try:
            await self.store.create(job, keys)
        except Exception as exc:  # nothing of the job was sent: say so rather than run it unkept
            raise StoreUnavailable(exc) from None
        self._launch(job)
        return job

    def _launch(self, job: Job) -> None:
        assert self._tg is not None, "the job runner is not serving"
        scope = anyio.CancelScope()
        self._local[job.id], self._accounts[job.id] = scope, job.tenant
        if job.cancel_requested:  # cancelled while no runner held it: resumed only to settle what was in flight
            self.cancelling.add(job.id)
        hold = ExitStack()  # taken now, so the tenant's client stays open until the job has run
        hold.enter_context(self.holding(job.tenant))
        self._tg.start_soon(self._run, job, scope, hold)

    async def _run(self, job: Job, scope: anyio.CancelScope, hold: ExitStack) -> None:
        try:
            self._started[job.id] = (anyio.current_time(), _settled(await self.store.counts(job.id)))
            with scope, background():
                try:
                    result = await self.kinds[job.kind].run(Work(self, job))
                except Exception as exc:
                    log.exception("job %s failed", job.id)
                    await self.finish(job.id, None, "failed", f"internal error ({type(exc).__name__}); report it")
                else:
                    await self.finish(job.id, result, "cancelled" if job.id in self.cancelling else "done")
        finally:
            hold.close()
            self._forget(job.id)

    async def finish(self, job_id: str, result: dict[str, Any] | None, status: Status, error: str = "") -> None:
        """Store a job's end: its report, status and why it failed; the lease given up."""
        with anyio.CancelScope(shield=True):
            job = await self.store.get(job_id)
            if job is None:
                return
            job.status, job.result, job.error = status, result, error
            job.updated, job.owner, job.lease_until = self._clock(), "", 0.0
            await self.store.save(job)

    def _forget(self, job_id: str) -> None:
        self._local.pop(job_id, None)
        self._adopted.discard(job_id)
        self.cancelling.discard(job_id)
        self.touch(job_id, final=True)
        self._accounts.pop(job_id, None)
        self._started.pop(job_id, None)
        self._notified.pop(job_id, None)

    def holding(self, account: str) -> AbstractContextManager[Any]:
        """Keeps the tenant's client open while its job runs (per-request tenancy; else nothing to hold)."""
        tenants = self.runtime.tenants
        tenant = tenants.get(account) if tenants is not None else None
        return tenants.held(tenant) if tenant is not None else nullcontext()

    async def adopt(self, kind: str, args: dict[str, Any], scope: anyio.CancelScope, *, account: str) -> Job:
        """A job record of `account` for work already running here in `scope` (a call past its budget), leased to
        this runner; `finish` it when the work ends, then `release_adopted`."""
        now = self._clock()
        job = Job(new_job_id(), kind, args, 0, now, updated=now, owner=self.owner, lease_until=now + self.lease)
        job.tenant = account
        await self.store.create(job, [])
        self._local[job.id], self._accounts[job.id] = scope, account
        self._adopted.add(job.id)
        self._started[job.id] = (anyio.current_time(), 0)
        return job

    def release_adopted(self, job_id: str) -> None:
        self._forget(job_id)

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `fn` in the runner's task group: it outlives the request that started it."""
        assert self._tg is not None, "the job runner is not serving"
        self._tg.start_soon(fn)

    def cancel_locally(self, job_id: str) -> bool:
        """Stop a job running here after its items in flight; False if it does not run here."""
        if job_id not in self._local:
            return False
        self.cancelling.add(job_id)
        if job_id in self._adopted:  # a call has no items to stop between: it stops now
            self._local[job_id].cancel()
        self.touch(job_id)
        return True

    def runs_here(self, job_id: str) -> bool:
        return job_id in self._local

    # ------------------------------------------------------------------ watching
    def follow(self, job_id: str, ctx: CallContext) -> None:
        """`ctx` (a call waiting for the job) hears how far it got, at the call's steady log interval."""
        self._followers.setdefault(job_id, []).append(ctx)

    def unfollow(self, job_id: str, ctx: CallContext) -> None:
        followers = self._followers.get(job_id, [])
        if ctx in followers:
            followers.remove(ctx)
        if not followers:  # nobody waits for it here any more (a job run elsewhere is never touched here)
            self._followers.pop(job_id, None)
            self._events.pop(job_id, None)

    def tracked(self) -> int:
        """How many jobs this runner keeps any state for (running here, or followed by a call here)."""
        maps = (self._local, self._events, self._started, self._notified, self._accounts, self._followers)
        return len(set().union(*maps, self._adopted, self.cancelling))

    async def log_progress(self, job: Job) -> None:
        """Checked as each item settles, on the runtime's clock, so no interval passes unlogged while a call
        follows the job (`CallContext.log_due`: at most one line per interval)."""
        due = [ctx for ctx in self._followers.get(job.id, []) if ctx.log_due()]
        if due:
            counts = await self.store.counts(job.id)
            done = _settled(counts)
            shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if k not in ("pending", "in_flight"))
            for ctx in due:
                await ctx.log("info", f"{job.kind}: {done}/{job.total} done ({shown})")

    def changed(self, job_id: str) -> anyio.Event:
        """An event set the next time the job progresses here."""
        return self._events.setdefault(job_id, anyio.Event())

    def touch(self, job_id: str, *, final: bool = False) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()
        now, account = anyio.current_time(), self._accounts.get(job_id)
        due = final or now - self._notified.get(job_id, 0) >= NOTIFY_EVERY
        if self.on_update and self._tg is not None and account is not None and due:
            self._notified[job_id] = now
            for callback in self.on_update:
                self._tg.start_soon(callback, job_id, account)

    def rate(self, job_id: str, settled: int) -> float | None:
        """Items per second in this run of a job running here (None when unknown)."""
        started = self._started.get(job_id)
        if started is None:
            return None
        elapsed = anyio.current_time() - started[0]
        done = settled - started[1]
        return done / elapsed if elapsed > 0.5 and done > 0 else None


def _settled(counts: dict[str, int]) -> int:
    return sum(n for state, n in counts.items() if state not in ("pending", "in_flight"))
