"""What a bulk call found and did, and its preview and summary (text + structured content), bounded.

Account values (emails) and arguments reach the text through `projection.fence`: quoted and escaped when not
plain, so they can never start a line or look like the `apply:` / `next:` lines only the server writes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .answers import TEXT_BUDGET
from .bulk_targets import Target
from .projection import call_text, cut, fence

LISTED = 200  # ids per list in structured content


@dataclass
class Selection:
    ids: list[int]
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)  # known records (filter selection)
    note: str = ""  # where a filter scan stopped
    next_args: dict[str, Any] | None = None  # the bulk call continuing a capped scan


@dataclass
class Tally:
    changed: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    unknown: list[int] = field(default_factory=list)  # failed, but the write may have been applied
    running: set[int] = field(default_factory=set)

    def counts(self) -> str:
        unknown = f" ({len(self.unknown)} of them outcome unknown)" if self.unknown else ""
        return f"{len(self.changed)} changed, {len(self.already)} already, {len(self.failed)} failed{unknown}"

    def outcome(self) -> str:
        """The whole call's outcome: applied if anything changed, unknown if a failed write may have."""
        if self.changed:
            return "applied"
        if self.unknown:
            return "unknown"
        return "not_applied" if self.failed else "already_applied"


def ids_text(ids: list[int], budget: int = 1500) -> str:
    """`#1, #2, … (+40 more)` within `budget` characters."""
    text = ", ".join(f"#{i}" for i in ids)
    if len(text) <= budget:
        return text
    cut = text[:budget].rsplit(", ", 1)[0]
    return f"{cut} … (+{len(ids) - cut.count('#')} more)"


def target_words(target: Target, args: dict[str, Any]) -> str:
    return ", ".join(f"{n}={fence(args[n])}" for n in target.target_args if n in args)


def row(sel: Selection, cid: int) -> str:
    """`#812 "ana@acme.test"` — a selected contact, its email fenced as account data when known."""
    return f"#{cid} {fence(cut(str(sel.contacts[cid].get('email', ''))))}" if cid in sel.contacts else f"#{cid}"


def destroys(t: Target, args: dict[str, Any], sel: Selection, todo: list[int], sample: int = 5) -> str:
    """What applying would destroy, for the confirmation question: the count and a sample of the contacts."""
    shown = ", ".join(row(sel, cid) for cid in todo[:sample])
    more = f" and {len(todo) - sample} more" if len(todo) > sample else ""
    return f"{target_words(t, args)} on {len(todo)} contact{'s' if len(todo) != 1 else ''} ({shown}{more})"


def preview(
    t: Target,
    args: dict[str, Any],
    crit: dict[str, Any] | None,
    sel: Selection,
    todo: list[int],
    already: list[int],
) -> tuple[str, dict[str, Any]]:
    """What would change, the exact call that applies it, and where a capped scan continues."""
    apply_args = {**args, **({"filter": crit} if crit is not None else {}), "dry_run": False}
    shown = apply_args
    if len(args.get("contact_ids", [])) > 50:
        shown = {**apply_args, "contact_ids": f"<the same {len(args['contact_ids'])} ids>"}
    lines = [
        f"Preview ({t.tool} {target_words(t, args)}), nothing changed: {len(todo)} of {len(sel.ids)} "
        f"contacts would change; {len(already)} already {t.state}. {sel.note}".strip()
    ]
    budget = TEXT_BUDGET - 2500
    for cid in todo:
        entry = row(sel, cid)
        if budget - len(entry) < 0:
            lines.append(f"… and {len(todo) - len(lines) + 1} more")
            break
        budget -= len(entry) + 1
        lines.append(entry)
    if todo:
        lines.append(f"apply: {call_text(t.tool, shown)}")
        if crit is not None:
            lines.append("(the filter is evaluated again when applied)")
    structured = {
        "dry_run": True,
        "outcome": "not_applied",
        "counts": {"selected": len(sel.ids), "to_change": len(todo), "already": len(already)},
        "to_change": todo[:LISTED],
        "already": already[:LISTED],
        "apply": {"tool": t.tool, "arguments": apply_args} if todo else None,
        "next": {"tool": t.tool, "arguments": sel.next_args} if sel.next_args else None,
    }
    return "\n".join(lines), structured


def summary(t: Target, args: dict[str, Any], sel: Selection, tally: Tally) -> tuple[str, dict[str, Any], bool]:
    """What changed, what already was, what failed and why (grouped by reason); and whether it all failed."""
    lines = [f"{t.tool} {target_words(t, args)} on {len(sel.ids)} contacts: {tally.counts()}. {sel.note}"]
    if tally.changed:
        lines.append(f"changed: {ids_text(tally.changed)}")
    if tally.already:
        lines.append(f"already {t.state}: {ids_text(tally.already, 800)}")
    by_reason: dict[str, list[int]] = defaultdict(list)
    for cid, reason in tally.failed.items():
        by_reason[reason].append(cid)
    if by_reason:
        lines.append("failed:")
        budget = TEXT_BUDGET - sum(len(x) + 1 for x in lines) - 300
        for reason, ids in by_reason.items():
            row = f"- {ids_text(ids, 300)}: {' '.join(cut(reason, 400).split())}"
            if budget < len(row):
                lines.append(f"- … {len(tally.failed) - sum(1 for x in lines if x.startswith('- '))} more")
                break
            budget -= len(row) + 1
            lines.append(row)
    if sel.next_args:
        lines.append(f"next: {call_text(t.tool, sel.next_args)}")
    structured = {
        "dry_run": False,
        "outcome": tally.outcome(),
        "counts": {
            "selected": len(sel.ids),
            "changed": len(tally.changed),
            "already": len(tally.already),
            "failed": len(tally.failed),
            "unknown": len(tally.unknown),
        },
        "changed": tally.changed[:LISTED],
        "unknown": tally.unknown[:LISTED],
        "already": tally.already[:LISTED],
        "failed": [{"id": i, "reason": r} for i, r in list(tally.failed.items())[:LISTED]],
        "next": {"tool": t.tool, "arguments": sel.next_args} if sel.next_args else None,
    }
    all_failed = bool(tally.failed) and not tally.changed and not tally.already
    return "\n".join(x.strip() for x in lines), structured, all_failed
