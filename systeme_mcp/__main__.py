"""`python -m systeme_mcp`: the same command as the `systeme-mcp` console script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
