"""Webhook management routes and signed event delivery (in-process capture and a real loopback receiver)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx2
import pytest

from systeme_mcp.sandbox import Sandbox

from .sandbox_testkit import KEY, MERGE, problem, violations

pytestmark = pytest.mark.anyio
HOOK = {
    "name": "Zap",
    "url": "https://hooks.example.com/zap",
    "secret": "s3cret",
    "subscriptions": ["CONTACT_CREATED"],
}


async def test_webhook_crud(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    answer = await client.post("/api/webhooks", json=HOOK)
    assert answer.status_code == 201, answer.text
    hook = answer.json()
    uuid.UUID(hook["id"])
    assert set(hook) == {"id", "name", "url", "active", "subscriptions"} and "secret" not in answer.text
    sub = hook["subscriptions"][0]
    assert sub["event"] == "CONTACT_CREATED" and sub["schemaVersion"] == 1 and sub["disabledAt"] is None
    assert set(sub) == {"id", "event", "schemaVersion", "disabledAt", "disabledReason"}
    assert (await client.get(f"/api/webhooks/{hook['id']}")).json() == hook
    listed = (await client.get("/api/webhooks")).json()
    assert listed["hasMore"] is False and hook in listed["items"] and "s3cret" not in json.dumps(listed)
    body = {
        "name": "Zap 2",
        "active": False,
        "url": "https://elsewhere.test/",
        "subscriptions": [{"event": "SALE_NEW", "schemaVersion": 2}, "CONTACT_CREATED"],
    }
    patched = await client.patch(f"/api/webhooks/{hook['id']}", content=json.dumps(body), headers=MERGE)
    assert patched.status_code == 200, patched.text
    p = patched.json()
    assert p["name"] == "Zap 2" and p["active"] is False and p["url"] == HOOK["url"]  # the url cannot change
    assert [(s["event"], s["schemaVersion"]) for s in p["subscriptions"]] == [
        ("SALE_NEW", 2),
        ("CONTACT_CREATED", 1),
    ]
    assert p["subscriptions"][1]["id"] == sub["id"]  # unchanged subscriptions keep their id
    assert (await client.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
    problem(await client.get(f"/api/webhooks/{hook['id']}"), 404)
    problem(await client.delete(f"/api/webhooks/{hook['id']}"), 404)


async def test_webhook_violations(client: httpx2.AsyncClient) -> None:
    assert (await client.post("/api/webhooks", json=HOOK)).status_code == 201
    same_name = {**HOOK, "url": "https://other.example.com/"}
    assert violations(await client.post("/api/webhooks", json=same_name)) == {"name": "This value is already used."}
    same_url = {**HOOK, "name": "Other"}
    assert violations(await client.post("/api/webhooks", json=same_url)) == {"url": "This value is already used."}
    bad_event = {**HOOK, "name": "B", "url": "https://b.test/", "subscriptions": ["CONTACT_EXPLODED"]}
    assert violations(await client.post("/api/webhooks", json=bad_event)) == {
        "subscriptions": "This value is not valid."
    }
    no_version = {**HOOK, "name": "C", "url": "https://c.test/", "subscriptions": [{"event": "SALE_NEW"}]}
    assert violations(await client.post("/api/webhooks", json=no_version)) == {
        "subscriptions": "This value is not valid."
    }
    missing = await client.post("/api/webhooks", json={"name": "D"})
    assert set(violations(missing)) == {"url", "secret", "subscriptions"}
    assert violations(await client.post("/api/webhooks", json={**HOOK, "name": "E", "url": "ftp://x"})) == {
        "url": "This value is not a valid URL."
    }
    problem(await client.patch("/api/webhooks/not-a-hook", content=b"{}", headers=MERGE), 404)
    problem(await client.patch("/api/webhooks/whatever", json={}), 415)


async def test_events_are_recorded_and_signed(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    seeded = next(iter(sb.store.webhooks.values()))
    created = (await client.post("/api/contacts", json={"email": "événement@acme.test".replace("é", "e")})).json()
    assert (await client.post(f"/api/contacts/{created['id']}/tags", json={"tagId": 2})).status_code == 204
    assert (await client.delete(f"/api/contacts/{created['id']}/tags/2")).status_code == 204
    events = [(d.event, d.webhook_id) for d in sb.webhooks.deliveries]
    assert events == [
        ("CONTACT_CREATED", seeded.id),
        ("CONTACT_TAG_ADDED", seeded.id),
    ]  # not subscribed to REMOVED
    first = sb.webhooks.deliveries[0]
    assert json.loads(first.body) == {"contact": created}
    assert first.signature == hmac.new(seeded.secret.encode(), first.body, hashlib.sha256).hexdigest()
    tag_event = json.loads(sb.webhooks.deliveries[1].body)
    assert tag_event["tag"] == {"id": 2, "name": sb.store.tags[2].name} and tag_event["contact"]["id"] == created["id"]
    assert b"\\/" in sb.webhooks.deliveries[1].body or "/" not in sb.webhooks.deliveries[1].body.decode()


async def test_delivery_in_process_capture() -> None:
    seen: list[httpx2.Request] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200)

    sb = Sandbox(rate_limit=None, deliver_webhooks=True, webhook_transport=httpx2.MockTransport(capture))
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        hook = {
            "name": "All",
            "url": "https://receiver.test/in",
            "secret": "k3y",
            "subscriptions": ["CONTACT_CREATED", "CONTACT_TAG_REMOVED"],
        }
        assert (await c.post("/api/webhooks", json=hook)).status_code == 201
        assert (await c.post("/api/contacts", json={"email": "hook@acme.test"})).status_code == 201
    mine = [r for r in seen if r.url.host == "receiver.test"]
    assert len(mine) == 1
    raw = mine[0].content
    assert mine[0].headers["x-webhook-signature"] == hmac.new(b"k3y", raw, hashlib.sha256).hexdigest()
    assert mine[0].headers["x-webhook-message-id"] and mine[0].headers["content-type"] == "application/json"
    assert json.loads(raw)["contact"]["email"] == "hook@acme.test"
    assert all(d.status == 200 for d in sb.webhooks.deliveries)


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


async def test_delivery_over_loopback(receiver: tuple[str, list[tuple[dict[str, str], bytes]]]) -> None:
    url, received = receiver
    sb = Sandbox(rate_limit=None, deliver_webhooks=True)
    sb.store.webhooks.clear()
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url, headers=KEY) as c:
        subscriptions = [{"event": "CONTACT_TAG_ADDED", "schemaVersion": 1}]
        hook = {"name": "Local", "url": url, "secret": "loop", "subscriptions": subscriptions}
        assert (await c.post("/api/webhooks", json=hook)).status_code == 201
        closed = {
            "name": "Closed",
            "url": "http://127.0.0.1:1/",
            "secret": "x",
            "subscriptions": subscriptions,
        }
        assert (await c.post("/api/webhooks", json=closed)).status_code == 201
        assert (await c.post("/api/contacts/9/tags", json={"tagId": 10})).status_code == 204
    assert len(received) == 1
    headers, body = received[0]
    assert hmac.compare_digest(headers["x-webhook-signature"], hmac.new(b"loop", body, hashlib.sha256).hexdigest())
    assert json.loads(body)["tag"]["id"] == 10
    local = [d for d in sb.webhooks.deliveries if d.url == url]
    assert local[0].status == 204 and local[0].message_id == headers["x-webhook-message-id"]
    failed = [d for d in sb.webhooks.deliveries if d.url != url]
    assert len(failed) == 1 and failed[0].error  # a refused delivery is recorded, not raised
