"""Workflow tools through real MCP client sessions on the sandbox: every find filter and the page cap,
get/upsert by email (also under injected faults), each bulk tool previewed and applied with progress
received by the client, cancellation mid-run, and the final state checked through the sandbox's raw API."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import pytest
from mcp import Client, types

from systeme_mcp.client import SystemeClient
from systeme_mcp.runtime import Runtime
from systeme_mcp.server import create_server

from .helpers import RawApi, VirtualClock, hints, requests_seen, text

pytestmark = pytest.mark.anyio


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["default", "bulk"]}  # the bulk tools are opt-in


@pytest.fixture
async def contacts(api: RawApi) -> list[dict[str, Any]]:
    """Every seeded contact, newest first (the order find_contacts answers in)."""
    return await api.all_items("/api/contacts")


async def ok(mcp: Client, tool: str, progress: Any = None, **arguments: Any) -> dict[str, Any]:
    result = await mcp.call_tool(tool, arguments, progress_callback=progress)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert len(text(result)) < 8_000
    return dict(result.structured_content)


async def error(mcp: Client, tool: str, **arguments: Any) -> str:
    result = await mcp.call_tool(tool, arguments)
    assert result.is_error, text(result)
    return text(result)


async def refused(mcp: Client, tool: str, **arguments: Any) -> str:
    """A write tool's arguments refused before anything was sent: its structured outcome, then its text."""
    result = await mcp.call_tool(tool, arguments)
    assert result.is_error and result.structured_content is not None, text(result)
    assert result.structured_content["outcome"] == "not_applied"
    assert result.structured_content["error"] == {"kind": "invalid_arguments"}
    return text(result)


def values(contact: dict[str, Any]) -> dict[str, str]:
    return {f["slug"]: f["value"] or "" for f in contact["fields"]}


