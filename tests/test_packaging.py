"""The wheel ships the operation declarations inside the package, byte for byte, and the typing marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_declarations_and_py_typed(tmp_path: Path) -> None:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip_wheel, "-w", str(tmp_path), str(ROOT)], check=True, timeout=120)
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
