"""Regenerate the tool table in README.md from the registry (`--check`: exit 1 if it is stale)."""

import sys
from pathlib import Path

from systeme_mcp.docs import update_readme

if __name__ == "__main__":
    readme = Path(__file__).resolve().parent.parent / "README.md"
    current = update_readme(readme, check="--check" in sys.argv)
    if "--check" in sys.argv and not current:
        sys.exit("README.md tool table is stale: run python scripts/update_readme.py")
