"""An identical write made again (a client's retry, through the same server or another replica) never applies
twice (repeats.py): answered from the first call's result within SYSTEME_REPEAT_WINDOW, waited for while the first
is in flight, read back while it is in doubt; forgotten when a later write touches the same records.

Every claimed operation of the catalog is repeated after its happy-path case; the fleet cases run two runtimes
(replicas) over one real Redis and one sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
import redis.asyncio as aioredis
from mcp import Client

from systeme_mcp.catalog import load_catalog
from systeme_mcp.jobstore_redis import split_url
from systeme_mcp.repeats_redis import RedisRepeats
from systeme_mcp.runtime import Runtime, open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.write_identity import claimed, identity

from .cases import CASES
from .conftest import sandbox_settings
from .helpers import Gate, RawApi, VirtualClock, text
from .processes import free_port

pytestmark = pytest.mark.anyio
CLAIMED = [op.name for op in load_catalog() if claimed(op)]
SECRET = "repeat-test-state-secret-0123456789abcdef"


def outcome(result: Any) -> Any:
    return (result.structured_content or {}).get("outcome")


def error_kind(result: Any) -> Any:
    return ((result.structured_content or {}).get("error") or {}).get("kind")


def posts(sandbox: Any, suffix: str) -> int:
    return sum(r.method == "POST" and r.path.endswith(suffix) for r in sandbox.requests)


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return {"twilio_connected": True}


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["all"]}


@pytest.fixture
async def mcp(runtime: Runtime) -> AsyncIterator[Client]:
    async with Client(create_server(runtime), cache=None) as client:
        yield client


class Recording:
    """The client as a case sees it; keeps every call with its answer."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[tuple[str, dict[str, Any], Any]] = []

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None, **options: Any) -> Any:
        result = await self.client.call_tool(name, arguments, **options)
        self.calls.append((name, dict(arguments or {}), result))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.parametrize("tool", CLAIMED)
async def test_an_identical_repeat_is_answered_from_the_first_and_not_sent(
    tool: str, mcp: Client, api: RawApi, sandbox: Any
) -> None:
    recording = Recording(mcp)
    await CASES[tool](recording, api)
    applied = [(args, r) for name, args, r in recording.calls if name == tool and outcome(r) == "applied"]
    assert applied, f"the case of {tool} has no applied call to repeat"
    arguments, first = applied[-1]
    before = len(sandbox.requests)
    again = await mcp.call_tool(tool, arguments)
    assert outcome(again) == "already_applied", text(again)
    assert len(sandbox.requests) == before, "a repeat reached the API"
    assert (again.structured_content or {}).get("item") == (first.structured_content or {}).get("item")


async def test_a_later_write_to_the_same_record_makes_the_repeat_new(mcp: Client, sandbox: Any) -> None:
    first = await mcp.call_tool("create_tag", {"name": "Repeat VIP"})
    tag_id = (first.structured_content or {})["item"]["id"]
    deleted = await mcp.call_tool("delete_tag", {"tag_id": tag_id})
    assert outcome(deleted) == "applied"
    again = await mcp.call_tool("create_tag", {"name": "Repeat VIP"})
    assert outcome(again) == "applied" and (again.structured_content or {})["item"]["id"] != tag_id
    assert posts(sandbox, "/api/tags") == 2
    # the same for a set: add, remove, add again
    pair = {"contact_id": next(iter(sandbox.store.contacts)), "tag_id": (again.structured_content or {})["item"]["id"]}
    for tool, expected in (("add_tag_to_contact", "applied"), ("remove_tag_from_contact", "applied")):
        assert outcome(await mcp.call_tool(tool, pair)) == expected
    assert outcome(await mcp.call_tool("add_tag_to_contact", pair)) == "applied"
    assert pair["tag_id"] in sandbox.store.contacts[pair["contact_id"]].tag_ids


async def test_the_window_ends(mcp: Client, runtime: Runtime, sandbox: Any) -> None:
    before = len(sandbox.store.connections)
    assert outcome(await mcp.call_tool("create_connection", {"app": "systeme"})) == "applied"
    assert outcome(await mcp.call_tool("create_connection", {"app": "systeme"})) == "already_applied"
    assert isinstance(runtime.clock, VirtualClock)
    await runtime.clock.sleep(runtime.settings.repeat_window + 1)
    assert outcome(await mcp.call_tool("create_connection", {"app": "systeme"})) == "applied"
    assert len(sandbox.store.connections) == before + 2


@pytest.mark.parametrize("runtime", [{"repeat_window": 0}], indirect=True)
async def test_a_window_of_zero_turns_it_off(mcp: Client, sandbox: Any) -> None:
    before = len(sandbox.store.connections)
    for _ in range(2):
        assert outcome(await mcp.call_tool("create_connection", {"app": "systeme"})) == "applied"
    assert len(sandbox.store.connections) == before + 2


