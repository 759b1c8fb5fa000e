"""Helpers for tests (and benchmarks) that run the server or the sandbox as real processes on 127.0.0.1: a free
port, waiting until a URL answers, a `systeme-mcp` subprocess that is always stopped, an environment without
the caller's credentials or settings, and the one SSL context of the suite's HTTP clients."""

from __future__ import annotations

import functools
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx2

READY_TIMEOUT = 30.0  # seconds for a started process to answer over HTTP


@functools.cache
def tls() -> ssl.SSLContext:
    """The SSL context every HTTP client of the tests shares (`verify=tls()`): an httpx2 client or transport made
    without one loads the CA bundle again (~30 ms of CPU each, ~190 times a suite), though the tests only speak
    plain HTTP to 127.0.0.1."""
    return httpx2.create_ssl_context()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ready(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until `url` answers anything over HTTP (bounded); fails at once if `proc` exits first."""
    with anyio.fail_after(READY_TIMEOUT):
        async with httpx2.AsyncClient(verify=tls()) as http:
            while True:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving {url}")
                try:
                    await http.get(url)
                    return
                except httpx2.TransportError:
                    await anyio.sleep(0.05)  # polling, bounded above


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without SYSTEME_* / MATON_* variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEME_", "MATON_"))}
    env.update(settings)
    return env


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m systeme_mcp.cli ARGS` (stderr discarded); the caller stops it (`stop`)."""
    return subprocess.Popen([sys.executable, "-m", "systeme_mcp.cli", *args], env=env, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc` unless it has exited, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`spawn`, stopped when the block ends."""
    proc = spawn(args, env)
    try:
        yield proc
    finally:
        stop(proc)
