"""`SqliteJobStore`: job records in one SQLite file (stdlib sqlite3), the default store with a real account.

WAL mode with `synchronous=NORMAL`: a committed write survives the process being killed (SIGKILL) — what a job
needs, as each item's state is committed before and after it is sent. The statements are sub-millisecond
single-row writes, so they run on the event loop's thread rather than paying a thread hop per item.
Several processes may share the file: `claim` is one conditional UPDATE, so only one holds a job's lease.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from .jobstore import Item, ItemState, Job, Status

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, owner TEXT NOT NULL, lease_until REAL NOT NULL,
    cancel INTEGER NOT NULL, total INTEGER NOT NULL, args TEXT NOT NULL, result TEXT, error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, key)
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (job_id, state, seq);
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, job_id TEXT NOT NULL, data BLOB NOT NULL);
"""
JOB_COLUMNS = "id, tenant, kind, status, created, updated, owner, lease_until, cancel, total, args, result, error"


def _job(row: tuple[Any, ...]) -> Job:
    job_id, tenant, kind, status, created, updated, owner, lease_until, cancel, total, args, result, error = row
    return Job(
        id=job_id,
        kind=kind,
        args=json.loads(args),
        total=total,
        created=created,
        status=status,
        updated=updated,
        owner=owner,
        lease_until=lease_until,
        cancel_requested=bool(cancel),
        result=json.loads(result) if result else None,
        error=error,
        tenant=tenant,
    )


class SqliteJobStore:
    """Jobs in an SQLite file, created (with its directory, private to the user) when missing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # jobs hold account data: readable by the user only
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    async def create(self, job: Job, keys: list[str]) -> None:
        with self._db:  # one transaction: a job is stored with all its items or not at all
            self._db.execute("BEGIN")
            self._db.execute(
                f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.tenant,
                    job.kind,
                    job.status,
                    job.created,
                    job.updated or job.created,
                    job.owner,
                    job.lease_until,
                    int(job.cancel_requested),
                    job.total,
                    json.dumps(job.args),
                    json.dumps(job.result) if job.result is not None else None,
                    job.error,
                ),
            )
            self._db.executemany(
                "INSERT INTO items (job_id, key, seq, state, outcome, reason, data) "
                "VALUES (?, ?, ?, 'pending', '', '', '{}')",
                [(job.id, key, n) for n, key in enumerate(keys)],
            )

    async def get(self, job_id: str) -> Job | None:
        row = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    async def save(self, job: Job) -> None:
        # the cancel flag only ever goes up: a runner's save never undoes a cancel asked for meanwhile
        self._write(
            "UPDATE jobs SET status = ?, updated = ?, owner = ?, lease_until = ?, cancel = MAX(cancel, ?), "
            "result = ?, error = ? WHERE id = ?",
            (
                job.status,
                job.updated,
                job.owner,
                job.lease_until,
                int(job.cancel_requested),
                json.dumps(job.result) if job.result is not None else None,
                job.error,
                job.id,
            ),
        )

    async def jobs(self, status: Status | None = None, limit: int = 50, tenant: str | None = None) -> list[Job]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if tenant is not None:
            where.append("tenant = ?")
            params.append(tenant)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs {clause} ORDER BY created DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [_job(r) for r in rows]

    async def items(self, job_id: str, state: ItemState | None = None, limit: int | None = None) -> list[Item]:
        sql = "SELECT key, seq, state, outcome, reason, data FROM items WHERE job_id = ?"
        params: list[Any] = [job_id]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        sql += " ORDER BY seq LIMIT ?"
        params.append(-1 if limit is None else limit)
        rows = self._db.execute(sql, params).fetchall()
        return [Item(key=k, seq=s, state=st, outcome=o, reason=r, data=json.loads(d)) for k, s, st, o, r, d in rows]

    async def mark(
        self,
        job_id: str,
        key: str,
        state: ItemState,
        outcome: str = "",
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        self._write(
            "UPDATE items SET state = ?, outcome = ?, reason = ?, data = ? WHERE job_id = ? AND key = ?",
            (state, outcome, reason, json.dumps(data or {}), job_id, key),
        )

    async def counts(self, job_id: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT CASE state WHEN 'settled' THEN outcome ELSE state END, COUNT(*) FROM items WHERE job_id = ? "
            "GROUP BY 1",
            (job_id,),
        ).fetchall()
        return {name: n for name, n in rows}

    async def claim(self, job_id: str, owner: str, until: float, now: float) -> bool:
        return (
            self._write(
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ? AND status = 'running' "
                "AND (owner IN ('', ?) OR lease_until <= ?)",
                (owner, until, job_id, owner, now),
            )
            == 1
        )

    async def put_blob(self, name: str, data: bytes) -> None:
        job_id = name.split(".", 1)[0].split("/", 1)[0]
        self._write("INSERT OR REPLACE INTO blobs (name, job_id, data) VALUES (?, ?, ?)", (name, job_id, data))

    async def get_blob(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT data FROM blobs WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    async def prune(self, now: float, max_age: float, max_count: int) -> int:
        rows = self._db.execute(
            "SELECT id, created, updated FROM jobs WHERE status != 'running' ORDER BY created DESC"
        ).fetchall()
        doomed = [
            (i,)
            for n, (i, created, updated) in enumerate(rows)
            if n >= max_count or now - (updated or created) > max_age
        ]
        if doomed:
            with self._db:
                self._db.execute("BEGIN")
                for table, column in (("items", "job_id"), ("blobs", "job_id"), ("jobs", "id")):
                    self._db.executemany(f"DELETE FROM {table} WHERE {column} = ?", doomed)
        return len(doomed)

    async def aclose(self) -> None:
        self._db.close()
