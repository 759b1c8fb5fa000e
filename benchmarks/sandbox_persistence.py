"""Sandbox writes/s with a `--state` file at ~3,300 contacts: the old JSON rewrite against the SQLite rows.

    .venv/bin/python benchmarks/sandbox_persistence.py [--seconds 3] [--contacts 3300]

Grows the seeded account to N contacts, then sends sequential writes through the in-process transport (one
client, rate limit off) and prints writes/s for three kinds of write, three ways:

- "JSON rewrite": what the sandbox did before the SQLite state file: after every write, the whole state
  dumped to a temp JSON file renamed over the state file (the old `Store.save`, reproduced here over the same
  `Store.to_json()`);
- "SQLite rows": the state file today (the rows the write changed, one WAL transaction);
- "no state file": the same writes without persistence, for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx2
from sandbox_throughput import requests_per_second

from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.store import Contact, Store

KEY = {"X-API-Key": "bench"}
MERGE = {"Content-Type": "application/merge-patch+json"}


def json_rewrite(store: Store, path: Path) -> None:
    """The old persistence, after every write: the whole state to a temp file, renamed over the state file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sandbox-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(store.to_json(), handle, separators=(",", ":"))
    os.replace(tmp, path)


def grow(sb: Sandbox, contacts: int) -> None:
    s = sb.store
    while len(s.contacts) < contacts:
        c = Contact(s.next_id("contacts"), f"grown{len(s.contacts)}@acme.test", 1704067200.0)
        c.fields = {"first_name": "Grown", "surname": f"Contact {c.id}"}
        s.contacts[c.id] = c
    sb.persist()


async def measure(seconds: float, call: Callable[[int], Coroutine[Any, Any, httpx2.Response]]) -> float:
    return (await requests_per_second(seconds, call, warm_up=5))[0]


async def run(sb: Sandbox, seconds: float, n: int) -> list[float]:
    run_id = time.time_ns()
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        writes: list[Callable[[int], Coroutine[Any, Any, httpx2.Response]]] = [
            lambda i: c.patch(f"/api/contacts/{i % n + 1}", json={"locale": ("fr", "de")[i % 2]}, headers=MERGE),
            lambda i: c.post("/api/tags", json={"name": f"bench-{run_id}-{i}"}),
            lambda i: c.post("/api/contacts", json={"email": f"bench-{run_id}-{i}@acme.test"}),
        ]
        return [await measure(seconds, write) for write in writes]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    p.add_argument("--contacts", type=int, default=3300)
    args = p.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Sandbox(rate_limit=None)
        grow(old, args.contacts)
        path = Path(tmp) / "state.json"
        old.persist_changes = lambda: json_rewrite(old.store, path)  # type: ignore[method-assign]
        results["JSON rewrite (before)"] = asyncio.run(run(old, args.seconds, args.contacts))
        new = Sandbox(rate_limit=None, state_file=Path(tmp) / "state.sqlite")
        grow(new, args.contacts)
        results["SQLite rows (now)"] = asyncio.run(run(new, args.seconds, args.contacts))
        new.close()
        bare = Sandbox(rate_limit=None)
        grow(bare, args.contacts)
        results["no state file"] = asyncio.run(run(bare, args.seconds, args.contacts))
    print(f"writes/s at {args.contacts:,} contacts, in-process, one client, sequential:")
    print(f"  {'':<24}{'PATCH contact':>15}{'POST tag':>12}{'POST contact':>15}")
    for name, (patch, tag, contact) in results.items():
        print(f"  {name:<24}{patch:>15,.0f}{tag:>12,.0f}{contact:>15,.0f}")


if __name__ == "__main__":
    main()
