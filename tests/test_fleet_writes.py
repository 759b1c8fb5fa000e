"""Exactly once across a fleet (issue 14): 1,000 mixed writes from 16 clients through 3 replicas (each request to
the next live replica, tests/fleet.py), 20% of the sandbox's API requests faulted (5xx, resets and timeouts, before
and after applying), one replica SIGKILLed mid-run. A client makes a call again whenever its answer does not say
it was applied (no answer at all — the balancer's 502 — an `unknown`, a `not_applied`): often through another
replica, which finds the write's identity in Redis (repeats.py). At the end, with the faults off: every write is
in the sandbox exactly once (0 lost, 0 duplicated), and the sandbox's log shows no write applied more often than
asked."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp import Client

from systeme_mcp.sandbox.faults import APPLIED_FIRST

from .fleet import Fleet, open_fleet
from .helpers import sandbox_log

pytestmark = pytest.mark.anyio  # the module runs on one worker (conftest: pytest_xdist_make_scheduler)
CLIENTS, ATTEMPTS, KILL_AT = 16, 12, 300
MIX = {"create_contact": 250, "create_tag": 100, "add_tag_to_contact": 250, "update_contact": 200}
MIX |= {"create_enrollment": 100, "create_membership": 100}  # 1,000 in all
FAULTS = {"rate": 0.2, "kinds": ["500", "502", "503", "reset_before", "reset_after", "timeout", "timeout_after"]}


@pytest.fixture(scope="module")
async def fleet(redis_server: str) -> AsyncIterator[Fleet]:
    store = f"{redis_server}?namespace=writes-{secrets.token_hex(4)}"
    async with open_fleet(store, 3, SYSTEME_TIMEOUT="0.5", SYSTEME_TOOLSETS="all") as running:
        yield running


@dataclass
class Write:
    tool: str
    arguments: dict[str, Any]
    answers: list[str] = field(default_factory=list)

    @property
    def confirmed(self) -> bool:
        return bool(self.answers) and self.answers[-1] in ("applied", "already_applied")


async def pages(api: Any, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 100}
    while True:
        page = (await api.get(path, params=query)).json()
        items += page["items"]
        if not page.get("hasMore"):
            return items
        query["startingAfter"] = page["items"][-1]["id"]


async def plan(fleet: Fleet) -> list[Write]:
    """The 1,000 writes, each of a record of its own (so each has exactly one right end state)."""
    async with fleet.api() as api:
        contacts = [c["id"] for c in await pages(api, "/api/contacts")]
        tags = [(await api.post("/api/tags", json={"name": f"fw base {i}"})).json()["id"] for i in range(5)]
        courses = [c["id"] for c in await pages(api, "/api/school/courses")]
        communities = [c["id"] for c in await pages(api, "/api/community/communities")]
        enrolled = {(e["contact"]["id"], e["course"]["id"]) for e in await pages(api, "/api/school/enrollments")}
        joined = {(m["contact"]["id"], m["community"]["id"]) for m in await pages(api, "/api/community/memberships")}
    pairs = iter([(c, t) for t in tags for c in contacts])
    enrol = iter([(c, k) for k in courses for c in contacts if (c, k) not in enrolled])
    join = iter([(c, k) for k in communities for c in contacts if (c, k) not in joined])
    writes: list[Write] = []
    for n in range(max(MIX.values())):
        for tool, count in MIX.items():
            if n >= count:
                continue
            if tool == "create_contact":
                arguments: dict[str, Any] = {"email": f"fleet.write.{n}@example.com"}
            elif tool == "create_tag":
                arguments = {"name": f"fleet write {n}"}
            elif tool == "add_tag_to_contact":
                contact, tag = next(pairs)
                arguments = {"contact_id": contact, "tag_id": tag}
            elif tool == "update_contact":  # a contact of its own each (there are 300)
                arguments = {"contact_id": contacts[n], "first_name": f"Fleet{n}"}
            elif tool == "create_enrollment":
                contact, course = next(enrol)
                arguments = {"course_id": course, "contact_id": contact, "access_type": "full_access"}
            else:
                contact, community = next(join)
                arguments = {"community_id": community, "contact_id": contact}
            writes.append(Write(tool, arguments))
    assert len(writes) == sum(MIX.values()) == 1000
    return writes


async def test_a_thousand_writes_with_faults_and_a_replica_killed_are_each_applied_once(fleet: Fleet) -> None:
    writes = await plan(fleet)
    seen_before = len(await sandbox_log(fleet.sandbox_url))
    queue, done, killed = list(reversed(writes)), [0], anyio.Event()
    await fleet.admin("POST", "/faults", {**FAULTS, "seed": 14, "timeout_seconds": 1.0})

    async def worker(client: Client) -> None:
        while queue:
            write = queue.pop()
            for _ in range(ATTEMPTS):
                try:
                    result = await client.call_tool(write.tool, write.arguments)
                    write.answers.append(str((result.structured_content or {}).get("outcome", "unstated")))
                except Exception as exc:  # no answer: the replica died under the call, or the balancer's 502
                    write.answers.append(f"no answer ({type(exc).__name__})")
                if write.confirmed:
                    break
            done[0] += 1
            if done[0] == KILL_AT and not killed.is_set():
                killed.set()
                fleet.kill(1)  # mid-run: its calls in flight lose their answers

    with anyio.fail_after(240):
        async with fleet.client() as probe:
            assert probe.protocol_version == "2026-07-28"
        clients = [fleet.client() for _ in range(CLIENTS)]
        async with anyio.create_task_group() as tg:
            for cm in clients:

                async def run(cm: Any = cm) -> None:
                    async with cm as client:
                        await worker(client)

                tg.start_soon(run)
    await fleet.admin("DELETE", "/faults")
    lost = [(w.tool, w.arguments, w.answers) for w in writes if not w.confirmed]
    assert killed.is_set() and not lost, lost[:5]
    log = (await sandbox_log(fleet.sandbox_url))[seen_before:]
    assert sum(r["fault"] is not None for r in log) >= 0.15 * len(log)  # the faults did fire
    async with fleet.api() as api:
        await check_state(api, writes)
    applied = Counter(
        kind_of(r["path"])
        for r in log
        if r["method"] == "POST"
        and (((r["status"] or 0) // 100 == 2 and not r["fault"]) or r["fault"] in APPLIED_FIRST)
    )
    # each create applied exactly once (adding a tag is idempotent, and a membership is queued — 202 — and shows
    # only after a delay, so each may be sent again after its answer was lost; their end state is checked above)
    made = {"contacts": "create_contact", "tags": "create_tag", "enrollments": "create_enrollment"}
    assert {kind: applied[kind] for kind in made} == {kind: MIX[tool] for kind, tool in made.items()}, applied
    answers = Counter(a.split(" (")[0] for w in writes for a in w.answers)
    print(f"\nfleet writes: {len(log)} API requests, {sum(r['fault'] is not None for r in log)} faulted; {answers}")


def was_applied(record: dict[str, Any]) -> bool:
    """Whether a request in the sandbox's log changed the account: answered 2xx, or faulted after applying."""
    answered = (record["status"] or 0) // 100 == 2 and not record["fault"]
    return answered or record["fault"] in APPLIED_FIRST


