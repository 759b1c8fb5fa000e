"""A real Redis for the tests: the Debian `redis-server` binary, started once per test process (each pytest-xdist
worker has its own) on a free port in a temporary directory, with no persistence, and stopped at the end.

`redis_server` is its base URL; `redis_url` is that URL with a namespace of the test's own, so tests sharing the
server never see each other's keys. Without `redis-server` on PATH these tests skip on a developer's machine,
saying why, and fail under CI (`CI=true`), where `.ci/run` installs it."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import free_port

START_TIMEOUT = 10.0  # seconds for a started server to answer PING


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A server answering PING, and its port; a few tries, as another process may take the free port first."""
    for _ in range(3):
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(directory)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return proc, port
            time.sleep(0.02)  # polling, bounded by the deadline
        proc.kill()
        proc.wait()
    raise RuntimeError(f"redis-server did not start (3 tries, {START_TIMEOUT:.0f} s each)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server not installed (Debian: apt-get install redis-server); the Redis store tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " and CI=true: .ci/run installs it")
        pytest.skip(reason)
    proc, port = _start(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The test's own namespace on the session's server."""
    return f"{redis_server}?namespace=test-{secrets.token_hex(6)}"
