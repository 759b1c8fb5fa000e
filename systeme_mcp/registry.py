"""The registry: every tool the server can offer, assembled in one place and used by the server, the docs and
the tests. Built once per catalog (cached), then filtered by toolsets and read-only mode."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from .bulk import bulk_tools
from .catalog import TOOLSET_ORDER, Catalog, load_catalog
from .config import Backend, Settings
from .discovery import discovery_tools
from .exporter import export_tool
from .finder import find_tool
from .importer import import_tool
from .job_tools import job_tools
from .operations import declared_tool
from .tools import ToolDef
from .upsert import get_by_email_tool, upsert_tool

# Loaded when SYSTEME_TOOLSETS / --toolsets is not set (or names `default`): one account's everyday work, contact
# by contact (contacts, tags, fields, school, community, workflows), within what clients load (≤ 40 tools, ≤ 5,000
# tokens; tests/test_token_budget.py). Opt-in, as they apply to some jobs only: payment (subscriptions; cancelling
# is a money matter), webhooks (integrations), bulk (many contacts at once), funnels, mailing, sms. Name them
# with the default (SYSTEME_TOOLSETS=default,bulk) or load everything (all).
OPT_IN_TOOLSETS = ("payment", "webhooks", "bulk", "funnels", "mailing", "sms")
DEFAULT_TOOLSETS = tuple(t for t in TOOLSET_ORDER if t not in OPT_IN_TOOLSETS)
# Default toolsets that apply to some backends only: the connections tools talk to Maton's control API, so they
# load with the gateway, and with the sandbox, which models Maton (never with the direct API: no Maton key).
BACKEND_TOOLSETS: dict[str, tuple[Backend, ...]] = {"connections": ("gateway", "sandbox")}
ALL = "all"
DEFAULT = "default"


def default_toolsets(backend: Backend | None = None) -> tuple[str, ...]:
    """The toolsets loaded when none are named: DEFAULT_TOOLSETS, less those that do not apply to `backend`
    (None: every backend's, as with the gateway)."""
    return tuple(t for t in DEFAULT_TOOLSETS if backend is None or backend in BACKEND_TOOLSETS.get(t, (backend,)))


def chosen_toolsets(known: list[str], toolsets: list[str] | None, backend: Backend | None = None) -> set[str]:
    """The toolsets `toolsets` names (`all`: every one; `default` or none: `default_toolsets(backend)`)."""
    unknown = [name for name in toolsets or [] if name not in known and name not in (ALL, DEFAULT)]
    if unknown:
        valid = ", ".join(known)
        raise ValueError(f"unknown toolset(s): {', '.join(unknown)}; valid toolsets: {valid} (or `{ALL}`, `{DEFAULT}`)")
    if toolsets and ALL in toolsets:
        return set(known)
    names = set(toolsets or [DEFAULT])
    return names - {DEFAULT} | (set(default_toolsets(backend)) if DEFAULT in names else set())


def loaded_toolsets(toolsets: list[str] | None, backend: Backend | None = None) -> list[str]:
    """The toolsets these settings load, in listing order (for the account resource and the prompts)."""
    chosen = chosen_toolsets(list(TOOLSET_ORDER), toolsets, backend)
    return [t for t in TOOLSET_ORDER if t in chosen]


@cache
def full_registry(catalog: Catalog) -> dict[str, ToolDef]:
    """Every tool, by name: the declared operations in declaration order, then the workflow tools."""
    registry = {op.name: declared_tool(catalog, op) for op in catalog}
    workflows = [
        find_tool(catalog),
        get_by_email_tool(catalog),
        upsert_tool(catalog),
        *job_tools(),
        *bulk_tools(catalog),
        import_tool(catalog),
        export_tool(catalog),
    ]
    for tool in workflows:
        if tool.name in registry:
            raise ValueError(f"tool {tool.name} is defined twice")
        registry[tool.name] = tool
    return registry


def select(
    registry: dict[str, ToolDef], toolsets: list[str] | None, read_only: bool, backend: Backend | None = None
) -> dict[str, ToolDef]:
    """The tools to expose: the chosen toolsets (see `chosen_toolsets`), only read-only ones if asked."""
    chosen = chosen_toolsets(sorted({t.toolset for t in registry.values()}), toolsets, backend)
    return {name: t for name, t in registry.items() if t.toolset in chosen and (t.read_only or not read_only)}


def registry_for(settings: Settings, catalog: Catalog | None = None) -> dict[str, ToolDef]:
    """The tools a server with these settings exposes (profile `discover`: three tools that reach those)."""
    every = full_registry(catalog or load_catalog())
    chosen = select(every, settings.toolsets, settings.read_only, settings.resolved_backend)
    return discovery_tools(chosen, every) if settings.profile == "discover" else chosen


@dataclass(frozen=True)
class NotLoaded:
    """A tool that exists but this server does not offer, and why: `reasons` holds `toolset` (its toolset is not
    chosen), `backend` (its toolset applies to other backends only), `read_only` (it writes; the server is
    read-only), `profile` (the discover profile reaches it through call_tool). `toolsets`: the SYSTEME_TOOLSETS /
    --toolsets value that would load it; `backends`: those its toolset applies to (all: empty); `writes`: the tool
    is not read-only."""

    name: str
    toolset: str
    reasons: tuple[str, ...]
    toolsets: str
    backend: str
    backends: str
    writes: bool


def not_loaded(name: str, settings: Settings, catalog: Catalog | None = None) -> NotLoaded | None:
    """Why the tool `name` is not offered with these settings; None if it is, or if no tool has that name."""
    every = full_registry(catalog or load_catalog())
    tool = every.get(name)
    if tool is None:
        return None
    backend = settings.resolved_backend
    chosen = chosen_toolsets(sorted({t.toolset for t in every.values()}), settings.toolsets, backend)
    reasons: list[str] = []
    if tool.toolset not in chosen:
        elsewhere = backend not in BACKEND_TOOLSETS.get(tool.toolset, (backend,))
        reasons.append("backend" if elsewhere else "toolset")
    if settings.read_only and not tool.read_only:
        reasons.append("read_only")
    if not reasons and settings.profile == "discover":
        reasons.append("profile")
    if not reasons:
        return None
    named = [t for t in settings.toolsets or [DEFAULT] if t != tool.toolset]
    backends = ", ".join(BACKEND_TOOLSETS.get(tool.toolset, ()))
    toolsets = ",".join([*named, tool.toolset])
    return NotLoaded(name, tool.toolset, tuple(reasons), toolsets, backend, backends, not tool.read_only)
