"""Project-wide checks that belong to the one test command: lint, format, strict typing, README table.

The three checker commands start when this module is collected and run in the background while the rest of the
suite runs (on the other cores); each test only waits for its result. A cold mypy (a fresh clone has no
.mypy_cache) takes ~10 s of CPU, which this takes off the suite's wall time. Under pytest-xdist every worker
collects the module, and each used to run all three: they start instead in the one worker that runs the module
(conftest keeps it whole on one worker, and among the first modules handed out), when its first check waits."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

import pytest

from systeme_mcp.docs import update_readme

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300.0


def _tool(name: str) -> str | None:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    return exe if Path(exe).exists() else None


class Check:
    """One checker command, run in the project root from `start`; `result` waits for it."""

    def __init__(self, tool: str, *args: str) -> None:
        self.tool, self.args = tool, args
        # a file, not a pipe: a long report never blocks the command; it lives until `stop`
        self.output: IO[str] | None = None
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        if self.output is not None:
            return
        self.output = tempfile.TemporaryFile("w+")  # noqa: SIM115
        exe = _tool(self.tool)
        if exe is not None:
            self.proc = subprocess.Popen(
                [exe, *self.args], cwd=ROOT, stdout=self.output, stderr=subprocess.STDOUT, text=True
            )
        atexit.register(self.stop)  # deselected or interrupted: do not leave it running

    def result(self) -> tuple[int, str]:
        """(exit status, output) of the finished command (all three started first, so that they run together)."""
        for check in CHECKS:
            check.start()
        assert self.output is not None
        if self.proc is None:
            pytest.fail(f"{self.tool} is not installed: pip install '.[test]'")
        status = self.proc.wait(timeout=TIMEOUT)
        self.output.seek(0)
        return status, self.output.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.output is not None:
            self.output.close()


RUFF_CHECK = Check("ruff", "check", ".")
RUFF_FORMAT = Check("ruff", "format", "--check", ".")
MYPY = Check("mypy", "--strict", "systeme_mcp", "tests", "benchmarks", "scripts")
CHECKS = (RUFF_CHECK, RUFF_FORMAT, MYPY)
if "PYTEST_XDIST_WORKER" not in os.environ:  # one process runs everything: start now, overlap with the rest
    for check in CHECKS:
        check.start()


def test_readme_tool_table_is_current() -> None:
    assert update_readme(ROOT / "README.md", check=True), "run: python scripts/update_readme.py"


def test_ruff_lint_is_clean() -> None:
    status, output = RUFF_CHECK.result()
    assert status == 0, output


def test_ruff_format_is_clean() -> None:
    status, output = RUFF_FORMAT.result()
    assert status == 0, output


def test_mypy_strict_is_clean() -> None:
    status, output = MYPY.result()
    assert status == 0, output[-4000:]
