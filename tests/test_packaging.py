"""The wheel ships the operation declarations inside the package, byte for byte, and the typing marker."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The PEP 517 hook `pip wheel --no-build-isolation` calls, called directly in a fresh interpreter: the same
# wheel, without pip's start-up (about half a second to a second and a half here).
BUILD_WHEEL = "import importlib, sys; print(importlib.import_module(sys.argv[1]).build_wheel(sys.argv[2]))"


def test_wheel_ships_the_declarations_and_py_typed(tmp_path: Path) -> None:
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["build-backend"]
    build = [sys.executable, "-c", BUILD_WHEEL, backend, str(tmp_path)]
    run = subprocess.run(build, cwd=ROOT, timeout=120, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    wheels = list(tmp_path.glob("systeme_mcp-*.whl"))
    assert len(wheels) == 1, wheels
    declarations = sorted((ROOT / "tool_specs").glob("*.toml"))
    assert declarations, "no tool_specs/*.toml in the checkout"
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        for source in declarations:
            member = f"systeme_mcp/tool_specs/{source.name}"
            assert member in names, f"{member} missing from {wheels[0].name}"
            assert wheel.read(member) == source.read_bytes(), f"{member} differs from tool_specs/{source.name}"
        assert "systeme_mcp/py.typed" in names
