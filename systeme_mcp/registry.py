"""The registry: every tool the server can offer, assembled in one place and used by the server, the docs and
the tests. Built once per catalog (cached), then filtered by toolsets and read-only mode."""

from __future__ import annotations

from functools import cache

from .bulk import bulk_tools
from .catalog import TOOLSET_ORDER, Catalog, load_catalog
from .config import Settings
from .finder import find_tool
from .operations import declared_tool
from .tools import ToolDef
from .upsert import get_by_email_tool, upsert_tool

# Loaded when SYSTEME_TOOLSETS / --toolsets is not set: the core account tools. funnels, mailing and sms are
# opt-in (e.g. SYSTEME_TOOLSETS=all, or contacts,tags,mailing) so the default tool list stays affordable.
OPT_IN_TOOLSETS = ("funnels", "mailing", "sms")
DEFAULT_TOOLSETS = tuple(t for t in TOOLSET_ORDER if t not in OPT_IN_TOOLSETS)
ALL = "all"


@cache
def full_registry(catalog: Catalog) -> dict[str, ToolDef]:
    """Every tool, by name: the declared operations in declaration order, then the workflow tools."""
    registry = {op.name: declared_tool(catalog, op) for op in catalog}
    workflows = [find_tool(catalog), get_by_email_tool(catalog), upsert_tool(catalog), *bulk_tools(catalog)]
    for tool in workflows:
        if tool.name in registry:
            raise ValueError(f"tool {tool.name} is defined twice")
        registry[tool.name] = tool
    return registry


def select(registry: dict[str, ToolDef], toolsets: list[str] | None, read_only: bool) -> dict[str, ToolDef]:
    """The tools to expose: the chosen toolsets (DEFAULT_TOOLSETS if none, every one for `all`), only
    read-only ones if asked."""
    known = sorted({t.toolset for t in registry.values()})
    unknown = [name for name in toolsets or [] if name not in known and name != ALL]
    if unknown:
        raise ValueError(f"unknown toolset(s): {', '.join(unknown)}; valid toolsets: {', '.join(known)} (or `{ALL}`)")
    chosen = set(known) if toolsets and ALL in toolsets else set(toolsets or DEFAULT_TOOLSETS)
    return {name: t for name, t in registry.items() if t.toolset in chosen and (t.read_only or not read_only)}


def registry_for(settings: Settings, catalog: Catalog | None = None) -> dict[str, ToolDef]:
    """The tools a server with these settings exposes."""
    return select(full_registry(catalog or load_catalog()), settings.toolsets, settings.read_only)