async def test_a_repeat_of_a_write_in_doubt_is_not_sent(mcp: Client, sandbox: Any) -> None:
    from .test_exactly_once import fault

    before = len(sandbox.store.connections)
    fault(sandbox, "reset_after", "POST /connections")  # applied, its answer lost: no read-back can tell
    assert outcome(await mcp.call_tool("create_connection", {"app": "systeme"})) == "unknown"
    again = await mcp.call_tool("create_connection", {"app": "systeme"})
    assert outcome(again) == "unknown" and error_kind(again) == "in_doubt"
    assert posts(sandbox, "/connections") == 1 and len(sandbox.store.connections) == before + 1
    assert 'list_connections(status="PENDING")' in text(again)  # how to check, from the declaration


def tag_creates(request: httpx2.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/api/tags")


async def race(first: Client, second: Client, gate: Gate, watched: Runtime, name: str) -> list[Any]:
    """`first` creates tag `name`, held at `gate`; then `second` makes the identical call, on `watched`'s server:
    the answers, once `second` was told the identical call is in flight and the gate opened."""
    busy, claim = anyio.Event(), watched.repeats.claim

    async def spied(write: Any, holds_for: float) -> Any:
        found = await claim(write, holds_for)
        if found.seen == "busy":
            busy.set()
        return found

    watched.repeats.claim = spied
    answers: list[Any] = []

    async def call(client: Client) -> None:
        answers.append(await client.call_tool("create_tag", {"name": name}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, first)
        await gate.arrived.wait()
        tg.start_soon(call, second)
        with anyio.fail_after(10):
            await busy.wait()
        assert gate.held == 1 and not answers  # the second waits, sending nothing
        gate.opened.set()
    return answers


async def test_an_identical_call_in_flight_is_waited_for(sandbox: Any) -> None:
    gate, clock = Gate(sandbox.transport(), tag_creates), VirtualClock()
    async with (
        open_runtime(sandbox_settings(), sandbox=sandbox, transport=gate, clock=clock) as runtime,
        Client(create_server(runtime), cache=None) as one,
        Client(create_server(runtime), cache=None) as two,
    ):
        answers = await race(one, two, gate, runtime, "In flight")
    assert sorted(outcome(a) for a in answers) == ["already_applied", "applied"]
    assert len({a.structured_content["item"]["id"] for a in answers}) == 1
    assert posts(sandbox, "/api/tags") == 1


# ---------------------------------------------------------------- a fleet: two replicas over one Redis
def fleet_settings(redis_url: str, **overrides: Any) -> Any:
    return sandbox_settings(store=redis_url, state_secret=SECRET, toolsets=["all"], **overrides)


Replicas = tuple[Client, Client, Gate, Runtime]


@pytest.fixture
async def replicas(sandbox: Any, redis_url: str) -> AsyncIterator[Replicas]:
    gate = Gate(sandbox.transport(), tag_creates)
    settings = fleet_settings(redis_url)
    async with (
        open_runtime(settings, sandbox=sandbox, transport=gate) as a,
        open_runtime(settings, sandbox=sandbox) as b,
        Client(create_server(a), cache=None) as one,
        Client(create_server(b), cache=None) as two,
    ):
        yield one, two, gate, b


async def test_a_retry_through_another_replica_is_answered_from_the_first(replicas: Replicas, sandbox: Any) -> None:
    one, two, gate, _ = replicas
    gate.opened.set()
    first = await one.call_tool("create_contact", {"email": "retry@example.com"})
    again = await two.call_tool("create_contact", {"email": "retry@example.com"})
    assert (outcome(first), outcome(again)) == ("applied", "already_applied")
    assert again.structured_content["item"] == first.structured_content["item"]
    assert posts(sandbox, "/api/contacts") == 1


async def test_a_retry_while_another_replica_sends_it_waits_for_it(replicas: Replicas, sandbox: Any) -> None:
    one, two, gate, b = replicas
    answers = await race(one, two, gate, b, "Two replicas")
    assert sorted(outcome(a) for a in answers) == ["already_applied", "applied"]
    assert posts(sandbox, "/api/tags") == 1


async def test_a_write_of_a_replica_that_died_is_read_back_not_resent(
    replicas: Replicas, sandbox: Any, redis_url: str, api: RawApi
) -> None:
    _, two, gate, _ = replicas
    gate.opened.set()
    catalog, args = load_catalog(), {"name": "Orphaned"}
    settings = fleet_settings(redis_url)
    dead = RedisRepeats(redis_url, settings.repeat_window, replica="dead-replica")
    try:  # a replica claims the write, sends it (here: the raw API) and dies before it records the outcome
        write = identity(SECRET.encode(), settings.account, catalog["create_tag"], args)
        assert (await dead.claim(write, 30.0)).seen == "go"
        await api.post("/api/tags", args)
        redis_client = aioredis.from_url(split_url(redis_url)[0])
        await redis_client.zadd(f"{split_url(redis_url)[1]}alive", {"dead-replica": 0})  # its heartbeat lapsed
        await redis_client.aclose()
    finally:
        await dead.aclose()
    before = posts(sandbox, "/api/tags")
    again = await two.call_tool("create_tag", args)
    assert outcome(again) == "already_applied", text(again)  # found by reading it back
    assert posts(sandbox, "/api/tags") == before
    assert sum(t.name == "Orphaned" for t in sandbox.store.tags.values()) == 1


async def test_nothing_in_redis_names_an_argument_or_the_account(replicas: Replicas, redis_url: str) -> None:
    one, _, gate, _ = replicas
    gate.opened.set()
    hook = {
        "name": "Hook",
        "url": "https://h.example.com/r",
        "secret": "hook-secret-value-xyz",
        "events": ["CONTACT_CREATED"],
    }
    assert outcome(await one.call_tool("create_webhook", hook)) == "applied"
    await one.call_tool("create_contact", {"email": "private.person@example.com"})
    url, prefix = split_url(redis_url)
    redis_client = aioredis.from_url(url, decode_responses=True)
    keys: list[str] = []
    values: list[str] = []
    try:
        async for key in redis_client.scan_iter(f"{prefix}*"):
            if not key.startswith((f"{prefix}once:", f"{prefix}gen:", f"{prefix}alive")):
                continue  # not the repeat store's (the governor's rate keys are tested with it)
            keys.append(key)
            if key.startswith(f"{prefix}once:"):
                values += [str(v) for v in (await redis_client.hgetall(key)).values()]
    finally:
        await redis_client.aclose()
    assert len([k for k in keys if k.startswith(f"{prefix}once:")]) == 2
    blob = "\n".join(keys + values)
    assert "hook-secret-value-xyz" not in blob  # the API never returns it; the identity is a keyed hash
    assert "private.person" not in "\n".join(keys) and fleet_settings(redis_url).account not in blob


async def test_with_redis_down_a_write_is_refused_and_nothing_is_sent(sandbox: Any) -> None:
    port = free_port()  # nothing listens there
    settings = fleet_settings(f"redis://127.0.0.1:{port}/0")
    async with open_runtime(settings, sandbox=sandbox) as runtime, Client(create_server(runtime)) as client:
        result = await client.call_tool("create_tag", {"name": "Never"})
    assert outcome(result) == "not_applied" and error_kind(result) == "write_state_unavailable"
    assert posts(sandbox, "/api/tags") == 0


async def test_the_memory_store_forgets_what_expired() -> None:
    from systeme_mcp.repeats import MemoryRepeats, Seen
    from systeme_mcp.write_identity import Write

    now = [0.0]
    store = MemoryRepeats(10.0, lambda: now[0])
    made = Write("made", "account", ())
    assert (await store.claim(made, 1.0)).seen == Seen.GO
    await store.settle(made, Seen.DONE, ["7"], "applied", {"id": 7})
    assert (await store.claim(made, 1.0)).seen == Seen.DONE
    now[0] = 11.0  # the window ended: sent as new
    assert (await store.claim(made, 1.0)).seen == Seen.GO
    await store.settle(made, Seen.DONE, ["7"], "applied", {"id": 7})
    await store.touch("account", ["7"])  # a later write to record 7 retires it ...
    now[0] = 40.0  # ... and long after, record 7's counter is dropped and starts again from nothing
    for _ in range(3):
        await store.claim(Write("other", "account", ()), 1.0)
        await store.touch("account", ["7"])
    assert not store._marks.get("made"), "an expired result is gone"
    assert len(store._gens) == 1 and len(store._marks) == 1, "expired marks and counters are dropped"


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("-1", "greater than or equal to 0"), ("soon", "valid number"), ("99999", "less than or equal to 3600")],
)
def test_a_bad_repeat_window_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, allowed: str
) -> None:
    from systeme_mcp.cli import load_settings

    monkeypatch.setenv("SYSTEME_REPEAT_WINDOW", value)
    with pytest.raises(SystemExit) as stopped:
        load_settings({})
    message = str(stopped.value)
    assert "SYSTEME_REPEAT_WINDOW" in message and allowed in message and repr(value) in message


@pytest.mark.parametrize("window", [10.0, 0.0])
async def test_the_memory_store_forgets_counters_only_touches_made(window: float) -> None:
    """Writes that claim nothing (idempotent ones; every write, with the window 0) only touch records: their
    counters were kept for the life of the process, as only a claim or a peek dropped any."""
    from systeme_mcp.repeats import MemoryRepeats

    now = [0.0]
    store = MemoryRepeats(window, lambda: now[0])
    for i in range(200):
        now[0] += 1.0
        await store.touch("account", [str(i), f"{i}b"])
    assert store.tracked() <= 2 * (2 * window + max(window / 4, 1.0) + 1)  # the last two windows' records
