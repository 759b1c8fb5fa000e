"""server.json, the MCP Registry entry: valid against the registry's published schema (a pinned copy in
tests/schemas/), and in step with the package (name, version, repository), the README's mcp-name marker (the
registry looks for it in the PyPI description) and the settings it names."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import systeme_mcp

from .setting_names import setting_variables

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "schemas" / "mcp-registry-server.schema.json"
# sha256 of https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json, byte for byte (from the
# modelcontextprotocol/static repository, schemas/2025-12-11/server.schema.json). A newer schema is a deliberate
# change: replace the file, this pin and server.json's $schema together.
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"


def _entry() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return data


def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA.read_bytes())
    return data


def _problems(entry: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}" for e in validator.iter_errors(entry)]


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def test_the_vendored_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert _entry()["$schema"] == _schema()["$id"]


def test_server_json_is_valid_against_the_registry_schema() -> None:
    assert _problems(_entry()) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda e: e.update(description="x" * 101), "description"),
        (lambda e: e.update(name="systeme-mcp"), "name"),
        (lambda e: e["packages"][0].pop("transport"), "packages/0"),
        (lambda e: e["packages"][0].update(version="latest"), "packages/0/version"),
    ],
)
def test_the_schema_check_can_fail(change: Any, where: str) -> None:
    broken = copy.deepcopy(_entry())
    change(broken)
    assert any(p.startswith(where) for p in _problems(broken)), _problems(broken)


def test_the_entry_matches_the_package() -> None:
    entry, project = _entry(), _project()
    assert entry["version"] == systeme_mcp.__version__, "server.json version differs from the package version"
    (package,) = entry["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == project["name"]
    assert package["version"] == systeme_mcp.__version__
    assert package["transport"] == {"type": "stdio"}
    assert entry["repository"]["url"] == project["urls"]["Repository"]
    owner = entry["repository"]["url"].removeprefix("https://github.com/").split("/")[0]
    assert entry["name"] == f"io.github.{owner}/{project['name']}", "io.github.* names must match the repository"


def test_the_readme_carries_the_mcp_name_marker() -> None:
    """The registry proves ownership of a PyPI package by finding `mcp-name: <name>` in its description (the
    README, as pyproject's `readme` ships it), followed by a boundary."""
    readme = (ROOT / _project()["readme"]).read_text(encoding="utf-8")
    name = re.escape(_entry()["name"])
    assert re.search(rf"mcp-name: {name}(?=\s|-->|<|$)", readme), "README lacks the mcp-name marker"


def test_every_variable_named_is_a_setting_and_keys_are_secret() -> None:
    variables = _entry()["packages"][0]["environmentVariables"]
    names = {v["name"] for v in variables}
    assert names <= setting_variables(), names - setting_variables()
    assert {"MATON_API_KEY", "SYSTEME_API_KEY"} <= names
    for variable in variables:
        assert variable.get("isSecret", False) == variable["name"].endswith("_KEY"), variable["name"]
        assert not variable.get("isRequired", False), "no variable is required: without keys it runs on the sandbox"
