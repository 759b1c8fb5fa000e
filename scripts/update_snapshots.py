"""Rewrite `tests/snapshots/tools/<tool>.json` for every tool and delete the files of tools that no longer exist.

Run it after reviewing a change to a tool's definition, then review and commit the diff:

    python scripts/update_snapshots.py

It refuses to run when CI=true: in CI the snapshots are checked (tests/test_catalog.py), never regenerated.
The snapshot format and the registry it is taken from are defined once, in tests/tool_snapshots.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    if os.environ.get("CI", "").strip().lower() == "true":
        print(
            "update_snapshots: refusing to run with CI=true; snapshots are regenerated locally, reviewed and committed",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(ROOT))  # run as a file: make the checkout's `tests` package importable
    from tests import tool_snapshots

    tools = tool_snapshots.registry()
    written, deleted = tool_snapshots.write_all(tools)
    for path in written:
        print(f"wrote   {path.relative_to(ROOT)}")
    for path in deleted:
        print(f"deleted {path.relative_to(ROOT)}")
    print(f"{len(tools)} tools: {len(written)} written, {len(deleted)} deleted, {len(tools) - len(written)} unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
