"""The reviewed snapshot of every tool's definition: one file per tool, `tests/snapshots/tools/<tool>.json`.

Written once, used twice: `tests/test_catalog.py` fails when a file is missing, differs or belongs to a tool that
no longer exists; `scripts/update_snapshots.py` rewrites them after a reviewed change. Imports only the package
(never pytest or the test fixtures), so the script can use it as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from systeme_mcp.catalog import Catalog, load_catalog
from systeme_mcp.registry import full_registry
from systeme_mcp.tools import ToolDef

ROOT = Path(__file__).resolve().parent.parent
FOLDER = Path(__file__).resolve().parent / "snapshots" / "tools"
UPDATE_COMMAND = "python scripts/update_snapshots.py"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # the MCP tool-name rule, minus a leading dot


def registry(catalog: Catalog | None = None) -> dict[str, ToolDef]:
    """Every tool the server can offer (all toolsets), by name, as the catalog tests check them."""
    return full_registry(catalog if catalog is not None else load_catalog())


def path_for(name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise ValueError(f"tool name {name!r} cannot name a snapshot file")
    return FOLDER / f"{name}.json"


def render(tool: ToolDef) -> str:
    """A tool's snapshot: its tools/list entry as JSON (one-space indent, fields in model order), newline-ended."""
    data = tool.tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def stale(names: Iterable[str]) -> list[Path]:
    """Snapshot files of tools not in `names`."""
    known = set(names)
    return sorted(p for p in FOLDER.glob("*.json") if p.stem not in known)


def write_all(tools: dict[str, ToolDef]) -> tuple[list[Path], list[Path]]:
    """(Re)write the snapshot of every tool in `tools` and delete the stale ones: (written, deleted) files."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, tool in tools.items():
        path, text = path_for(name), render(tool)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
            written.append(path)
    deleted = stale(tools)
    for path in deleted:
        path.unlink()
    return written, deleted
