"""Where durable jobs live: the `JobStore` interface, its in-memory implementation, and `open_store(url)`.

A job is a record (what to do, its status, the lease of the runner working on it) and, for work over many
targets, one item per target whose state is written before it is sent (`in_flight`) and after (`settled`, with
its outcome), so a restarted runner never sends a settled item again and knows exactly which ones were in
flight. `SqliteJobStore` (jobstore_sqlite.py) keeps the same records in a file, `RedisJobStore` (jobstore_redis.py)
in the Redis a fleet shares; `tests/test_jobstore.py` runs one suite over each.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

Status = Literal["running", "done", "cancelled", "failed"]
STATUSES: tuple[Status, ...] = ("running", "done", "cancelled", "failed")
FINISHED = ("done", "cancelled", "failed")
ItemState = Literal["pending", "in_flight", "settled"]


def new_job_id() -> str:
    """A job id: short, unguessable, safe in a URI (`systeme://jobs/{id}`)."""
    return "job_" + secrets.token_hex(8)


@dataclass
class Job:
    """One durable job. `args` is what its kind needs to run (JSON); `result` its final report (JSON)."""

    id: str
    kind: str  # the job kind (usually the tool that started it)
    args: dict[str, Any]
    total: int
    created: float  # wall-clock seconds
    status: Status = "running"
    updated: float = 0.0
    owner: str = ""  # the runner holding the lease
    lease_until: float = 0.0
    cancel_requested: bool = False
    result: dict[str, Any] | None = None
    error: str = ""  # why it failed (status failed)
    tenant: str = ""  # whose job it is (a fleet serves many)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass
class Item:
    """One target of a job, in the order given. `outcome` and `reason` are set when it is settled."""

    key: str
    seq: int
    state: ItemState = "pending"
    outcome: str = ""
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class JobStore(Protocol):
    """Durable job records. Every method is safe to call from concurrent tasks of one process; `claim` is
    atomic across processes for stores shared by several."""

    async def create(self, job: Job, keys: list[str]) -> None:
        """Store a new job and its items (all pending)."""

    async def get(self, job_id: str) -> Job | None: ...

    async def save(self, job: Job) -> None:
        """Write the job record back (status, result, cancel flag, lease)."""

    async def jobs(self, status: Status | None = None, limit: int = 50, tenant: str | None = None) -> list[Job]:
        """Jobs, newest first (only `status`, only `tenant`'s, when given)."""

    async def items(self, job_id: str, state: ItemState | None = None, limit: int | None = None) -> list[Item]:
        """A job's items in their order (only those in `state`)."""

    async def mark(
        self,
        job_id: str,
        key: str,
        state: ItemState,
        outcome: str = "",
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Move one item to `state` (settled: with its outcome)."""

    async def counts(self, job_id: str) -> dict[str, int]:
        """How many items are pending, in flight, and settled with each outcome."""

    async def claim(self, job_id: str, owner: str, until: float, now: float) -> bool:
        """Take (or renew) the lease of a running job for `owner` until `until`, if nobody else holds a lease that
        is still valid at `now`. True when `owner` holds it now."""

    async def put_blob(self, name: str, data: bytes) -> None:
        """Keep a job's output (an export's CSV) under `name`."""

    async def get_blob(self, name: str) -> bytes | None: ...

    async def prune(self, now: float, max_age: float, max_count: int) -> int:
        """Delete finished jobs (and their items and outputs) older than `max_age` seconds or beyond the newest
        `max_count`; how many were deleted."""

    async def aclose(self) -> None: ...


class MemoryJobStore:
    """Jobs in this process's memory: gone when it exits (the default with the embedded sandbox)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._items: dict[str, dict[str, Item]] = {}
        self._blobs: dict[str, bytes] = {}

    async def create(self, job: Job, keys: list[str]) -> None:
        self._jobs[job.id] = replace(job)
        self._items[job.id] = {k: Item(key=k, seq=n) for n, k in enumerate(keys)}

    async def get(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return replace(job) if job else None

    async def save(self, job: Job) -> None:
        old = self._jobs.get(job.id)
        if old is not None:  # the cancel flag only ever goes up, as in every store
            self._jobs[job.id] = replace(job, cancel_requested=job.cancel_requested or old.cancel_requested)

    async def jobs(self, status: Status | None = None, limit: int = 50, tenant: str | None = None) -> list[Job]:
        chosen = [
            j
            for j in self._jobs.values()
            if (status is None or j.status == status) and (tenant is None or j.tenant == tenant)
        ]
        chosen.sort(key=lambda j: j.created, reverse=True)
        return [replace(j) for j in chosen[:limit]]

    async def items(self, job_id: str, state: ItemState | None = None, limit: int | None = None) -> list[Item]:
        chosen = [replace(i) for i in self._items.get(job_id, {}).values() if state is None or i.state == state]
        return chosen[:limit] if limit is not None else chosen

    async def mark(
        self,
        job_id: str,
        key: str,
        state: ItemState,
        outcome: str = "",
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        item = self._items[job_id][key]
        item.state, item.outcome, item.reason, item.data = state, outcome, reason, dict(data or {})

    async def counts(self, job_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._items.get(job_id, {}).values():
            name = item.outcome if item.state == "settled" else item.state
            counts[name] = counts.get(name, 0) + 1
        return counts

    async def claim(self, job_id: str, owner: str, until: float, now: float) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.finished or (job.owner not in ("", owner) and job.lease_until > now):
            return False
        job.owner, job.lease_until = owner, until
        return True

    async def put_blob(self, name: str, data: bytes) -> None:
        self._blobs[name] = data

    async def get_blob(self, name: str) -> bytes | None:
        return self._blobs.get(name)

    async def prune(self, now: float, max_age: float, max_count: int) -> int:
        finished = sorted((j for j in self._jobs.values() if j.finished), key=lambda j: j.created, reverse=True)
        doomed = [j.id for n, j in enumerate(finished) if n >= max_count or now - (j.updated or j.created) > max_age]
        for job_id in doomed:
            del self._jobs[job_id]
            self._items.pop(job_id, None)
            for name in [b for b in self._blobs if b.startswith(job_id)]:
                del self._blobs[name]
        return len(doomed)

    async def aclose(self) -> None:
        return None


def default_state_dir() -> Path:
    """Where this user's durable state goes: $XDG_STATE_HOME/systeme-mcp, else ~/.local/state/systeme-mcp."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "systeme-mcp"


def redact(url: str) -> str:
    """`url` with any password replaced by `***`: what may be shown or logged of a store URL (a pattern, not a URL
    parser, so a malformed URL is redacted too; it may hide more than the password, never less)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^@]*@", r"\1***@", url)


STORE_FORMS = (
    "`memory`, `sqlite:///ABSOLUTE/PATH` or `redis://[:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME]` (TLS: rediss://)"
)


def _redis_url_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    namespace = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "namespace"]
    return (
        bool(parts.hostname)
        and re.fullmatch(r"/?|/\d+", parts.path) is not None
        and all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in namespace)
        and len(namespace) <= 1
    )


def parse_store_url(url: str) -> tuple[str, str]:
    """(`memory`, ""), (`sqlite`, path) or (`redis`, url) from `memory` / `sqlite:///PATH` / `redis://…` (or
    `rediss://…`); ValueError naming what is allowed (never the URL's password)."""
    if url == "memory":
        return "memory", ""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        # an absolute path, as in file:/// URLs: never relative to the directory a client starts us in
        path = url.removeprefix("sqlite://")
        return "sqlite", path[1:] if re.match(r"/[A-Za-z]:[/\\]", path) else path  # /C:/x on Windows → C:/x
    if url.startswith(("redis://", "rediss://")) and _redis_url_ok(url):
        return "redis", url
    raise ValueError(f"SYSTEME_STORE must be {STORE_FORMS} (got {redact(url)!r})")


def open_store(url: str, *, redis: Any = None) -> JobStore:
    """The store `url` names (see `parse_store_url`); a Redis one through `redis`, the process's redis-py client
    (jobstore_redis.connect), when given."""
    kind, path = parse_store_url(url)
    if kind == "memory":
        return MemoryJobStore()
    if kind == "redis":
        from .jobstore_redis import RedisJobStore  # imported here: redis-py is loaded only when a fleet uses Redis

        return RedisJobStore(path, redis)
    from .jobstore_sqlite import SqliteJobStore  # imported here: sqlite3 is only loaded when a file store is used

    return SqliteJobStore(Path(path))
