"""Project-wide checks that belong to the one test command: lint, format, strict typing, README table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from systeme_mcp.docs import update_readme

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> list[str]:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        pytest.fail(f"{name} is not installed: pip install '.[test]'")
    return [exe]


def test_readme_tool_table_is_current() -> None:
    assert update_readme(ROOT / "README.md", check=True), "run: python scripts/update_readme.py"


def test_ruff_lint_is_clean() -> None:
    run = subprocess.run([*_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format_is_clean() -> None:
    run = subprocess.run([*_tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_strict_is_clean() -> None:
    paths = ["systeme_mcp", "tests", "benchmarks", "scripts"]
    run = subprocess.run([*_tool("mypy"), "--strict", *paths], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-1000:]
