"""The API coverage table in README (issue 15, item 4): generated from the catalog (every declared operation) and
docs/api-coverage.toml (every known operation no tool declares, with why), current, and consistent with the catalog.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from systeme_mcp.catalog import Catalog

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "update_readme.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("update_readme", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_coverage_table_in_readme_is_current() -> None:
    assert script().update_coverage(check=True), "run: python scripts/update_readme.py"


def test_every_declared_operation_is_a_covered_row(catalog: Catalog) -> None:
    update = script()
    table = update.coverage_table(catalog, update.known_uncovered())
    for op in catalog:
        assert f"| `{op.method} {op.path}` " in table and f"yes: `{op.name}`" in table, op.name
    uncovered = update.known_uncovered()["uncovered"]
    assert uncovered and table.count("| no: ") == len(uncovered)


def test_the_coverage_data_agrees_with_the_catalog(catalog: Catalog) -> None:
    update = script()
    assert update.coverage_problems(catalog, update.known_uncovered()) == []


def test_the_consistency_check_can_fail(catalog: Catalog) -> None:
    update = script()
    bad: dict[str, Any] = {
        "uncovered": [
            {"group": "tags", "operation": "GET /api/tags/{id}", "reason": "left out", "why": "x"},  # declared
            {"group": "x", "operation": "something", "reason": "forgotten", "why": "x"},
        ],
        "notes": {"no_such_tool": "x"},
    }
    problems = update.coverage_problems(catalog, bad)
    assert len(problems) == 3, problems
