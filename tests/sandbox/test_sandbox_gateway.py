"""The Maton gateway (`/systeme/api/...`) and the Maton control API (`/connections`), OAuth walk included."""

from __future__ import annotations

import httpx2
import pytest

from systeme_mcp.sandbox import Sandbox
from systeme_mcp.sandbox.seed import SEED_CONNECTION_ID

from .sandbox_testkit import MATON, problem, violations

pytestmark = pytest.mark.anyio
CONN_KEYS = {
    "connection_id",
    "status",
    "creation_time",
    "last_updated_time",
    "url",
    "app",
    "method",
    "metadata",
}


def gateway_error(answer: httpx2.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return str(body["error"]["message"])


async def test_gateway_serves_the_api(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    client.headers.pop("X-API-Key")
    answer = await client.get("/systeme/api/contacts", params={"limit": 20, "order": "asc"}, headers=MATON)
    assert answer.status_code == 200
    assert [c["id"] for c in answer.json()["items"]] == list(range(1, 21))
    created = await client.post("/systeme/api/tags", json={"name": "via gateway"}, headers=MATON)
    assert created.status_code == 201 and created.json()["id"] in sb.store.tags
    # Systeme's own errors pass through unchanged
    assert violations(await client.post("/systeme/api/tags", json={"name": "via gateway"}, headers=MATON)) == {
        "name": "This value is already used."
    }
    problem(await client.get("/systeme/api/contacts/999999", headers=MATON), 404)
    problem(await client.get("/systeme/nothing", headers=MATON), 404)
    pinned = await client.get("/systeme/api/tags", headers={**MATON, "Maton-Connection": SEED_CONNECTION_ID})
    assert pinned.status_code == 200


async def test_gateway_auth_and_connection_errors(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    client.headers.pop("X-API-Key")
    assert "Missing" in gateway_error(await client.get("/systeme/api/contacts"), 401)
    gateway_error(await client.get("/systeme/api/contacts", headers={"Authorization": "Basic abc"}), 401)
    unknown = await client.get(
        "/systeme/api/contacts", headers={**MATON, "Maton-Connection": "00000000-0000-4000-8000-000000000000"}
    )
    assert "connection" in gateway_error(unknown, 400)
    sb.store.connections[SEED_CONNECTION_ID].status = "PENDING"
    assert "connection" in gateway_error(await client.get("/systeme/api/contacts", headers=MATON), 400)
    pinned = await client.get("/systeme/api/contacts", headers={**MATON, "Maton-Connection": SEED_CONNECTION_ID})
    assert "PENDING" in gateway_error(pinned, 400)


async def test_gateway_rejects_unknown_maton_keys() -> None:
    sb = Sandbox(rate_limit=None, maton_keys={"right"})
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url) as c:
        assert "Invalid" in gateway_error(
            await c.get("/systeme/api/tags", headers={"Authorization": "Bearer wrong"}), 401
        )
        gateway_error(await c.get("/connections", headers={"Authorization": "Bearer wrong"}), 401)
        assert (await c.get("/systeme/api/tags", headers={"Authorization": "Bearer right"})).status_code == 200


async def test_ctrl_list_and_filters(client: httpx2.AsyncClient) -> None:
    listed = (await client.get("/connections", headers=MATON)).json()
    assert set(listed) == {"connections"} and len(listed["connections"]) == 1
    conn = listed["connections"][0]
    assert set(conn) == CONN_KEYS and conn["connection_id"] == SEED_CONNECTION_ID and conn["status"] == "ACTIVE"
    assert conn["creation_time"].endswith("Z")
    assert (await client.get("/connections", params={"app": "slack"}, headers=MATON)).json() == {"connections": []}
    assert (await client.get("/connections", params={"status": "PENDING"}, headers=MATON)).json() == {"connections": []}
    assert (
        len(
            (await client.get("/connections", params={"app": "systeme", "status": "ACTIVE"}, headers=MATON)).json()[
                "connections"
            ]
        )
        == 1
    )


async def test_oauth_walk(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    created = await client.post("/connections", json={"app": "systeme"}, headers=MATON)
    assert created.status_code == 200, created.text
    conn = created.json()["connection"]
    assert set(conn) == CONN_KEYS and conn["status"] == "PENDING" and conn["app"] == "systeme"
    cid = conn["connection_id"]
    pinned = {**MATON, "Maton-Connection": cid}
    gateway_error(await client.get("/systeme/api/tags", headers=pinned), 400)  # not authorized yet
    url = httpx2.URL(conn["url"])
    assert url.path == "/__sandbox/connect"
    visit = await client.get(url.path, params=dict(url.params))  # "open it in a browser"
    assert visit.status_code == 200 and "ACTIVE" in visit.text
    got = (await client.get(f"/connections/{cid}", headers=MATON)).json()
    assert got["connection"]["status"] == "ACTIVE" and got["connection"]["last_updated_time"] >= conn["creation_time"]
    assert (await client.get("/systeme/api/tags", headers=pinned)).status_code == 200
    deleted = await client.delete(f"/connections/{cid}", headers=MATON)
    assert deleted.status_code == 200 and cid not in sb.store.connections
    gateway_error(await client.get(f"/connections/{cid}", headers=MATON), 404)
    gateway_error(await client.delete(f"/connections/{cid}", headers=MATON), 404)
    gateway_error(await client.get("/systeme/api/tags", headers=pinned), 400)
    assert (await client.get("/__sandbox/connect", params={"session_token": "nope"})).status_code == 404


async def test_ctrl_errors(client: httpx2.AsyncClient) -> None:
    gateway_error(await client.post("/connections", json={"app": ""}, headers=MATON), 400)
    gateway_error(
        await client.post("/connections", content=b"{", headers={**MATON, "Content-Type": "application/json"}),
        400,
    )
    gateway_error(await client.put("/connections", json={}, headers=MATON), 405)
    gateway_error(await client.get("/connections"), 401)


async def test_default_connection_is_the_oldest_active(client: httpx2.AsyncClient, sb: Sandbox) -> None:
    newer = (await client.post("/connections", json={"app": "systeme"}, headers=MATON)).json()["connection"]
    sb.store.connections[newer["connection_id"]].status = "ACTIVE"
    del sb.store.connections[SEED_CONNECTION_ID]
    assert (await client.get("/systeme/api/tags", headers=MATON)).status_code == 200
    sb.store.connections[newer["connection_id"]].status = "FAILED"
    gateway_error(await client.get("/systeme/api/tags", headers=MATON), 400)
