"""The one registry of per-tool happy-path cases, by tool name: `core` and `marketing` register into `CASES`
with `@case("tool")`. tests/test_every_tool.py runs each, and checks that the names are exactly the catalog's."""

from __future__ import annotations

from ..helpers import Cases

CASES = Cases()
case = CASES.register

from . import core, marketing  # noqa: E402, F401  (importing them registers their cases)
