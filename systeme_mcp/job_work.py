"""What a job kind runs with (`Work`: the job, a call context without a client request, and the item loop that
stores each item's state before and after it is sent), what an item ends as (`Settled`), the `JobKind`
interface, and `StoreUnavailable`. The runner that owns the tasks is in jobs.py."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .jobstore import Item, Job
from .runtime import CallContext
from .workflow_kit import Refused

if TYPE_CHECKING:
    from .jobs import JobRunner

log = logging.getLogger("systeme_mcp.jobs")


class StoreUnavailable(Refused):
    """The job store cannot be reached: the work cannot be kept durable, so none of it is started."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(
            f"The job store (SYSTEME_STORE) cannot be reached ({type(exc).__name__}), so this work cannot be kept "
            "safe across a restart; nothing was sent. Check the store and make the call again.",
            kind="store_unavailable",
        )


@dataclass(frozen=True)
class Settled:
    """How one item ended: an outcome word the kind chooses (changed, already, failed, …), why, and any data."""

    outcome: str
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


ItemFn = Callable[[Item, bool], Awaitable[Settled]]  # (item, resumed: it was in flight when a runner died)


class JobKind(Protocol):
    """What a kind of job does. `run` returns the job's report: {"text": str, "structured": dict, "error": bool}."""

    async def run(self, work: Work) -> dict[str, Any]: ...


class Work:
    """One run of one job: its record, a context for its calls, and the item loop."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        self.ctx = CallContext(runner.view(job.tenant))

    @property
    def cancelled(self) -> bool:
        return self.job.id in self.runner.cancelling

    async def items(self) -> list[Item]:
        return await self.runner.store.items(self.job.id)

    async def each(self, fn: ItemFn, concurrency: int) -> None:
        """Run `fn` over every unsettled item (those in flight first), `concurrency` at a time, until done or
        cancelled; each item's state is stored before and after."""
        store, job_id = self.runner.store, self.job.id
        queue = deque([*await store.items(job_id, "in_flight"), *await store.items(job_id, "pending")])

        async def worker() -> None:
            # a cancel stops before the next pending item; items that were in flight when a runner died are
            # still settled (checked, sent only if absent), so the report can say what was done
            while queue and (not self.cancelled or queue[0].state == "in_flight"):
                item = queue.popleft()
                resumed = item.state == "in_flight"
                if not resumed:
                    await store.mark(job_id, item.key, "in_flight")
                try:
                    settled = await fn(item, resumed)
                except Exception as exc:  # a bug in one item must not stop the others
                    log.exception("job %s: item %s failed", job_id, item.key)
                    settled = Settled("failed", f"internal error ({type(exc).__name__}); report it")
                await store.mark(job_id, item.key, "settled", settled.outcome, settled.reason, settled.data)
                self.runner.touch(job_id)
                await self.runner.log_progress(self.job)

        async with anyio.create_task_group() as tg:
            for _ in range(max(1, min(concurrency, len(queue)))):
                tg.start_soon(worker)