def kind_of(path: str) -> str:
    """What a POST path writes: contacts, tags, a contact's tags, enrollments, memberships."""
    if path.startswith("/api/contacts/"):
        return "contact tags"  # POST /api/contacts/{id}/tags
    return path.rsplit("/", 1)[-1]


async def check_state(api: Any, writes: list[Write]) -> None:
    """Each write's record is in the sandbox exactly once, as asked."""
    contacts = {c["id"]: c for c in await pages(api, "/api/contacts")}
    emails = Counter(c["email"] for c in contacts.values())
    names = Counter(t["name"] for t in await pages(api, "/api/tags"))
    enrolled = Counter((e["contact"]["id"], e["course"]["id"]) for e in await pages(api, "/api/school/enrollments"))
    joined = Counter((m["contact"]["id"], m["community"]["id"]) for m in await pages(api, "/api/community/memberships"))

    def copies(w: Write) -> int:
        a = w.arguments
        match w.tool:
            case "create_contact":
                return emails[a["email"]]
            case "create_tag":
                return names[a["name"]]
            case "add_tag_to_contact":
                return [t["id"] for t in contacts[a["contact_id"]]["tags"]].count(a["tag_id"])
            case "update_contact":
                values = {f["slug"]: f["value"] for f in contacts[a["contact_id"]]["fields"]}
                return int(values.get("first_name") == a["first_name"])
            case "create_enrollment":
                return enrolled[(a["contact_id"], a["course_id"])]
            case _:
                return joined[(a["contact_id"], a["community_id"])]

    wrong = [(w.tool, w.arguments, n) for w in writes if (n := copies(w)) != 1]
    assert not wrong, wrong[:10]
