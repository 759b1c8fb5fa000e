"""The distributions: the wheel ships the operation declarations inside the package, byte for byte, and the
typing marker; its metadata is complete (SPDX licence with the file, URLs, classifiers, the README with the
registry's mcp-name marker as description); installed, `python -m systeme_mcp --version` and the console
script's entry point work; the sdist carries what a rebuild and the tests need.

`scripts/check_dist.py` (run by CI) goes further with the release tools: `python -m build`, `twine check`, and
the wheel installed with its dependencies in a fresh virtual environment running `systeme-mcp demo`."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

import pytest

import systeme_mcp

ROOT = Path(__file__).resolve().parent.parent

# The PEP 517 hooks `pip wheel --no-build-isolation` / `python -m build` call, called directly in a fresh
# interpreter: the same distributions, without pip's start-up (about half a second to a second and a half here).
BUILD = "import importlib, sys; print(getattr(importlib.import_module(sys.argv[1]), sys.argv[2])(sys.argv[3]))"


def _build(hook: str, into: Path) -> Path:
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["build-backend"]
    run = subprocess.run(
        [sys.executable, "-c", BUILD, backend, hook, str(into)], cwd=ROOT, timeout=120, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return into / run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("build_wheel", tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return HeaderParser().parsestr(archive.read(name).decode("utf-8"))


def test_wheel_ships_the_declarations_and_py_typed(wheel: Path) -> None:
    assert wheel.name == f"systeme_mcp-{systeme_mcp.__version__}-py3-none-any.whl"
    declarations = sorted((ROOT / "tool_specs").glob("*.toml"))
    assert declarations, "no tool_specs/*.toml in the checkout"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for source in declarations:
            member = f"systeme_mcp/tool_specs/{source.name}"
            assert member in names, f"{member} missing from {wheel.name}"
            assert archive.read(member) == source.read_bytes(), f"{member} differs from tool_specs/{source.name}"
        assert "systeme_mcp/py.typed" in names
        assert "systeme_mcp/__main__.py" in names
        dist_info = f"systeme_mcp-{systeme_mcp.__version__}.dist-info"
        assert archive.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        scripts = archive.read(f"{dist_info}/entry_points.txt").decode()
        assert "systeme-mcp = systeme_mcp.cli:main" in scripts


def test_wheel_metadata_is_complete(metadata: Message) -> None:
    assert metadata["Name"] == "systeme-mcp"
    assert metadata["Version"] == systeme_mcp.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Description-Content-Type"] == "text/markdown"
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Repository", "Issues"} <= set(urls)
    assert all(u.startswith("https://github.com/systeme-mcp/systeme-mcp") for u in urls.values()), urls
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3.11" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers), "the SPDX expression replaces licence classifiers"
    assert "mcp" in (metadata["Keywords"] or "").split(",")
    assert metadata.get_all("Author") or metadata.get_all("Author-email")
    requirements = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("mcp") for r in requirements)


def test_the_description_is_the_readme_with_the_registry_marker(metadata: Message) -> None:
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert "mcp-name: io.github.systeme-mcp/systeme-mcp" in description
    assert description.strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()


def test_the_installed_wheel_runs(wheel: Path, tmp_path: Path) -> None:
    """A pure wheel installs by unpacking into site-packages; unpacked onto PYTHONPATH, ahead of this checkout's
    editable install, it answers `python -m systeme_mcp --version`, and its console-script entry point too."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    check = "import systeme_mcp; print(systeme_mcp.__file__)"
    where = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(site)), f"not the wheel's package: {where.stdout}{where.stderr}"
    version = subprocess.run(
        [sys.executable, "-m", "systeme_mcp", "--version"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (version.returncode, version.stdout.strip()) == (0, f"systeme-mcp {systeme_mcp.__version__}"), version
    script = (
        "import sys; from importlib.metadata import distribution; d = distribution('systeme-mcp');"
        "(ep,) = [e for e in d.entry_points if e.name == 'systeme-mcp' and e.group == 'console_scripts'];"
        "print(d.locate_file(''), file=sys.stderr); sys.exit(ep.load()(['--version']))"
    )
    console = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert console.returncode == 0 and console.stdout.strip() == f"systeme-mcp {systeme_mcp.__version__}", console
    assert console.stderr.strip().startswith(str(site)), console.stderr


def test_the_sdist_carries_what_a_rebuild_needs(tmp_path: Path) -> None:
    sdist = _build("build_sdist", tmp_path)
    assert sdist.name == f"systeme_mcp-{systeme_mcp.__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "server.json", "systeme_mcp/__main__.py"):
        assert needed in names, f"{needed} missing from {sdist.name}"
    assert any(n.startswith("tool_specs/") for n in names) and "tests/schemas/mcp-registry-server.schema.json" in names
