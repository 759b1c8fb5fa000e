"""Shared helpers of the sandbox suite (asserting error shapes, walking pages)."""

from __future__ import annotations

from typing import Any

import httpx2

KEY = {"X-API-Key": "test-key"}
MATON = {"Authorization": "Bearer maton-key"}
MERGE = {"Content-Type": "application/merge-patch+json"}


def problem(answer: httpx2.Response, status: int) -> dict[str, Any]:
    """Assert an API-Platform problem answer with `status` and return its body."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["type"] == "https://tools.ietf.org/html/rfc2616#section-10"
    assert body["title"] == "An error occurred"
    assert body["status"] == status
    assert "Traceback" not in answer.text
    return body


def violations(answer: httpx2.Response) -> dict[str, str]:
    """{propertyPath: message} of a 422 answer (and check the detail lines)."""
    body = problem(answer, 422)
    found = {v["propertyPath"]: v["message"] for v in body["violations"]}
    for v in body["violations"]:
        line = f"{v['propertyPath']}: {v['message']}" if v["propertyPath"] else v["message"]
        assert line in body["detail"].split("\n")
    return found


async def walk(c: httpx2.AsyncClient, path: str, **query: Any) -> list[Any]:
    """Every item of a paginated collection, following startingAfter."""
    items: list[Any] = []
    cursor: Any = None
    while True:
        params = {k: v for k, v in {**query, "startingAfter": cursor}.items() if v is not None}
        answer = await c.get(path, params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert set(page) == {"items", "hasMore"}
        items += page["items"]
        if not page["hasMore"]:
            return items
        assert page["items"], "hasMore with an empty page"
        cursor = page["items"][-1]["id"]