def when(contact: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(contact["registeredAt"])


# ---------------------------------------------------------------- find_contacts
def _cases(contacts: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]]:
    someone = contacts[len(contacts) // 2]
    first = values(someone)["first_name"]
    middle = when(someone).isoformat()
    tag = next(c["tags"][0] for c in contacts if c["tags"])
    return {
        "email": ({"email": someone["email"].upper()}, lambda c: c["id"] == someone["id"]),
        "email_domain": ({"email_domain": "acme.test"}, lambda c: c["email"].endswith("@acme.test")),
        "name": ({"name": first[1:4].lower()}, lambda c: first[1:4].lower() in str(values(c)).lower()),
        "tag_id": ({"tag_id": tag["id"]}, lambda c: tag["id"] in [t["id"] for t in c["tags"]]),
        "tag": ({"tag": tag["name"].upper()}, lambda c: tag["id"] in [t["id"] for t in c["tags"]]),
        "field": ({"field": "country=fr"}, lambda c: values(c).get("country") == "FR"),
        "registered_after": ({"registered_after": middle}, lambda c: when(c) > when(someone)),
        "registered_before": ({"registered_before": middle}, lambda c: when(c) < when(someone)),
        "combined": (
            {"email_domain": "acme.test", "field": "company_name=Acme Corp", "tag_id": tag["id"]},
            lambda c: c["email"].endswith("@acme.test") and tag["id"] in [t["id"] for t in c["tags"]],
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["email", "email_domain", "name", "tag_id", "tag", "field", "registered_after", "registered_before", "combined"],
)
async def test_find_contacts_filter(case: str, mcp: Client, contacts: list[dict[str, Any]]) -> None:
    arguments, expected = _cases(contacts)[case]
    want = [c["id"] for c in contacts if expected(c)]
    assert want, f"seed has no contact for {case}"
    out = await ok(mcp, "find_contacts", limit=100, **arguments)
    assert out["total"] == len(want) and out["complete"] is True
    shown = [i["id"] for i in out["items"]]
    assert shown == want[: len(shown)] and len(shown) >= min(len(want), 20)  # cut only by the text budget
    if case == "name":  # a name match is on first name or surname, never on other fields
        assert all(arguments["name"] in f"{i['fields'].get('first_name', '')} {i['fields'].get('surname', '')}".lower()
                   for i in out["items"])  # fmt: skip


async def test_find_contacts_page_cap_says_how_far_and_continues(mcp: Client, contacts: list[dict[str, Any]]) -> None:
    want = [c["id"] for c in contacts if c["email"].endswith("@acme.test")]
    seen: list[int] = []
    arguments: dict[str, Any] = {"email_domain": "acme.test", "max_pages": 1, "limit": 100}
    calls = 0
    while True:
        result = await mcp.call_tool("find_contacts", arguments)
        out = result.structured_content
        assert out is not None
        seen += [i["id"] for i in out["items"]]
        calls += 1
        if out["complete"]:
            assert out["next"] is None and out["has_more"] is False
            break
        assert "page cap" in text(result) and f"stopped at contact #{contacts[100 * calls - 1]['id']}" in text(result)
        assert out["next"]["tool"] == "find_contacts"
        assert "more: find_contacts(" in text(result) and "starting_after=" in text(result)
        arguments = out["next"]["arguments"]
    assert seen == want and calls == -(-len(contacts) // 100)


async def test_find_contacts_limit_cuts_the_list_and_continues_after_the_last_shown(mcp: Client) -> None:
    first = await ok(mcp, "find_contacts", email_domain="acme.test", limit=3)
    assert len(first["items"]) == 3 and first["total"] > 3 and first["has_more"]
    assert first["next"]["arguments"]["starting_after"] == first["items"][-1]["id"]
    rest = await ok(mcp, "find_contacts", **first["next"]["arguments"])
    assert rest["total"] == first["total"] - 3


async def test_find_contacts_refuses_bad_arguments_before_sending(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    assert "`max_pages`" in await error(mcp, "find_contacts", max_pages=0)
    assert "`field`" in await error(mcp, "find_contacts", field="no equals sign")
    assert "`bogus`" in await error(mcp, "find_contacts", bogus=1)
    assert requests_seen(sandbox) == before
    assert 'no tag is named "nope-nope"' in await error(mcp, "find_contacts", tag="nope-nope")


# ---------------------------------------------------------------- get / upsert by email
async def test_get_contact_by_email(mcp: Client, contacts: list[dict[str, Any]]) -> None:
    out = await ok(mcp, "get_contact_by_email", email=contacts[0]["email"].upper())
    assert out["found"] is True and out["item"]["id"] == contacts[0]["id"]
    missing = await ok(mcp, "get_contact_by_email", email="nobody@nowhere.example")
    assert missing["found"] is False and "No contact" in missing["message"]


async def test_upsert_creates_then_updates_then_leaves_alone(mcp: Client, api: RawApi) -> None:
    email = "jane.upsert@example.com"
    created = await ok(mcp, "upsert_contact", email=email, first_name="Jane", fields={"country": "FR"})
    assert created["action"] == "created" and created["outcome"] == "applied"
    updated = await ok(mcp, "upsert_contact", email=email.upper(), first_name="Janet", fields={"country": "FR"})
    assert updated["action"] == "updated" and "first_name" in updated["message"]
    assert updated["message"].startswith("The email exists; changed first_name.")  # only what differs is sent
    same = await ok(mcp, "upsert_contact", email=email, first_name="Janet")
    assert same["action"] == "unchanged" and same["outcome"] == "already_applied"
    (contact,) = (await api.get("/api/contacts", email=email))["items"]
    assert values(contact)["first_name"] == "Janet" and values(contact)["country"] == "FR"


async def test_upsert_never_duplicates_under_faults(runtime: Runtime, sandbox: Any, api: RawApi) -> None:
    from systeme_mcp.sandbox import FaultPlan

    clock = VirtualClock()  # same retries, no waiting: backoff sleeps only move this clock
    http = SystemeClient(runtime.settings, transport=sandbox.transport(), sleep=clock.sleep, clock=clock)
    kinds = ("reset_after", "timeout_after", "500", "reset_before", "refused")
    sandbox.faults.set(FaultPlan(rate=0.4, kinds=kinds, seed=7, routes=("* /api/contacts", "* /api/contacts/*")))
    answers: dict[str, types.CallToolResult] = {}
    try:
        async with Client(create_server(dataclasses.replace(runtime, client=http)), mode="legacy") as client:
            for n in range(12):
                email = f"chaos{n % 6}@example.com"  # each email upserted twice
                arguments = {"email": email, "first_name": f"N{n}"}
                answers[f"{email}#{n}"] = await client.call_tool("upsert_contact", arguments)
    finally:
        await http.aclose()
    sandbox.faults.set(FaultPlan(rate=0.0))
    for n in range(6):
        found = (await api.get("/api/contacts", email=f"chaos{n}@example.com"))["items"]
        assert len(found) <= 1, f"duplicate contact for chaos{n}"
        oks = [a for k, a in answers.items() if k.startswith(f"chaos{n}@") and not a.is_error]
        if oks:  # a successful answer is true: the contact exists
            assert len(found) == 1
    assert sum(not a.is_error for a in answers.values()) >= 8
    assert any("first answer was lost" in text(a) for a in answers.values())  # the recovery path ran


# ---------------------------------------------------------------- bulk tools
class Progress:
    def __init__(self, until: int | None = None) -> None:
        self.seen: list[tuple[float, float | None]] = []
        self.until, self.reached = until, anyio.Event()  # set when `until` notifications have arrived

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total))
        if len(self.seen) == self.until:
            self.reached.set()


async def _new_tag(api: RawApi, name: str) -> int:
    return int((await api.post("/api/tags", {"name": name}))["id"])


async def _tagged(api: RawApi, tag_id: int) -> set[int]:
    return {c["id"] for c in await api.all_items("/api/contacts", tags=tag_id)}


async def test_bulk_add_tag_by_filter_previews_then_applies(mcp: Client, api: RawApi, contacts: list[Any]) -> None:
    acme = [c["id"] for c in contacts if c["email"].endswith("@acme.test")]
    tag_id = await _new_tag(api, "acme-all")
    await api.post(f"/api/contacts/{acme[0]}/tags", {"tagId": tag_id})  # one already has it
    preview = await ok(mcp, "bulk_add_tag", filter={"email_domain": "acme.test"}, tag_id=tag_id)
    assert preview["dry_run"] is True and preview["outcome"] == "not_applied"  # above 25: a preview by default
    assert preview["counts"] == {"selected": len(acme), "to_change": len(acme) - 1, "already": 1}
    assert await _tagged(api, tag_id) == {acme[0]}
    progress = Progress()
    done = await ok(mcp, "bulk_add_tag", progress, **preview["apply"]["arguments"])
    assert done["counts"] == {"selected": len(acme), "changed": len(acme) - 1, "already": 1, "failed": 0, "unknown": 0}
    assert await _tagged(api, tag_id) == set(acme)
    assert progress.seen[-1] == (len(acme) - 1, len(acme) - 1) and progress.seen == sorted(set(progress.seen))


async def test_bulk_remove_tag_previews_even_small_sets(mcp: Client, api: RawApi, contacts: list[Any]) -> None:
    ids = [c["id"] for c in contacts[:5]]
    tag_id = await _new_tag(api, "to-clean")
    for cid in ids[:3]:
        await api.post(f"/api/contacts/{cid}/tags", {"tagId": tag_id})
    preview = await ok(mcp, "bulk_remove_tag", contact_ids=ids, tag_id=tag_id)
    assert preview["dry_run"] is True and sorted(preview["to_change"]) == sorted(ids[:3])
    assert await _tagged(api, tag_id) == set(ids[:3])
    progress = Progress()
    done = await ok(mcp, "bulk_remove_tag", progress, **preview["apply"]["arguments"])
    assert done["counts"] == {"selected": 5, "changed": 3, "already": 2, "failed": 0, "unknown": 0}
    assert await _tagged(api, tag_id) == set() and progress.seen[-1] == (3, 3)


async def test_bulk_enroll_skips_the_enrolled_and_reports_failures(
    mcp: Client, api: RawApi, contacts: list[Any]
) -> None:
    course_id = await api.first_id("/api/school/courses")
    enrolled = {e["contact"]["id"] for e in await api.all_items("/api/school/enrollments", course=course_id)}
    fresh = [c["id"] for c in contacts if c["id"] not in enrolled][:4]
    ids = [*fresh, next(iter(enrolled)), 999_999]
    assert "`modules`" in await refused(
        mcp, "bulk_enroll", contact_ids=ids, course_id=course_id, access_type="partial_access"
    )
    preview = await ok(
        mcp, "bulk_enroll", contact_ids=ids, course_id=course_id, access_type="full_access", dry_run=True
    )
    assert preview["counts"]["to_change"] == 5 and preview["counts"]["already"] == 1
    progress = Progress()
    args = {"contact_ids": ids, "course_id": course_id, "access_type": "full_access"}
    done = await ok(mcp, "bulk_enroll", progress, **args)  # 5 changes: at most 25, so applied at once
    assert done["dry_run"] is False and done["counts"]["changed"] == 4 and done["counts"]["already"] == 1
    assert [f["id"] for f in done["failed"]] == [999_999] and "nothing was changed" in done["failed"][0]["reason"]
    now = {e["contact"]["id"] for e in await api.all_items("/api/school/enrollments", course=course_id)}
    assert now == enrolled | set(fresh) and progress.seen[-1] == (5, 5)


async def test_bulk_add_to_community(mcp: Client, api: RawApi, contacts: list[Any]) -> None:
    community_id = await api.first_id("/api/community/communities")
    members = {m["contact"]["id"] for m in await api.all_items("/api/community/memberships", community=community_id)}
    ids = [*[c["id"] for c in contacts if c["id"] not in members][:6], next(iter(members))]
    progress = Progress()
    done = await ok(mcp, "bulk_add_to_community", progress, contact_ids=ids, community_id=community_id)
    assert done["counts"] == {"selected": 7, "changed": 6, "already": 1, "failed": 0, "unknown": 0}
    now = {m["contact"]["id"] for m in await api.all_items("/api/community/memberships", community=community_id)}
    assert set(ids) <= now and progress.seen[-1] == (6, 6)


async def test_bulk_arguments_are_checked_before_anything_is_sent(mcp: Client, sandbox: Any) -> None:
    before = requests_seen(sandbox)
    both = await refused(mcp, "bulk_add_tag", contact_ids=[1], filter={"email_domain": "acme.test"}, tag_id=1)
    assert "exactly one of `contact_ids`" in both
    assert "exactly one of" in await refused(mcp, "bulk_add_tag", tag_id=1)
    assert "`filter.bogus`" in await refused(mcp, "bulk_add_tag", filter={"bogus": 1}, tag_id=1)
    assert "`filter.max_pages`" in await refused(mcp, "bulk_add_tag", filter={"max_pages": 0}, tag_id=1)
    assert "`tag_id`" in await refused(mcp, "bulk_add_tag", contact_ids=[1])
    assert requests_seen(sandbox) == before


async def test_workflow_tool_definitions(mcp: Client) -> None:
    import jsonschema

    tools = {t.name: t for t in (await mcp.list_tools()).tools}
    names = ["find_contacts", "get_contact_by_email", "upsert_contact", "bulk_add_tag", "bulk_remove_tag",
             "bulk_enroll", "bulk_add_to_community"]  # fmt: skip
    for name in names:
        tool = tools[name]
        assert tool.title and tool.description and tool.input_schema["additionalProperties"] is False
        assert all(p.get("description") for p in tool.input_schema["properties"].values()), name
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema or {})
        a = hints(tool)  # the spec's reading: left-out hints take their defaults
        assert a["read_only"] is name.startswith(("find_", "get_"))
        assert a["destructive"] is (name == "bulk_remove_tag")


async def test_a_bulk_whose_writes_all_lost_their_answers_says_unknown_not_not_applied(
    mcp: Client, sandbox: Any, contacts: list[dict[str, Any]], api: RawApi
) -> None:
    from systeme_mcp.sandbox import FaultPlan

    tag = await api.post("/api/tags", {"name": "lost answers"})
    ids = [c["id"] for c in contacts[:3]]
    sandbox.faults.set(FaultPlan(rate=1.0, kinds=("timeout_after",), seed=3, routes=("POST /api/contacts/*/tags",)))
    result = await mcp.call_tool("bulk_add_tag", {"tag_id": tag["id"], "contact_ids": ids, "dry_run": False})
    structured = result.structured_content
    assert structured is not None and structured["outcome"] == "unknown", text(result)
    assert structured["counts"]["unknown"] == 3 and sorted(structured["unknown"]) == sorted(ids)
