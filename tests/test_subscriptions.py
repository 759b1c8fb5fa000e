"""Resource subscriptions through real MCP sessions, in both eras (2025-11-25: resources/subscribe, updates on the
session's own channel; 2026-07-28: subscriptions/listen streams), in memory, over Streamable HTTP and over stdio:
a write through any tool that changes a watched resource announces its URI to the sessions watching it, and only
to them; nothing after unsubscribing; nothing for a write that did not apply.

Absence is checked without waiting: a later update on the same channel (a barrier) is awaited, and everything
sent before it has arrived by then (one channel delivers in order; updates are sent before the tool answers)."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.subscriptions import ResourceUpdated, Subscription

from systeme_mcp import resources
from systeme_mcp.catalog import Catalog
from systeme_mcp.runtime import Runtime
from systeme_mcp.subscriptions import MAX_WATCHED

from .conftest import ERAS
from .helpers import RawApi, session

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
TRANSPORTS = ["memory", "http"]
TAGS, ACCOUNT = "systeme://tags", "systeme://account"


class Updates:
    """The resource URIs one client was told changed, in order of arrival."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    def add(self, uri: str) -> None:
        self.uris.append(uri)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def handler(self, message: Any) -> None:  # a client's message_handler (2025-11-25 sessions)
        if isinstance(message, types.ResourceUpdatedNotification):
            self.add(message.params.uri)

    async def wait_for(self, uri: str, times: int = 1) -> None:
        """Until `uri` has arrived `times` times in all."""
        with anyio.fail_after(10):  # a guard: the update comes at once or never
            while self.uris.count(uri) < times:
                await self._arrived.wait()


async def _pump(sub: Subscription, updates: Updates) -> None:
    async for event in sub:
        if isinstance(event, ResourceUpdated):
            updates.add(event.uri)


@asynccontextmanager
async def watching(client: Client, era: str, updates: Updates, *uris: str) -> AsyncIterator[None]:
    """Watch `uris` for the block: subscribe and unsubscribe after (2025-11-25), or one listen stream (2026-07-28)."""
    if era == "legacy":
        done: list[str] = []
        with warnings.catch_warnings():  # deprecated at 2026-07-28, the way to do it at 2025-11-25
            warnings.simplefilter("ignore")
            try:
                for uri in uris:
                    await client.subscribe_resource(uri)
                    done.append(uri)
                yield
            finally:
                for uri in done:
                    await client.unsubscribe_resource(uri)
        return
    async with client.listen(resource_subscriptions=list(uris)) as sub, anyio.create_task_group() as tg:
        assert sub.honored.resource_subscriptions == list(uris)
        tg.start_soon(_pump, sub, updates)
        yield
        tg.cancel_scope.cancel()


@asynccontextmanager
async def client_of(runtime: Runtime, era: str, transport: str, updates: Updates) -> AsyncIterator[Client]:
    """A session whose updates land in `updates`: from its message handler (2025-11-25), or from the listen
    streams `watching` opens (2026-07-28; the client's message handler sees those too)."""
    options: dict[str, Any] = {"message_handler": updates.handler} if era == "legacy" else {}
    async with session(runtime, era, transport, cache=None, **options) as client:
        yield client


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("era", ERAS)
async def test_a_write_announces_what_it_changed_to_the_watching_session(
    runtime: Runtime, era: str, transport: str, api: RawApi
) -> None:
    updates = Updates()
    async with client_of(runtime, era, transport, updates) as client:
        capability = client.server_capabilities.resources
        assert capability is not None and capability.subscribe is True
        async with watching(client, era, updates, TAGS, ACCOUNT):
            created = await client.call_tool("create_tag", {"name": "watched"})
            assert not created.is_error
            await updates.wait_for(ACCOUNT)
            assert updates.uris == [TAGS, ACCOUNT], "create_tag changes the tag list and the counts, in that order"
            read = await client.read_resource(TAGS)
            assert any(isinstance(c, types.TextResourceContents) and '"watched"' in c.text for c in read.contents)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("era", ERAS)
async def test_nothing_comes_after_unsubscribing(runtime: Runtime, era: str, transport: str) -> None:
    updates = Updates()
    async with client_of(runtime, era, transport, updates) as client:
        async with watching(client, era, updates, TAGS, ACCOUNT):
            pass  # watched, then no more
        async with watching(client, era, updates, ACCOUNT):  # the barrier
            assert not (await client.call_tool("create_tag", {"name": "unwatched"})).is_error
            await updates.wait_for(ACCOUNT)
    assert updates.uris == [ACCOUNT]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("era", ERAS)
