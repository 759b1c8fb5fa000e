"""Summarise a conformance run from its `checks.json` files: one line per scenario, and the passes that tested
nothing of this server.

    python scripts/conformance_summary.py RESULTS_DIR [LABEL]

The suite's own summary marks a scenario passed when no check failed. Some pass that way without exercising
anything here: every check SKIPPED or INFO (the scenario needs a capability or fixture tool the server does not
have), or a check that counts any JSON-RPC error as the answer it wanted, when that error is only this server's
"Unknown tool" for the suite's missing fixture (one check of input-required-result-validate-input). Such a
scenario is VACUOUS here, and such a check is named beside a pass, so a pass is never read as more than it is.
A scenario with WARNING checks (SHOULD-level) and no failure is `warn`: the suite's baseline logic counts it
as failed, though its own summary shows a tick.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

STAMP = re.compile(r"-\d{4}-\d\d-\d\dT[\d-]+Z$")
GENERIC = {"wire-schema-valid", "wire-schema-harness-error"}  # emitted for every scenario that talks at all
FIXTURE_MISSING = re.compile(r"Unknown tool: |Unknown prompt |Resource not found: \\?\"test://")


def scenario_name(folder: Path) -> str:
    return STAMP.sub("", folder.name.removeprefix("server-"))


def verdict(checks: list[dict[str, Any]]) -> tuple[str, Counter[str], str]:
    """(pass | fail | warn | VACUOUS, counts by status, a note). `warn`: no check failed but some warned, which
    the suite's baseline logic counts as a failure."""
    counts = Counter(str(c.get("status")) for c in checks)
    if counts["FAILURE"] or counts["WARNING"]:
        return "fail" if counts["FAILURE"] else "warn", counts, ""
    own = [c for c in checks if c.get("id") not in GENERIC and c.get("status") == "SUCCESS"]
    if not own:
        return "VACUOUS", counts, "no check of its own ran to success (all skipped or info)"
    blind = [c["id"] for c in own if FIXTURE_MISSING.search(json.dumps(c.get("details", "")))]
    why = f"{', '.join(blind)}: took the 'Unknown tool' error for the suite's missing fixture as its answer"
    if blind and len(blind) == len(own):
        return "VACUOUS", counts, why
    return "pass", counts, why if blind else ""


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0])
    label = argv[1] if len(argv) > 1 else root.name
    folders = sorted(root.glob("server-*/checks.json"))
    if not folders:
        print(f"conformance_summary: no checks.json under {root}", file=sys.stderr)
        return 1
    print(f"\n== {label}: {len(folders)} scenarios")
    tally: Counter[str] = Counter()
    for path in folders:
        result, counts, why = verdict(json.loads(path.read_text(encoding="utf-8")))
        tally[result] += 1
        shown = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()) if s != "INFO") or "no checks"
        print(f"  {result:7} {scenario_name(path.parent):48} {shown}{f'  ({why})' if why else ''}")
    print(f"  {tally['pass']} pass, {tally['fail']} fail, {tally['warn']} warn, {tally['VACUOUS']} vacuous")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
