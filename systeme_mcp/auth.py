"""Upstream credentials as `httpx2.Auth` objects: no other module touches a key.

- `ApiKeyAuth`: the direct Systeme.io API (`X-API-Key`).
- `BearerAuth`: the Maton gateway and control API (`Authorization: Bearer`, plus `Maton-Connection` when a
  connection is pinned and the request goes to the gateway).
"""

from __future__ import annotations

from collections.abc import Generator

import httpx2


class ApiKeyAuth(httpx2.Auth):
    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["X-API-Key"] = self._key
        yield request


class BearerAuth(httpx2.Auth):
    def __init__(self, key: str, connection: str | None = None) -> None:
        self._header = f"Bearer {key}"
        self._connection = connection

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = self._header
        if self._connection:
            request.headers["Maton-Connection"] = self._connection
        yield request