async def test_a_sessions_subscriptions_do_not_leak_to_another(
    runtime: Runtime, era: str, transport: str, api: RawApi
) -> None:
    contact = await api.first_id("/api/contacts")
    mine, theirs = Updates(), Updates()
    async with (
        client_of(runtime, era, transport, mine) as me,
        client_of(runtime, era, transport, theirs) as them,
        watching(me, era, mine, TAGS, f"systeme://contacts/{contact}"),
        watching(them, era, theirs, ACCOUNT),
    ):
        assert not (await them.call_tool("create_tag", {"name": "theirs"})).is_error
        await theirs.wait_for(ACCOUNT)
        await mine.wait_for(TAGS)
        assert not (await them.call_tool("update_contact", {"contact_id": contact, "locale": "fr"})).is_error
        await mine.wait_for(f"systeme://contacts/{contact}")  # my barrier: the account update would be before it
    assert mine.uris == [TAGS, f"systeme://contacts/{contact}"]
    assert theirs.uris == [ACCOUNT]


@pytest.mark.parametrize("runtime", [{"toolsets": ["default", "bulk"]}], indirect=True)
@pytest.mark.parametrize("era", ERAS)
async def test_workflow_and_bulk_writes_announce_the_contacts_they_change(
    runtime: Runtime, era: str, api: RawApi
) -> None:
    first, second, third = [c["id"] for c in (await api.get("/api/contacts", limit=10))["items"][:3]]
    tag = await api.post("/api/tags", {"name": "bulk-watched"})
    email = (await api.get(f"/api/contacts/{third}"))["email"]
    uris = [f"systeme://contacts/{i}" for i in (first, second, third)]
    updates = Updates()
    async with client_of(runtime, era, "memory", updates) as client, watching(client, era, updates, *uris):
        bulk = await client.call_tool("bulk_add_tag", {"contact_ids": [first, second], "tag_id": tag["id"]})
        assert not bulk.is_error and bulk.structured_content and bulk.structured_content["counts"]["changed"] == 2
        upsert = await client.call_tool("upsert_contact", {"email": email, "first_name": "Renamed"})
        assert not upsert.is_error
        await updates.wait_for(uris[2])
        assert sorted(updates.uris[:2]) == sorted(uris[:2]) and updates.uris[2:] == [uris[2]]
        # a tag deleted is gone from every contact that had it: every watched contact is told
        deleted = await client.call_tool("delete_tag", {"tag_id": tag["id"], "confirm": True})
        assert not deleted.is_error
        for uri in uris:
            await updates.wait_for(uri, times=2)
    assert sorted(updates.uris[3:]) == sorted(uris)


@pytest.mark.parametrize("era", ERAS)
async def test_a_write_that_did_not_apply_announces_nothing(runtime: Runtime, era: str, api: RawApi) -> None:
    contact = await api.first_id("/api/contacts")
    existing = (await api.get("/api/tags", limit=10))["items"][0]["name"]
    updates = Updates()
    watched = (TAGS, f"systeme://contacts/{contact}")
    async with client_of(runtime, era, "memory", updates) as client, watching(client, era, updates, *watched):
        refused = await client.call_tool("create_tag", {"name": existing})  # names are unique
        assert refused.is_error and refused.structured_content is not None
        assert refused.structured_content["outcome"] == "not_applied"
        assert not (await client.call_tool("update_contact", {"contact_id": contact, "locale": "de"})).is_error
        await updates.wait_for(f"systeme://contacts/{contact}")
    assert updates.uris == [f"systeme://contacts/{contact}"]


@pytest.mark.parametrize("era", ERAS)
async def test_other_news_reaches_watchers_through_notify_updated(runtime: Runtime, era: str) -> None:
    """The hook for code that is not a declared write (jobs): `runtime.subscriptions.notify_updated(uri, account=)`;
    news of another account reaches nobody here."""
    updates = Updates()
    job, other = "systeme://jobs/7", "systeme://jobs/8"
    async with client_of(runtime, era, "memory", updates) as client, watching(client, era, updates, job):
        await runtime.subscriptions.notify_updated(job, account="another account")
        await runtime.subscriptions.notify_updated(other, account=runtime.account)
        await runtime.subscriptions.notify_updated(job, account=runtime.account)
        await updates.wait_for(job)
    assert updates.uris == [job]
    await _forgotten(runtime)
    await runtime.subscriptions.notify_updated(job, account=runtime.account)  # nobody watches: nothing to do or fail


