"""The `--state` file: SQLite rows written per request (O(1) per write), every write route surviving a restart,
kill -9 leaving no temp file, the old JSON format migrated once, unusable files refused in one line, and no input
(a lone surrogate) able to poison a table."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from systeme_mcp.sandbox import Sandbox, StateFileError
from systeme_mcp.sandbox.serve import running
from systeme_mcp.sandbox.statefile import StateFile
from systeme_mcp.sandbox.store import Contact, Store, Tag
from systeme_mcp.sandbox.table import Table

from .sandbox_testkit import KEY, MATON, MERGE
from .test_sandbox_server import _free_port, _read_banner


def _reloaded(path: Path) -> Store:
    state = StateFile(path)
    try:
        store = state.load()
    finally:
        state.close()
    assert store is not None
    return store


def _rows_written(sb: Sandbox) -> int:
    assert sb._state is not None
    return int(sb._state._db.total_changes)


def _client(sb: Sandbox, **headers: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers={**KEY, **headers})


# ---------------------------------------------------------------------------- rows per write
def test_a_table_remembers_its_changes_in_order() -> None:
    t: Table[int, str] = Table([(1, "a"), (2, "b")])
    assert t.pending() == ([1, 2], [1, 2])
    t.saved()
    assert t.pending() == ([], [])
    t.touch(1)
    del t[2]
    t[3] = "c"
    t[2] = "d"  # deleted then added again: its old row goes, the new one is written last (creation order)
    assert t.pending() == ([2, 3], [1, 3, 2]) and list(t) == [1, 3, 2]
    t.saved()
    assert t.pop(9, None) is None and t.pop(1) == "a" and t.setdefault(4, "e") == "e"
    t.update({5: "f"})
    t |= {6: "g"}
    assert t.pending() == ([1, 4, 5, 6], [4, 5, 6])
    t.clear()
    assert set(t.pending()[0]) == {1, 2, 3, 4, 5, 6} and t.pending()[1] == []


@pytest.mark.anyio
async def test_a_write_saves_only_the_rows_it_changed(tmp_path: Path) -> None:
    sb = Sandbox(rate_limit=None, state_file=tmp_path / "state.db")
    for i in range(3000):  # ~3,300 contacts: a write must not cost more with more state
        contact = Contact(sb.store.next_id("contacts"), f"grown{i}@acme.test", 1704067200.0)
        sb.store.contacts[contact.id] = contact
    sb.persist()
    async with _client(sb) as c:
        before = _rows_written(sb)
        assert (await c.get("/api/contacts/5")).status_code == 200
        assert (await c.get("/api/contacts", params={"limit": 100})).status_code == 200
        assert _rows_written(sb) == before  # reads write nothing
        patched = await c.patch("/api/contacts/5", json={"locale": "de"}, headers=MERGE)
        assert patched.status_code == 200 and _rows_written(sb) == before + 1
        created = await c.post("/api/contacts", json={"email": "one.more@acme.test"})
        assert created.status_code == 201 and _rows_written(sb) == before + 3  # the contact and the id counters
        rejected = await c.post("/api/contacts", json={"email": "not an email"})
        assert rejected.status_code == 422 and _rows_written(sb) == before + 3
    assert _reloaded(tmp_path / "state.db").contacts[5].locale == "de"
    sb.close()


@pytest.mark.anyio
async def test_every_write_route_survives_a_restart(tmp_path: Path) -> None:
    """After each write, the state read back from the file is the state in memory, tables in the same order."""
    path = tmp_path / "state.db"
    sb = Sandbox(rate_limit=None, membership_delay=0.0, state_file=path)
    store = sb.store
    seeded_hook = next(iter(store.webhooks))
    active = next(s.id for s in store.subscriptions.values() if s.status == "active" and s.cancelled_at is None)
    enrolled = next(iter(store.enrollments.values())).contact_id
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()

    async with _client(sb) as c, _client(sb, **MATON) as maton:

        async def step(method: str, url: str, body: Any = None, *, via: httpx2.AsyncClient = c, **kw: Any) -> Any:
            answer = await via.request(method, url, json=body, **kw)
            assert answer.status_code < 400, (method, url, answer.text)
            assert _reloaded(path).to_json() == sb.store.to_json(), (method, url)
            return answer.json() if "json" in answer.headers.get("content-type", "") else None

        contact = await step("POST", "/api/contacts", {"email": "tour@acme.test"})
        cid = contact["id"]
        await step(
            "PATCH",
            f"/api/contacts/{cid}",
            {"locale": "fr", "fields": [{"slug": "surname", "value": "G"}]},
            headers=MERGE,
        )
        await step("POST", f"/api/contacts/{cid}/tags", {"tagId": 1})
        await step("DELETE", f"/api/contacts/{cid}/tags/1")
        tag = await step("POST", "/api/tags", {"name": "tour"})
        await step("PUT", f"/api/tags/{tag['id']}", {"name": "tour 2"})
        await step("POST", f"/api/contacts/{cid}/tags", {"tagId": tag["id"]})
        await step("PUT", "/api/mailing/newsletters/2/included-tags", {"tagIds": [tag["id"], 2]})
        await step("DELETE", f"/api/tags/{tag['id']}")  # also leaves the contact and the newsletter
        await step("POST", "/api/contact_fields", {"slug": "tour_field", "fieldName": "Tour"})
        await step("PATCH", f"/api/contacts/{cid}", {"fields": [{"slug": "tour_field", "value": "x"}]}, headers=MERGE)
        await step("PATCH", "/api/contact_fields/tour_field", {"fieldName": "Tour 2"}, headers=MERGE)
        await step("DELETE", "/api/contact_fields/tour_field")  # also leaves the contact
        await step("DELETE", "/api/contact_fields/company_size")
        await step("POST", "/api/contact_fields", {"slug": "company_size", "fieldName": "Back, last"})
        enrollment = await step(
            "POST", "/api/school/courses/1/enrollments", {"contactId": cid, "accessType": "full_access"}
        )
        await step("POST", "/api/school/courses/1/enrollments", {"contactId": cid, "accessType": "dripping_content"})
        await step("DELETE", f"/api/school/enrollments/{enrollment['id']}")
        await step("POST", "/api/community/communities/1/memberships", {"contactId": cid})
        await step("DELETE", f"/api/community/memberships/{max(store.memberships)}")
        await step("POST", f"/api/payment/subscriptions/{active}/cancel", {"cancel": "Now"})
        funnel = await step("POST", "/api/funnels", {"name": "Tour funnel"})
        await step("POST", f"/api/funnels/{funnel['id']}/steps", {"name": "Tour step"})
        campaign = await step("POST", "/api/mailing/campaigns", {"name": "Tour campaign"})
        await step("PATCH", f"/api/mailing/campaigns/{campaign['id']}", {"description": "d"}, headers=MERGE)
        await step("DELETE", "/api/mailing/campaigns/1")  # and its steps
        news = await step("POST", "/api/mailing/newsletters", {"content": {"subject": "Tour"}})
        await step("PATCH", f"/api/mailing/newsletters/{news['id']}", {"content": {"previewText": "p"}}, headers=MERGE)
        await step("PUT", f"/api/mailing/newsletters/{news['id']}/excluded-tags", {"tagIds": [3]})
        await step("PUT", f"/api/mailing/newsletters/{news['id']}/schedule", {"scheduledAt": future})
        hook = await step(
            "POST",
            "/api/webhooks",
            {"name": "Tour", "url": "https://t.test/h", "secret": "s", "subscriptions": ["CONTACT_CREATED"]},
        )
        await step(
            "PATCH",
            f"/api/webhooks/{hook['id']}",
            {"active": False, "subscriptions": ["CONTACT_TAG_ADDED"]},
            headers=MERGE,
        )
        await step("DELETE", f"/api/webhooks/{seeded_hook}")
        conn = (await step("POST", "/connections", {"app": "systeme"}, via=maton))["connection"]
        await step("GET", conn["url"])  # the authorization page: a GET that makes the connection ACTIVE
        assert store.connections[conn["connection_id"]].status == "ACTIVE"
        await step("DELETE", f"/connections/{conn['connection_id']}", via=maton)
        await step("POST", "/__sandbox/settings", {"twilioConnected": True})
        await step("DELETE", f"/api/contacts/{enrolled}")  # also its enrollments and memberships
        await step("DELETE", f"/api/contacts/{cid}")
        await step("POST", "/__sandbox/reset")
    again = Sandbox(rate_limit=None, state_file=path)
    assert again.store.to_json() == Sandbox(seed=0).store.to_json()
    sb.close()
    again.close()


def test_persist_rewrites_what_was_changed_directly(tmp_path: Path) -> None:
    sb = Sandbox(rate_limit=None, state_file=tmp_path / "state.db")
    sb.store.contacts[9].email = "changed.directly@acme.test"  # no request noticed this one
    sb.persist()
    assert _reloaded(tmp_path / "state.db").contacts[9].email == "changed.directly@acme.test"
    sb.close()


# ---------------------------------------------------------------------------- kill -9, SIGTERM
def _serve_cli(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from systeme_mcp.sandbox.serve import main; sys.exit(main(sys.argv[1:]))",
            *("--port", str(port), "--state", str(path), "--rate-limit", "off"),
        ],
        stderr=subprocess.PIPE,
        bufsize=0,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    try:
        _read_banner(proc.stderr)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    return proc, f"http://127.0.0.1:{port}"


def test_kill_9_loses_no_answered_write_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    proc, base = _serve_cli(path)
    try:
        with httpx2.Client(base_url=base, headers=KEY, timeout=60.0) as c:
            for i in range(5):
                assert c.post("/api/tags", json={"name": f"before kill {i}"}).status_code == 201
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert {p.name for p in tmp_path.iterdir()} <= {"state.db", "state.db-wal", "state.db-shm"}
    sb = Sandbox(rate_limit=None, state_file=path)
    assert {f"before kill {i}" for i in range(5)} <= {t.name for t in sb.store.tags.values()}
    sb.close()
    assert [p.name for p in tmp_path.iterdir()] == ["state.db"]  # the WAL is folded back in on close


def test_sigterm_closes_the_state_file(tmp_path: Path) -> None:
    proc, base = _serve_cli(tmp_path / "state.db")
    try:
        assert httpx2.post(f"{base}/api/tags", json={"name": "kept"}, headers=KEY, timeout=60.0).status_code == 201
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and b"Traceback" not in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["state.db"]


# ---------------------------------------------------------------------------- old JSON format
def test_an_old_json_state_file_is_migrated_once(tmp_path: Path) -> None:
    old = Sandbox(rate_limit=None)
    old.store.tags[99] = Tag(99, "kept", 1704067200.0)
    old.store.counters["tags"] = 99
    path = tmp_path / "state.json"
    original = json.dumps(old.store.to_json(), separators=(",", ":")).encode()
    path.write_bytes(original)
    sb = Sandbox(rate_limit=None, state_file=path)
    assert sb.store.to_json() == old.store.to_json() and sb.store.next_id("tags") == 100
    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    backup = tmp_path / "state.json.json-backup"
    assert backup.read_bytes() == original
    sb.close()
    backup.unlink()
    again = Sandbox(rate_limit=None, state_file=path)  # now SQLite: read as it is, nothing migrated again
    assert again.store.to_json() == old.store.to_json() and not backup.exists()
    again.close()
    assert {p.name for p in tmp_path.iterdir()} == {"state.json"}


@pytest.mark.anyio
async def test_an_old_poisoned_json_state_file_is_healed(tmp_path: Path) -> None:
    """The old format could hold a lone surrogate (written as an escape), which made every list a 500."""
    poisoned = Sandbox(rate_limit=None)
    poisoned.store.contacts[4].fields["first_name"] = "Bad\ud800name"
    path = tmp_path / "state.json"
    path.write_text(json.dumps(poisoned.store.to_json()), encoding="utf-8")
    sb = Sandbox(rate_limit=None, state_file=path)
    async with _client(sb) as c:
        assert (await c.get("/api/contacts", params={"limit": 100})).status_code == 200
        fields = {f["slug"]: f["value"] for f in (await c.get("/api/contacts/4")).json()["fields"]}
        assert fields["first_name"] == "Bad\ufffdname"
    sb.close()


# ---------------------------------------------------------------------------- unusable files
def _valid(path: Path) -> None:
    Sandbox(rate_limit=None, state_file=path).close()


def _sql(*statements: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        _valid(path)
        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        db.close()

    return make


def _bytes(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def _old_json(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        data = Sandbox(rate_limit=None).store.to_json()
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")

    return make


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()


def _newer(path: Path) -> None:
    _valid(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 2")
    db.close()


def _torn(path: Path) -> None:
    _valid(path)
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page after the first overwritten
    path.write_bytes(bytes(data))


UNUSABLE = {
    "garbage": (_bytes(b"\x00\x01 not a state file"), "neither SQLite nor the old JSON format"),
    "json syntax": (_bytes(b'{"contacts": [{"id": 1,'), "old JSON state file that is not valid JSON"),
    "json not an object": (_bytes(b"[1, 2]"), "neither SQLite nor the old JSON format"),
    "json unknown key": (_bytes(b'{"contatcs": []}'), "unknown key 'contatcs'"),
    "json table not a list": (_bytes(b'{"contacts": {}}'), "'contacts' must be a list"),
    "json wrong type": (
        _old_json(lambda d: d["contacts"][2].update(email=5)),
        "contacts[2]: field 'email' should be str, got 5",
    ),
    "json missing field": (_old_json(lambda d: d["tags"][0].pop("name")), "tags[0]: missing field 'name'"),
    "json unknown field": (_old_json(lambda d: d["tags"][0].update(colour="red")), "unknown field 'colour'"),
    "json duplicate id": (_old_json(lambda d: d["tags"].append(d["tags"][0])), "a second entity with id 1"),
    "json bad counters": (
        _old_json(lambda d: d.update(counters={"tags": "ten"})),
        "counters: must map table names to integers",
    ),
    "foreign sqlite": (_foreign, "an SQLite database but not a sandbox state file"),
    "newer schema": (_newer, "schema version 2, but this sandbox reads version 1"),
    "wrong columns": (_sql("DROP TABLE rows", "CREATE TABLE rows (a, b)"), "wrong schema: table 'rows'"),
    "row not json": (_sql("UPDATE rows SET data = '{' WHERE kind = 'contacts' AND key = '1'"), "row contacts/1: data"),
    "row wrong type": (
        _sql("UPDATE rows SET data = json_set(data, '$.email', NULL) WHERE kind = 'contacts' AND key = '7'"),
        "row contacts/7: field 'email' should be str, got null",
    ),
    "row list of wrong items": (
        _sql(
            "UPDATE rows SET data = json_set(data, '$.tag_ids', json('[\"x\"]')) WHERE kind = 'contacts' AND key = '3'"
        ),
        "field 'tag_ids' should be list[int]",
    ),
    "row not an object": (
        _sql("UPDATE rows SET data = '[]' WHERE kind = 'tags' AND key = '2'"),
        "expected a JSON object",
    ),
    "row key mismatch": (_sql("UPDATE rows SET key = '77' WHERE kind = 'tags' AND key = '1'"), "is not the id"),
    "unknown kind": (_sql("INSERT INTO rows VALUES ('gadgets', '1', '{}')"), "unknown kind 'gadgets'"),
    "dangling reference": (_sql("DELETE FROM rows WHERE kind = 'courses'"), "course_id refers to courses/"),
    "torn pages": (_torn, "malformed"),
}


@pytest.mark.parametrize("name", list(UNUSABLE))
def test_an_unusable_state_file_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    make, expected = UNUSABLE[name]
    path = tmp_path / "state.db"
    make(path)
    with pytest.raises(StateFileError) as caught:
        Sandbox(rate_limit=None, state_file=path)
    message = str(caught.value)
    assert message.startswith(f"state file {path}: ") and expected in message and "\n" not in message, message
    assert isinstance(caught.value, ValueError)


def test_the_cli_refuses_an_unusable_state_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b'{"contacts": [{"id": "one"}]}')
    done = subprocess.run(
        [sys.executable, "-m", "systeme_mcp.sandbox.serve", "--port", "0", "--state", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"systeme-mcp sandbox: state file {path}: contacts[0]: field 'id' should be int")


# ---------------------------------------------------------------------------- invalid Unicode
JSON = {"Content-Type": "application/json"}
ODD = b'{"email": "odd@acme.test", "fields": [{"slug": "first_name", "value": "A\\ud800B"}], "\\udfff": 1}'


@pytest.mark.anyio
async def test_a_lone_surrogate_cannot_poison_a_table(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sb = Sandbox(rate_limit=None, state_file=path)
    with running(sb) as base:
        async with httpx2.AsyncClient(base_url=base, headers=KEY, timeout=10.0) as c:
            created = await c.post("/api/contacts", content=ODD, headers=JSON)
            assert created.status_code == 201, created.text
            tag = await c.post("/api/tags", content=b'{"name": "tag \\udc00"}', headers=JSON)
            assert tag.status_code == 201 and tag.json()["name"] == "tag \ufffd"
            plan = await c.post("/__sandbox/faults", content=b'{"rate": 0, "routes": ["/x\\ud801"]}')
            assert plan.status_code == 200 and (await c.get("/__sandbox")).status_code == 200
            listed = await c.get("/api/contacts", params={"email": "odd@acme.test"})
            assert listed.status_code == 200
            fields = {f["slug"]: f["value"] for f in listed.json()["items"][0]["fields"]}
            assert fields["first_name"] == "A\ufffdB"
    sb.close()
    again = Sandbox(rate_limit=None, state_file=path)
    with running(again) as base:
        async with httpx2.AsyncClient(base_url=base, headers=KEY, timeout=10.0) as c:
            listed = await c.get("/api/contacts", params={"limit": 100})
            assert listed.status_code == 200 and any(x["email"] == "odd@acme.test" for x in listed.json()["items"])
            assert (await c.get("/api/tags", params={"query": "tag"})).json()["items"][0]["name"] == "tag \ufffd"
    again.close()


@pytest.mark.anyio
async def test_absurdly_nested_json_is_a_400(tmp_path: Path) -> None:
    sb = Sandbox(rate_limit=None)
    async with _client(sb) as c:
        deep = b"[" * 100_000 + b"]" * 100_000
        answer = await c.post("/api/tags", content=deep, headers=JSON)
        assert answer.status_code == 400 and answer.json()["detail"] == "Syntax error"
