"""`systeme-mcp demo` runs every step as scripted: only the steps that show a refusal answer with an error."""

from __future__ import annotations

import io

import pytest

from systeme_mcp import demo

pytestmark = pytest.mark.anyio


async def test_the_demo_runs_every_step() -> None:
    out = io.StringIO()
    assert await demo._session(out) == 0, out.getvalue()[-2000:]
    shown = out.getvalue()
    assert shown.count("→ get_job(") >= 2  # the bulk step outlived its call budget and was checked as a job
