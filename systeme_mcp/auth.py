"""Upstream credentials as `httpx2.Auth` objects: no other module touches a key.

- `ApiKeyAuth`: the direct Systeme.io API (`X-API-Key`).
- `BearerAuth`: the Maton gateway and control API (`Authorization: Bearer`, plus `Maton-Connection` when a
  connection is pinned and the request goes to the gateway).
- `credentials`: the Auth of each API a backend talks to.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx2

from .config import Backend, Settings

SANDBOX_KEY = "sandbox-maton-key"  # the embedded sandbox's Maton key (scrubbed like a real one)


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


def credentials(settings: Settings, backend: Backend) -> dict[str, httpx2.Auth | None]:
    """The Auth for each API (`RequestPlan.api`) this backend talks to (None: no credential for it)."""
    if backend == "sandbox":
        return {"systeme": BearerAuth(SANDBOX_KEY, settings.maton_connection), "maton": BearerAuth(SANDBOX_KEY)}
    maton = settings.maton_api_key.get_secret_value() if settings.maton_api_key else None
    gateway: httpx2.Auth | None
    if backend == "direct":
        gateway = ApiKeyAuth(settings.systeme_api_key.get_secret_value() if settings.systeme_api_key else "")
    else:
        gateway = BearerAuth(maton, settings.maton_connection) if maton else None
    return {"systeme": gateway, "maton": BearerAuth(maton) if maton else None}
