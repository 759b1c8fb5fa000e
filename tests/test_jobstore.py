"""One suite for every JobStore implementation (memory, SQLite, a fleet's Redis on a real redis-server): records,
items before/after they are sent, counts, leases, the monotonic cancel flag, outputs and retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from systeme_mcp.jobstore import Job, JobStore, MemoryJobStore, new_job_id, open_store, parse_store_url
from systeme_mcp.jobstore_sqlite import SqliteJobStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    made: JobStore
    if request.param == "redis":
        made = open_store(request.getfixturevalue("redis_url"))  # the Redis server starts only for these
    else:
        made = MemoryJobStore() if request.param == "memory" else SqliteJobStore(tmp_path / "s" / "jobs.db")
    yield made
    await made.aclose()


def job(created: float = 100.0, **changes: object) -> Job:
    return Job(id=new_job_id(), kind="bulk_add_tag", args={"tag_id": 3}, total=3, created=created, **changes)  # type: ignore[arg-type]


async def test_a_job_and_its_items_round_trip(store: JobStore) -> None:
    j = job()
    await store.create(j, ["1", "2", "3"])
    got = await store.get(j.id)
    assert got is not None and got.args == {"tag_id": 3} and got.status == "running" and got.total == 3
    assert [i.key for i in await store.items(j.id)] == ["1", "2", "3"]
    await store.mark(j.id, "2", "in_flight")
    await store.mark(j.id, "1", "settled", "changed")
    await store.mark(j.id, "3", "settled", "failed", "tag not found", {"id": 3})
    assert await store.counts(j.id) == {"changed": 1, "failed": 1, "in_flight": 1}
    assert [i.key for i in await store.items(j.id, "in_flight")] == ["2"]
    assert [i.key for i in await store.items(j.id, "pending")] == []  # an item is in one state at a time
    assert [i.key for i in await store.items(j.id, "settled")] == ["1", "3"]
    assert [i.key for i in await store.items(j.id, "settled", limit=1)] == ["1"]
    assert [i.key for i in await store.items(j.id, limit=2)] == ["1", "2"]
    (failed,) = [i for i in await store.items(j.id) if i.outcome == "failed"]
    assert (failed.reason, failed.data) == ("tag not found", {"id": 3})
    assert await store.get("job_0000000000000000") is None


async def test_jobs_are_listed_newest_first_and_by_status(store: JobStore) -> None:
    old, new = job(created=1.0), job(created=2.0, status="done")
    for j in (old, new):
        await store.create(j, [])
    assert [j.id for j in await store.jobs()] == [new.id, old.id]
    assert [j.id for j in await store.jobs("running")] == [old.id]
    assert [j.id for j in await store.jobs(limit=1)] == [new.id]
    old.status = "failed"
    await store.save(old)  # a job moves between the lists as its status changes
    assert [j.id for j in await store.jobs("running")] == []
    assert [j.id for j in await store.jobs("failed")] == [old.id]


async def test_jobs_are_listed_by_tenant(store: JobStore) -> None:
    mine, theirs, mine_done = job(1.0, tenant="a"), job(2.0, tenant="b"), job(3.0, tenant="a", status="done")
    for j in (mine, theirs, mine_done):
        await store.create(j, [])
    assert [j.id for j in await store.jobs(tenant="a")] == [mine_done.id, mine.id]
    assert [j.id for j in await store.jobs("running", tenant="a")] == [mine.id]
    assert [j.id for j in await store.jobs("done", tenant="b")] == []
    got = await store.get(theirs.id)
    assert got is not None and got.tenant == "b"


async def test_a_lease_is_held_by_one_runner_until_it_expires(store: JobStore) -> None:
    j = job()
    await store.create(j, [])
    assert await store.claim(j.id, "a", until=110, now=100)
    assert not await store.claim(j.id, "b", until=115, now=105)  # a holds it
    assert await store.claim(j.id, "a", until=120, now=105)  # renewal
    assert await store.claim(j.id, "b", until=130, now=121)  # a's lease ran out
    j2 = await store.get(j.id)
    assert j2 is not None and j2.owner == "b"
    j2.status = "done"
    await store.save(j2)
    assert not await store.claim(j.id, "c", until=200, now=190)  # finished jobs are not claimed


async def test_the_cancel_flag_only_goes_up(store: JobStore) -> None:
    j = job()
    await store.create(j, [])
    stale = await store.get(j.id)
    asked = await store.get(j.id)
    assert stale is not None and asked is not None
    asked.cancel_requested = True
    await store.save(asked)
    stale.result = {"text": "progress"}
    await store.save(stale)  # a runner saving its older copy does not undo the cancel
    final = await store.get(j.id)
    assert final is not None and final.cancel_requested and final.result == {"text": "progress"}


async def test_outputs_and_retention(store: JobStore) -> None:
    finished = [job(created=float(n), status="done", updated=float(n)) for n in range(5)]
    running = job(created=0.0)
    for j in [*finished, running]:
        await store.create(j, ["1"])
        await store.put_blob(f"{j.id}.csv", b"id\r\n1\r\n")
    assert await store.get_blob(f"{finished[0].id}.csv") == b"id\r\n1\r\n"
    assert await store.prune(now=10.0, max_age=100.0, max_count=3) == 2  # the two oldest finished ones
    assert await store.get(finished[0].id) is None and await store.get_blob(f"{finished[0].id}.csv") is None
    assert await store.items(finished[0].id) == []
    assert await store.prune(now=1000.0, max_age=100.0, max_count=3) == 3  # all too old now
    assert [j.id for j in await store.jobs()] == [running.id]  # a running job is never pruned


async def test_an_sqlite_store_is_durable_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first = SqliteJobStore(path)
    j = job()
    await first.create(j, ["1", "2"])
    await first.mark(j.id, "1", "settled", "changed")
    await first.aclose()
    second = open_store(f"sqlite://{path}")
    assert await second.counts(j.id) == {"changed": 1, "pending": 1}
    await second.aclose()


def test_store_urls_are_checked() -> None:
    assert parse_store_url("memory") == ("memory", "")
    assert parse_store_url("sqlite:///var/lib/jobs.db") == ("sqlite", "/var/lib/jobs.db")
    assert parse_store_url("sqlite:///C:/jobs.db") == ("sqlite", "C:/jobs.db")
    for good in ("redis://localhost:6379/0", "rediss://:pw@redis.internal:6380/2?namespace=fleet-1", "redis://r"):
        assert parse_store_url(good) == ("redis", good)
    for bad in ("sqlite://", "sqlite:///", "redis://", "redis://x/db", "redis://x:port", "redis://x?namespace=a:b"):
        with pytest.raises(ValueError, match="SYSTEME_STORE"):
            parse_store_url(bad)
    for bad in ("jobs.db", "", "postgres://x"):
        with pytest.raises(ValueError, match="redis://"):  # the message lists the three forms
            parse_store_url(bad)
    with pytest.raises(ValueError) as caught:
        parse_store_url("redis://:hunter2@x/db")
    assert "hunter2" not in str(caught.value) and ":***@x" in str(caught.value)  # never the password


def test_the_store_setting_is_checked_at_start() -> None:
    from pydantic import ValidationError

    from systeme_mcp.config import Settings

    with pytest.raises(ValidationError, match="SYSTEME_STORE"):
        Settings(store="postgres://x")
    assert Settings().store_url == "memory"  # the embedded sandbox
    real = Settings(systeme_api_key="k" * 20).store_url
    assert real.startswith("sqlite:///") and real.endswith("/systeme-mcp/jobs.sqlite3")


def test_an_sqlite_store_is_private_to_its_user(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "new" / "jobs.db")
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert (store.path.parent.stat().st_mode & 0o777) == 0o700