async def _forgotten(runtime: Runtime) -> None:
    """Until nothing is watched any more (a closed stream or session is torn down on the server's side)."""
    with anyio.fail_after(10):
        while runtime.subscriptions.watched():
            await anyio.wait_all_tasks_blocked()  # let the server side run its teardown


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("era", ERAS)
async def test_a_session_that_ends_is_forgotten(runtime: Runtime, era: str, transport: str) -> None:
    """2025-11-25: a session that ends without unsubscribing; 2026-07-28: a listen stream that closes."""
    updates = Updates()
    async with client_of(runtime, era, transport, updates) as client:
        if era == "legacy":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.subscribe_resource(TAGS)
            assert runtime.subscriptions.watched() == {TAGS}
        else:
            async with client.listen(resource_subscriptions=[TAGS]):
                assert runtime.subscriptions.watched() == {TAGS}
            await _forgotten(runtime)
    await _forgotten(runtime)


@pytest.mark.parametrize("era", ERAS)
async def test_subscriptions_are_bounded(runtime: Runtime, era: str) -> None:
    too_many = [f"systeme://contacts/{i}" for i in range(MAX_WATCHED + 1)]
    updates = Updates()
    async with client_of(runtime, era, "memory", updates) as client:
        with pytest.raises(MCPError) as refused:
            async with watching(client, era, updates, *too_many):
                pass
        assert refused.value.error.code == types.INVALID_PARAMS
        with pytest.raises(MCPError) as too_long:
            async with watching(client, era, updates, "systeme://" + "x" * 2_000):
                pass
        assert too_long.value.error.code == types.INVALID_PARAMS
        async with watching(client, era, updates, TAGS):  # the session goes on
            assert not (await client.call_tool("create_tag", {"name": "after the refusals"})).is_error
            await updates.wait_for(TAGS)


@pytest.mark.parametrize("era", ERAS)
async def test_subscriptions_over_stdio(era: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MATON_API_KEY", "SYSTEME_API_KEY")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "systeme_mcp.cli"], env=env)
    updates = Updates()
    with anyio.fail_after(60):
        mode = "legacy" if era == "legacy" else "auto"
        options: dict[str, Any] = {"message_handler": updates.handler} if era == "legacy" else {}
        client = Client(params, mode=mode, cache=None, **options)
        async with client, watching(client, era, updates, TAGS):
            assert not (await client.call_tool("create_tag", {"name": "over stdio"})).is_error
            await updates.wait_for(TAGS)
    assert updates.uris == [TAGS]


# ---------------------------------------------------------------- the declarations
CONTACT = "systeme://contacts/{contact_id}"


def test_every_declared_change_is_a_resource_this_server_serves(catalog: Catalog) -> None:
    served = {f"systeme://{name}" for name in resources.LISTS} | {ACCOUNT}
    for op in catalog:
        for uri in op.changes:
            assert not op.read_only, f"{op.name}: a read changes nothing"
            names = re.findall(r"{(\w+)}", uri)
            assert all(n in op.params for n in names), f"{op.name}: {uri} names an unknown argument"
            concrete = re.sub(r"{\w+}|\*$", "1", uri)
            assert concrete in served or resources.CONTACT.match(concrete), f"{op.name}: {uri} is not served"


def test_every_write_to_what_a_resource_shows_declares_it(catalog: Catalog) -> None:
    """Derived from the paths, so a new write cannot forget: a write to a listed collection or one of its items
    changes the list; a write on a contact or under it changes that contact; a create or delete in a counted
    collection changes the account's counts."""
    writes = [op for op in catalog if not op.read_only]
    expected: dict[str, set[str]] = {op.name: set() for op in writes}
    for name, (listing, _) in resources.LISTS.items():
        base = catalog[listing].path
        for op in writes:
            if op.path == base or re.fullmatch(re.escape(base) + r"/{\w+}", op.path):
                expected[op.name].add(f"systeme://{name}")
    contact = catalog["get_contact"].path
    for op in writes:
        if op.path.startswith(contact):
            expected[op.name].add(CONTACT)
    for listing in resources.COUNTED.values():
        base = catalog[listing].path
        for op in writes:
            created = op.method == "POST" and op.path == base
            if created or (op.method == "DELETE" and re.fullmatch(re.escape(base) + r"/{\w+}", op.path)):
                expected[op.name].add(ACCOUNT)
    missing = {op.name: sorted(expected[op.name] - set(op.changes)) for op in writes}
    assert {name: uris for name, uris in missing.items() if uris} == {}
    assert expected["create_tag"] == {TAGS, ACCOUNT}, "the derivation itself can find something"
