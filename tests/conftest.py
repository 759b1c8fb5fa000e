"""Shared fixtures: a fresh sandbox per test, the server over it, and real MCP client sessions in both
protocol eras (2026-07-28 "modern" and the 2025-11-25 handshake "legacy")."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from systeme_mcp.catalog import Catalog, load_catalog
from systeme_mcp.config import Settings
from systeme_mcp.runtime import Runtime, open_runtime
from systeme_mcp.server import create_server

from .redis_server import redis_server, redis_url  # a real Redis (its fixtures are the suite's)

__all__ = ["redis_server", "redis_url"]

ERAS = ["modern", "legacy"]
# A server on a real account keeps its jobs in the user's state directory (jobstore.default_state_dir): the tests'
# servers, and the server processes they start, keep theirs in a directory of their own instead.
os.environ["XDG_STATE_HOME"] = STATE_HOME = tempfile.mkdtemp(prefix="systeme-mcp-test-state-")
atexit.register(shutil.rmtree, STATE_HOME, True)
# The suite starts ~100 server, sandbox and CLI processes. With PYTHONDONTWRITEBYTECODE set (as on these machines)
# each recompiled every module of the package from source (~0.2 s of CPU a start); an installed server has its
# bytecode compiled at install. The first process now writes it (to the gitignored __pycache__), the rest reuse it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: half as many workers again as there are cores (3 on 2 cores). About a third of the suite's time a
    worker waits rather than computes — on the server processes it starts, on rate limits and leases that pace a
    test by design — and with one worker per core that third of the machine sat idle (measured on 2 cores: ~60 of
    ~205 core-seconds). PYTEST_XDIST_AUTO_NUM_WORKERS, when set, decides instead (xdist's own hook reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + max(1, cores // 2)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's `load` distribution, except that each `test_fleet*.py` module runs whole on one worker, so
    its module-scoped fleet of processes starts once, and so does test_quality.py, whose checkers then run once
    a run, not once a worker (xdist's own `loadgroup` cannot: its marks do not work with pytest 9, which made node
    ids read-only). Whole modules are handed out first (xdist orders scopes by their number of tests)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]  # lazy: only under xdist

    class FleetModulesTogether(LoadScopeScheduling):  # type: ignore[misc]  # (xdist has no type hints)
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            name = module.rpartition("/")[2]
            return module if name.startswith("test_fleet") or name == "test_quality.py" else nodeid

    return FleetModulesTogether(config, log)


@pytest.fixture(scope="session")  # session-wide, so module-scoped async fixtures (a test_fleet* fleet) can use it
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """Extra `Sandbox` options for `sandbox`; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def sandbox(sandbox_options: dict[str, Any]) -> Any:
    from systeme_mcp.sandbox import Sandbox

    return Sandbox(**{"rate_limit": None, "membership_delay": 0.0, **sandbox_options})


def sandbox_settings(**overrides: Any) -> Settings:
    options: dict[str, Any] = {"backend": "sandbox", "confirm_destructive": False, "max_attempts": 4}
    options.update(overrides)
    return Settings(**options)


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    """Settings overrides for `runtime`; a test module overrides this fixture (e.g. to load every toolset)."""
    return {}


@pytest.fixture
async def runtime(
    sandbox: Any, runtime_settings: dict[str, Any], request: pytest.FixtureRequest
) -> AsyncIterator[Runtime]:
    """The server's runtime on the sandbox; settings overrides from `runtime_settings`, then from indirect
    parametrization. The client's waits (backoff, Retry-After, pacing) run on a virtual clock: the same retries,
    no wall-clock time."""
    from .helpers import VirtualClock

    overrides: dict[str, Any] = {**runtime_settings, **getattr(request, "param", {})}
    clock = VirtualClock()
    async with open_runtime(sandbox_settings(**overrides), sandbox=sandbox, sleep=clock.sleep, clock=clock) as rt:
        yield rt


@pytest.fixture(params=ERAS)
async def mcp(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Client]:
    """A real MCP client session on the server, in each protocol era."""
    mode = "legacy" if request.param == "legacy" else "auto"
    async with Client(create_server(runtime), mode=mode, cache=None) as client:
        yield client


@pytest.fixture
async def api(sandbox: Any) -> AsyncIterator[Any]:
    """Raw HTTP access to the sandbox (independent of our declarations), to set up and check state."""
    from .helpers import RawApi

    raw = RawApi(sandbox)
    yield raw
    await raw.aclose()
