"""The shared client's HTTP policy, one rule per test, with httpx2.MockTransport for exact failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx2
import pytest

from systeme_mcp import errors
from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.policy import backoff_delay
from systeme_mcp.wire import RequestPlan

pytestmark = pytest.mark.anyio

KEY = "sk-live-very-secret-key-123"
GET = RequestPlan("GET", "/api/contacts", idempotent=True)
POST = RequestPlan("POST", "/api/contacts", body={"email": "a@b.co"}, idempotent=False)


class Recorder:
    """A MockTransport handler answering from a script and recording each request."""

    def __init__(self, *script: Callable[[httpx2.Request], httpx2.Response] | int | Exception) -> None:
        self.script = list(script)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return httpx2.Response(step, json={"items": [], "hasMore": False} if step < 400 else {"detail": "x"})
        return step(request)


def make_client(handler: Recorder, sleeps: list[float] | None = None, **settings: Any) -> SystemeClient:
    options: dict[str, Any] = {"backend": "direct", "systeme_api_key": KEY, "max_attempts": 4}
    options.update(settings)

    clock = [1000.0]

    async def fake_sleep(seconds: float) -> None:
        clock[0] += seconds
        if sleeps is not None:
            sleeps.append(seconds)

    return SystemeClient(
        Settings(**options), transport=httpx2.MockTransport(handler), sleep=fake_sleep, clock=lambda: clock[0]
    )


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_idempotent_request_is_retried_on_transient_status(status: int) -> None:
    handler = Recorder(status, 200)
    answer = await make_client(handler).send(GET)
    assert answer.status == 200 and answer.attempts == 2 and len(handler.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500])
async def test_idempotent_request_is_not_retried_on_final_status(status: int) -> None:
    handler = Recorder(status, 200)
    with pytest.raises(errors.ApiError):
        await make_client(handler).send(GET)
    assert len(handler.requests) == 1


@pytest.mark.parametrize(
    "failure", [httpx2.ConnectError("refused"), httpx2.ReadTimeout("slow"), httpx2.RemoteProtocolError("reset")]
)
async def test_idempotent_request_is_retried_on_transport_errors(failure: Exception) -> None:
    handler = Recorder(failure, 200)
    assert (await make_client(handler).send(GET)).attempts == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_post_is_never_repeated_after_a_server_error(status: int) -> None:
    handler = Recorder(status, 201)
    with pytest.raises(errors.ApiError):
        await make_client(handler).send(POST)
    assert len(handler.requests) == 1


@pytest.mark.parametrize("failure", [httpx2.ReadTimeout("slow"), httpx2.RemoteProtocolError("reset")])
async def test_post_is_not_repeated_when_it_may_have_arrived(failure: Exception) -> None:
    handler = Recorder(failure, 201)
    with pytest.raises(errors.TransportError) as caught:
        await make_client(handler).send(POST)
    assert caught.value.sent is True and len(handler.requests) == 1


async def test_post_is_retried_when_it_provably_never_arrived() -> None:
    handler = Recorder(httpx2.ConnectError("refused"), 201)
    assert (await make_client(handler).send(POST)).attempts == 2


async def test_post_is_retried_after_429_honouring_retry_after() -> None:
    sleeps: list[float] = []
    handler = Recorder(lambda r: httpx2.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow"}), 201)
    answer = await make_client(handler, sleeps).send(POST)
    assert answer.attempts == 2 and sleeps == [3.0]


async def test_retries_stop_after_max_attempts() -> None:
    handler = Recorder(503)
    with pytest.raises(errors.ServerError) as caught:
        await make_client(handler, max_attempts=3).send(GET)
    assert len(handler.requests) == 3 and caught.value.attempts == 3


async def test_retries_stop_when_the_time_budget_would_be_exceeded() -> None:
    handler = Recorder(lambda r: httpx2.Response(429, headers={"Retry-After": "30"}, json={}), 200)
    with pytest.raises(errors.RateLimited) as caught:
        await make_client(handler, retry_budget=10).send(GET)
    assert len(handler.requests) == 1
    assert "retry in 30 s" in caught.value.message()


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    for attempt in range(1, 10):
        delays = [backoff_delay(attempt) for _ in range(50)]
        ceiling = min(8.0, 0.25 * 2 ** (attempt - 1))
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len({round(backoff_delay(3), 6) for _ in range(20)}) > 1, "no jitter"


async def test_cancellation_interrupts_a_backoff_wait() -> None:
    handler = Recorder(lambda r: httpx2.Response(503, headers={"Retry-After": "20"}, json={}), 200)
    waits: list[float] = []
    waiting = anyio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        waiting.set()
        await anyio.sleep(seconds)  # the real wait: only a cancellation can end it within fail_after(10)

    client = SystemeClient(
        Settings(backend="direct", systeme_api_key=KEY, retry_budget=60),
        transport=httpx2.MockTransport(handler),
        sleep=sleep,
    )
    scope = anyio.CancelScope()

    async def call() -> None:
        with scope:
            await client.send(GET)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await waiting.wait()  # the client is in its backoff wait
            scope.cancel()
    assert scope.cancelled_caught and waits == [20.0]
    assert len(handler.requests) == 1


async def test_read_only_mode_refuses_writes_without_sending() -> None:
    handler = Recorder(201)
    with pytest.raises(errors.ReadOnlyRefused):
        await make_client(handler, read_only=True).send(POST)
    assert handler.requests == []


async def test_direct_backend_sends_the_api_key_header_and_merge_patch() -> None:
    handler = Recorder(200)
    await make_client(handler).send(RequestPlan("PATCH", "/api/contacts/1", body={"locale": "fr"}))
    sent = handler.requests[0]
    assert sent.headers["X-API-Key"] == KEY and "authorization" not in sent.headers
    assert sent.headers["Content-Type"] == "application/merge-patch+json"
    assert str(sent.url) == "https://api.systeme.io/api/contacts/1"


async def test_gateway_backend_sends_bearer_and_connection_headers() -> None:
    handler = Recorder(200)
    connection = "21fd90f9-5935-43cd-b6c8-bde9d915ca80"
    client = make_client(
        handler, backend="gateway", maton_api_key=KEY, systeme_api_key=None, maton_connection=connection
    )
    await client.send(RequestPlan("POST", "/api/tags", body={"name": "x"}, idempotent=False))
    sent = handler.requests[0]
    assert sent.headers["Authorization"] == f"Bearer {KEY}" and sent.headers["Maton-Connection"] == connection
    assert sent.headers["Content-Type"] == "application/json"
    assert str(sent.url) == "https://api.maton.ai/systeme/api/tags"


async def test_secrets_echoed_by_the_server_never_reach_the_message() -> None:
    handler = Recorder(
        lambda r: httpx2.Response(
            422, json={"detail": f"bad key {KEY}", "violations": [{"propertyPath": "k", "message": KEY}]}
        )
    )
    with pytest.raises(errors.ApiError) as caught:
        await make_client(handler).send(POST)
    assert KEY not in caught.value.message() and "[redacted]" in caught.value.message()


async def test_pacer_waits_when_the_server_says_the_budget_is_spent() -> None:
    sleeps: list[float] = []
    headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Refill": "2"}
    handler = Recorder(lambda r: httpx2.Response(200, headers=headers, json={"items": [], "hasMore": False}))
    client = make_client(handler, sleeps)
    await client.send(GET)
    assert sleeps == []
    await client.send(GET)
    assert sleeps and 0 < sum(sleeps) <= 2.0


async def test_cookies_an_upstream_sets_are_never_sent_back() -> None:
    handler = Recorder(lambda r: httpx2.Response(200, json={"items": []}, headers={"Set-Cookie": "track=1; Path=/"}))
    client = make_client(handler)
    await client.send(GET)
    await client.send(GET)
    assert len(handler.requests) == 2 and "cookie" not in handler.requests[1].headers
