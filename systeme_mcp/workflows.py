"""Workflow tools no single API endpoint offers (find, upsert, bulk). Filled in by the workflows work."""

from __future__ import annotations

from .catalog import Catalog
from .tools import ToolDef


def workflow_tools(catalog: Catalog) -> list[ToolDef]:
    """Workflow ToolDefs to register beside the declared operations."""
    return []
