"""What a server loads before its first tool call: neither the embedded sandbox nor the HTTP pool (httpcore2, the
certificates) — a stdio client's tools/list does not wait for them (cold start, issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LIST_THEN_CALL = """
import sys, anyio
from mcp import Client
from systeme_mcp.config import Settings
from systeme_mcp.server import serving

def loaded():
    return sorted({m.split(".")[0] + ("." + m.split(".")[1] if m.startswith("systeme_mcp.") else "")
                   for m in sys.modules if m.startswith(("systeme_mcp.sandbox", "httpcore2"))})

async def main():
    async with serving(Settings(toolsets=["all"])) as server, Client(server) as client:
        await client.list_tools()
        print(loaded())
        await client.call_tool("get_tag", {"tag_id": 1})
        print(loaded())

anyio.run(main)
"""


@pytest.mark.parametrize(
    ("env", "after_call"),
    [
        ({}, "['systeme_mcp.sandbox']"),  # no key: the embedded sandbox, built at the first call
        ({"SYSTEME_API_KEY": "start-up-test-key-0123456789", "SYSTEME_API_URL": "http://127.0.0.1:9"}, "['httpcore2']"),
    ],
    ids=["sandbox", "direct"],
)
def test_tools_list_loads_neither_the_sandbox_nor_the_http_pool(env: dict[str, str], after_call: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEME_", "MATON_"))}
    run = subprocess.run(
        [sys.executable, "-c", LIST_THEN_CALL], env=clean | env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    listed, called = run.stdout.split("\n")[:2]
    assert listed == "[]", f"loaded before the first call: {listed}"
    assert called == after_call
