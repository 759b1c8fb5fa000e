"""systeme-mcp: an MCP server for Systeme.io.

The public surface is `__all__`; names are imported on first use, so `import systeme_mcp` (and the CLI's
`--help`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "config",
    "Catalog": "catalog",
    "Operation": "catalog",
    "load_catalog": "catalog",
    "SystemeClient": "client",
    "Outcome": "calls",
    "OutcomeKind": "calls",
    "SystemeError": "errors",
    "ToolDef": "tools",
    "full_registry": "registry",
    "registry_for": "registry",
    "create_server": "server",
    "serving": "server",
    "Sandbox": "sandbox",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'systeme_mcp' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
