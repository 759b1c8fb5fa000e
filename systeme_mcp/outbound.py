"""The HTTP pool under `SystemeClient`: one httpx2.AsyncClient, made at the first request, and requests built whole.

- Made lazily: a server that only lists its tools (a stdio client's first minutes) never loads the connection
  pool (httpcore2) nor the certificates; every pool of the process shares one SSL context (~50 ms to load), so
  per-request tenancy, which makes a client per tenant, loads it once.
- No cookies: the APIs authenticate every request by header, so a `Set-Cookie` (an upstream's, or a hostile
  hop's) is never stored nor sent back — it could otherwise grow every later request's headers, or carry state
  from one answer into the next request.
- `request` builds the `httpx2.Request` itself, with the headers httpx2 would send (Host, the pool's defaults,
  Content-Type/Content-Length for a body), rather than through `AsyncClient.stream`, which merges the URL with a
  base URL, parses it again for the query and rebuilds the headers on every request; a URL once parsed is kept
  (the same read, or the next page of one, is asked again and again).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx2

from .config import Settings
from .policy import CONNECT_TIMEOUT_CAP, USER_AGENT

URL_CACHE = 512  # parsed URLs kept (a URL carries ids and query values, never a credential: those are headers)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The process's SSL context, as httpx2 makes it by default (SSL_CERT_FILE / SSL_CERT_DIR honoured)."""
    return httpx2.create_ssl_context()


@functools.lru_cache(maxsize=URL_CACHE)
def _url(text: str) -> httpx2.URL:
    return httpx2.URL(text)


def url_of(url: str, query: dict[str, str] | None) -> httpx2.URL:
    """`url` with `query` encoded as httpx2 encodes `params=` (QueryParams), parsed once per distinct URL."""
    return _url(f"{url}?{httpx2.QueryParams(query)}" if query else url)


def flat(headers: httpx2.Headers) -> dict[str, str]:
    """`dict(headers)` (names in lower case, a repeated header's values joined by ", "), in one pass."""
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class Pool:
    """The httpx2.AsyncClient of one SystemeClient (its transport: the network unless one is given)."""

    def __init__(self, settings: Settings, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None
        self._headers: list[tuple[bytes, bytes]] = []  # the client's default headers, raw
        self._bases: dict[bytes, httpx2.Headers] = {}  # per host: Host and the defaults
        self._timeout: dict[str, Any] = {}
        self._closed = False

    @property
    def client(self) -> httpx2.AsyncClient:
        return self._client if self._client is not None else self._made()

    def _made(self) -> httpx2.AsyncClient:
        if self._client is None:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            settings = self._settings
            self._client = httpx2.AsyncClient(
                transport=self._transport,
                verify=True if self._transport is not None else _ssl_context(),
                timeout=httpx2.Timeout(settings.timeout, connect=min(CONNECT_TIMEOUT_CAP, settings.timeout)),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                cookies=httpx2.Cookies(CookieJar(DefaultCookiePolicy(allowed_domains=[]))),  # accepts none
                follow_redirects=False,
            )
            self._headers = list(self._client.headers.raw)
            self._timeout = self._client.timeout.as_dict()
        return self._client

    @property
    def is_closed(self) -> bool:
        return self._closed

    def request(
        self, method: str, url: str, query: dict[str, str] | None, content: bytes | None, content_type: str | None
    ) -> httpx2.Request:
        """The request httpx2's `build_request` would make for these (the pool keeps no cookies)."""
        if self._client is None:
            self._made()  # with its default headers, at the first request
        target = url_of(url, query)
        netloc = target.netloc
        base = self._bases.get(netloc)
        if base is None:  # one per host the routes name
            base = self._bases[netloc] = httpx2.Headers([(b"Host", netloc), *self._headers])
        headers: httpx2.Headers | list[tuple[bytes, bytes]] = base  # copied by the Request
        if content is not None or method in ("POST", "PUT", "PATCH"):
            headers = [*base.raw, (b"Content-Length", str(len(content or b"")).encode())]
            if content_type is not None:
                headers.append((b"Content-Type", content_type.encode()))
        timeout = {"timeout": self._timeout}
        request = httpx2.Request(
            method, target, headers=headers, stream=httpx2.ByteStream(content or b""), extensions=timeout
        )
        request.read()  # `request.content` readable, as for a request httpx2 builds
        return request

    @asynccontextmanager
    async def stream(self, request: httpx2.Request, auth: httpx2.Auth) -> AsyncIterator[httpx2.Response]:
        """Send `request`; its answer, streamed, closed on exit (as `AsyncClient.stream`)."""
        answer = await self.client.send(request, auth=auth, stream=True)
        try:
            yield answer
        finally:
            await answer.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
