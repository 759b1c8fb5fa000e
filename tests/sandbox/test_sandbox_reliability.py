"""Rate limiting and fault injection, in-process and over real HTTP."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from systeme_mcp.sandbox import FaultPlan, RateLimit, Sandbox
from systeme_mcp.sandbox.serve import running

from .sandbox_testkit import KEY, MATON, problem

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- rate limiting
class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_token_bucket_headers_and_429() -> None:
    clock = Clock()
    sb = Sandbox(rate_limit=RateLimit(capacity=3, refill_per_second=0.5), clock=clock)
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url) as c:
        seen = []
        for key in ("a", "b", "c"):  # the budget is per account, shared by every key
            answer = await c.get("/api/tags", headers={"X-API-Key": key})
            assert answer.status_code == 200
            seen.append((answer.headers["x-ratelimit-limit"], answer.headers["x-ratelimit-remaining"]))
        assert seen == [("3", "2"), ("3", "1"), ("3", "0")]
        over = await c.get("/systeme/api/tags", headers=MATON)  # the gateway spends the same budget
        body = problem(over, 429)
        assert body["detail"] == "Too Many Requests"
        assert over.headers["retry-after"] == "2" and over.headers["x-ratelimit-remaining"] == "0"
        assert over.headers["x-ratelimit-refill"] == "2"
        clock.now += 2.0
        again = await c.get("/api/tags", headers=KEY)
        assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == "0"
        clock.now += 60
        assert (await c.get("/api/tags", headers=KEY)).headers["x-ratelimit-remaining"] == "2"  # capped at capacity
    assert sum(1 for r in sb.requests if r.status == 429) == 1


async def test_headers_on_every_systeme_answer() -> None:
    sb = Sandbox(rate_limit=RateLimit(50, 1.0))
    async with httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url) as c:
        for answer in (
            await c.get("/api/contacts/999999", headers=KEY),
            await c.post("/api/tags", json={}, headers=KEY),
            await c.get("/api/contacts"),
            await c.delete("/api/tags/1", headers=KEY),
        ):
            assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-refill"} <= set(answer.headers), answer
        assert "x-ratelimit-limit" not in (await c.get("/connections", headers=MATON)).headers


async def test_rate_limit_default_and_off(client: httpx2.AsyncClient) -> None:
    assert Sandbox().rate_limit == Sandbox.DEFAULT_RATE_LIMIT
    answer = await client.get("/api/tags")
    assert "x-ratelimit-limit" not in answer.headers  # the fixture turns it off


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("off", None),
        ("5/s", RateLimit(5, 5.0)),
        ("120/m", RateLimit(120, 2.0)),
        ("100:2/s", RateLimit(100, 2.0)),
    ],
)
def test_rate_limit_parse(text: str, expected: RateLimit | None) -> None:
    assert RateLimit.parse(text) == expected


def test_rate_limit_validation() -> None:
    with pytest.raises(ValueError):
        RateLimit(0, 1.0)
    with pytest.raises((ValueError, KeyError)):
        RateLimit.parse("5/fortnight")


# ---------------------------------------------------------------------------- faults in-process
def _tags(sb: Sandbox) -> set[str]:
    return {t.name for t in sb.store.tags.values()}


@pytest.mark.parametrize(
    ("kind", "status", "media"),
    [
        ("500", 500, "application/problem+json"),
        ("502", 502, "text/html"),
        ("503", 503, "text/html"),
        ("429", 429, "application/problem+json"),
    ],
)
async def test_error_faults_apply_nothing(
    local: httpx2.AsyncClient, sb: Sandbox, kind: str, status: int, media: str
) -> None:
    sb.faults.set(FaultPlan(rate=1.0, kinds=(kind,), retry_after=3))
    answer = await local.post("/api/tags", json={"name": "faulted"})
    assert answer.status_code == status and answer.headers["content-type"].startswith(media)
    if kind in ("429", "503"):
        assert answer.headers["retry-after"] == "3"
    assert "faulted" not in _tags(sb)
    assert sb.requests[-1].fault == kind and sb.requests[-1].status == status


@pytest.mark.parametrize(
    ("kind", "error", "applied"),
    [
        ("reset_before", httpx2.RemoteProtocolError, False),
        ("reset_after", httpx2.RemoteProtocolError, True),
        ("refused", httpx2.ConnectError, False),
        ("timeout", httpx2.ReadTimeout, False),
        ("timeout_after", httpx2.ReadTimeout, True),
    ],
)
async def test_network_faults_in_process(
    local: httpx2.AsyncClient, sb: Sandbox, kind: str, error: type[Exception], applied: bool
) -> None:
    sb.faults.set(FaultPlan(kinds=(kind,), timeout_seconds=3600))
    with anyio.fail_after(30), pytest.raises(error):  # in-process timeouts raise at once, never stall an hour
        await local.post("/api/tags", json={"name": "maybe"})
    assert ("maybe" in _tags(sb)) is applied
    assert sb.requests[-1].fault == kind and sb.requests[-1].status is None
    sb.faults.clear()
    again = await local.post("/api/tags", json={"name": "maybe"})
    assert again.status_code == (422 if applied else 201)  # a blind retry after reset_after hits the duplicate


async def test_slow_fault(local: httpx2.AsyncClient, sb: Sandbox) -> None:
    sb.faults.set(FaultPlan(kinds=("slow",), slow_seconds=3600))
    answers: list[int] = []

    async def get() -> None:
        answers.append((await local.get("/api/tags")).status_code)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            await anyio.wait_all_tasks_blocked()  # nothing can run: the request waits inside the slow fault
            pending = (list(answers), sb.requests[-1].fault, sb.requests[-1].status)
            tg.cancel_scope.cancel()
    assert pending == ([], "slow", None)  # received, not answered
    sb.faults.set(FaultPlan(kinds=("slow",), slow_seconds=0))
    assert (await local.get("/api/tags")).status_code == 200 and sb.requests[-1].fault == "slow"


async def test_faults_are_reproducible(local: httpx2.AsyncClient, sb: Sandbox) -> None:
    async def run(seed: int) -> list[int]:
        sb.faults.set(FaultPlan(rate=0.3, kinds=("500", "503", "429"), seed=seed))
        return [(await local.get("/api/tags")).status_code for _ in range(40)]

    first, second, other = await run(7), await run(7), await run(8)
    assert first == second and first != other
    assert 0 < sum(s != 200 for s in first) < 40


async def test_route_filter_burst_and_cap(local: httpx2.AsyncClient, sb: Sandbox) -> None:
    sb.faults.set(FaultPlan(kinds=("429",), routes=["POST /api/contacts"], burst=2, max_faults=2))
    assert (await local.get("/api/contacts")).status_code == 200
    first = await local.post("/api/contacts", json={"email": "burst@acme.test"})
    second = await local.post("/systeme/api/contacts", json={"email": "burst@acme.test"}, headers=MATON)
    third = await local.post("/api/contacts", json={"email": "burst@acme.test"})
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 201]
    assert [k for _, _, k in sb.faults.fired] == ["429", "429"]
    sb.faults.set(FaultPlan(kinds=("500",), routes=["/api/tags/*"]))
    assert (await local.get("/api/tags")).status_code == 200
    assert (await local.get("/api/tags/1")).status_code == 500


def test_fault_plan_validation() -> None:
    with pytest.raises(ValueError):
        FaultPlan(kinds=("meteor",))
    with pytest.raises(ValueError):
        FaultPlan(rate=2.0)
    plan = FaultPlan.from_json({"rate": 0.5, "kinds": ["500"], "routes": ["GET *"]})
    assert plan.kinds == ("500",) and plan.routes == ("GET *",) and plan.as_json()["kinds"] == ["500"]
    with pytest.raises(ValueError):
        FaultPlan.from_json({"bogus": 1})


async def test_requests_log_and_reset(local: httpx2.AsyncClient, sb: Sandbox) -> None:
    sb.faults.set(FaultPlan(kinds=("500",)))
    await local.get("/api/tags", params={"limit": 10})
    record = sb.requests[-1]
    assert (record.method, record.path, record.query, record.family, record.fault) == (
        "GET",
        "/api/tags",
        "limit=10",
        "direct",
        "500",
    )
    assert (await local.post("/__sandbox/reset")).status_code == 200  # admin requests are not logged
    assert len(sb.requests) == 0 and sb.faults.plan is None
    await local.get("/api/tags")
    sb.clear_requests()
    assert len(sb.requests) == 0


# ---------------------------------------------------------------------------- faults over HTTP
async def test_network_faults_over_http() -> None:
    sb = Sandbox(rate_limit=None)
    with running(sb) as base:
        async with httpx2.AsyncClient(base_url=base, headers=KEY, timeout=2.0) as c:
            for kind, applied in (("reset_before", False), ("reset_after", True)):
                sb.faults.set(FaultPlan(kinds=(kind,)))
                with pytest.raises(httpx2.TransportError):
                    await c.post("/api/tags", json={"name": kind})
                assert (kind in _tags(sb)) is applied
            sb.faults.set(FaultPlan(kinds=("timeout_after",), timeout_seconds=0.3))  # the client gives up at 0.1 s
            with pytest.raises(httpx2.ReadTimeout):
                await c.post("/api/tags", json={"name": "late"}, timeout=0.1)
            assert "late" in _tags(sb)
            sb.faults.set(FaultPlan(kinds=("503",), retry_after=2))
            answer = await c.get("/api/tags")
            assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
            sb.faults.clear()
            assert (await c.get("/api/tags")).status_code == 200
