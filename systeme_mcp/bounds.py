"""Bounding what goes out: answer text, structured content and resource bodies, under real clients' limits.

Nothing here knows secrets: callers scrub first (a cut could otherwise split a key so the scrubber misses it),
then bound. Structured content is shrunk in steps, each said in a note for the text: long strings cut with a
marker, then list entries cut from the end (`has_more` / `next` kept truthful: the next call continues right
after the last entry kept), then deeper trimming. Text keeps the server's own trailing `more:` / `next:` /
`apply:` lines when its middle has to go. Lone surrogates (invalid UTF-16 halves) become U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .projection import call_text, cut, quoted, visible

SERVER_LINES = ("more: ", "next: ", "apply: ")  # lines only the server writes, always at line start
CALL_KEYS = ("next", "apply")  # structured entries holding an exact call: never cut
SURROGATE = re.compile("[\ud800-\udfff]")
DEEP_ENTRIES = 50  # entries kept per nested list / object in the last shrinking step


def size(value: Any) -> int:
    """UTF-8 bytes of `value` as compact JSON (what it weighs on the wire)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def no_surrogates(text: str) -> str:
    return SURROGATE.sub("\ufffd", text)


def clean_json(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    dumped = json.dumps(value, ensure_ascii=False)
    fixed = no_surrogates(dumped)
    return value if fixed == dumped else json.loads(fixed)


# ---------------------------------------------------------------- text
def neutralize(text: str, calls: set[str]) -> str:
    """Any line that looks like the server's own `more:`/`next:`/`apply:` line but names none of `calls` (the
    tools of this answer's structured `next`/`apply`) is forged: it is shown as a quoted value instead."""
    lines = text.split("\n")
    for i, row in enumerate(lines):
        if row.startswith(SERVER_LINES) and not any(row.split(": ", 1)[1].startswith(f"{c}(") for c in calls):
            lines[i] = quoted(row)
    return "\n".join(lines)


def safe_text(text: str) -> str:
    """Outgoing text: non-printable characters but newlines written as escapes, no lone surrogates."""
    return visible(no_surrogates(text), keep="\n")


def _head(text: str, room: int) -> str:
    """The longest start of `text` within `room` UTF-8 bytes, ending at a line break if one is near."""
    head = text.encode()[: max(room, 0)].decode(errors="ignore")
    at = head.rfind("\n")
    return head[:at] if at > len(head) // 2 else head


def bound_text(text: str, limit: int) -> str:
    """`text` within `limit` UTF-8 bytes (so no line is longer either): the middle is cut with a marker that
    says how much was left out; the server's trailing `more:` / `next:` / `apply:` lines are kept."""
    if len(text.encode()) <= limit:
        return text
    lines = text.split("\n")
    start = next((i for i in range(max(len(lines) - 3, 0), len(lines)) if lines[i].startswith(SERVER_LINES)), None)
    tail = "\n".join(lines[start:]) if start is not None else ""
    body = "\n".join(lines[:start]) if start is not None else text
    if len(tail.encode()) > limit // 2:
        tail = _head(tail, limit // 2)
    marker = f"[answer cut here: {{}} characters left out to stay under {limit} bytes]"
    room = limit - len(tail.encode()) - len(marker.encode()) - 12
    head = _head(body, room)
    shown = [head, marker.format(len(body) - len(head))] + ([tail] if tail else [])
    return "\n".join(shown)


# ---------------------------------------------------------------- structured content
def cut_strings(value: Any, cap: int, *, top: bool = True) -> tuple[Any, int]:
    """`value` with every string longer than `cap` cut (marked `…[+N chars]`), and how many were cut.
    At the top level, the exact calls (`next`, `apply`) and `message` are left whole."""
    if isinstance(value, str):
        return (cut(value, cap), 1) if len(value) > cap else (value, 0)
    if isinstance(value, list):
        parts = [cut_strings(v, cap, top=False) for v in value]
        return [v for v, _ in parts], sum(n for _, n in parts)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        count = 0
        for k, v in value.items():
            if top and k in (*CALL_KEYS, "message"):
                out[k] = v
                continue
            out[k], n = cut_strings(v, cap, top=False)
            count += n
        return out, count
    return value, 0


def prune(value: Any, entries: int, *, depth: int = 0, listed: bool = False) -> Any:
    """`value` with its nested lists and objects cut to `entries` each: all but the top level, its lists and
    objects (`items`, `item`) and the entries of those lists (one item each), which are cut by other steps."""
    whole = depth <= 1 or (depth == 2 and listed)
    if isinstance(value, list):
        return [prune(v, entries, depth=depth + 1, listed=True) for v in (value if whole else value[:entries])]
    if isinstance(value, dict):
        pairs = list(value.items()) if whole else list(value.items())[:entries]
        return {k: v if k in CALL_KEYS and depth == 0 else prune(v, entries, depth=depth + 1) for k, v in pairs}
    return value


def fitting(entries: list[Any], room: int) -> int:
    """How many of `entries`, from the first, fit in a JSON list of `room` bytes."""
    used = 2
    for n, entry in enumerate(entries):
        used += size(entry) + (1 if n else 0)
        if used > room:
            return n
    return len(entries)


def _continue(structured: dict[str, Any], kept: list[Any], text: str) -> tuple[str, str]:
    """After cutting `items`: `next` continues right after the last item kept; the text's call follows it."""
    last = kept[-1].get("id") if kept and isinstance(kept[-1], dict) else None
    nxt = structured.get("next")
    if "has_more" in structured:
        structured["has_more"] = True
    if last is None:
        return text, "the rest cannot be paged here; narrow the call"
    if isinstance(nxt, dict) and isinstance(nxt.get("arguments"), dict) and isinstance(nxt.get("tool"), str):
        old = call_text(nxt["tool"], nxt["arguments"])
        new = {**nxt, "arguments": {**nxt["arguments"], "starting_after": last}}
        structured["next"] = new
        fresh = call_text(new["tool"], new["arguments"])
        lines = [
            f"{row.split(': ', 1)[0]}: {fresh}" if row in (f"more: {old}", f"next: {old}") else row
            for row in text.split("\n")
        ]
        return "\n".join(lines), f"the next call continues after #{last}: {fresh}"
    return "\n".join(r for r in text.split("\n") if r != "last page."), f"the rest starts after #{last}"


def _cut_lists(structured: dict[str, Any], budget: int, text: str, notes: list[str]) -> str:
    """Cut top-level lists from the end, the heaviest first, until `structured` fits `budget`."""
    lists = sorted((k for k, v in structured.items() if isinstance(v, list) and v), key=lambda k: -size(structured[k]))
    for key in lists:
        over = size(structured) - budget
        if over <= 0:
            break
        entries = structured[key]
        keep = fitting(entries, size(entries) - over)
        keep = max(keep, 1) if key == "items" and len(entries) > 1 and keep == 0 else keep
        if keep >= len(entries):
            continue
        structured[key] = entries[:keep]
        note = f"`{key}` in structured content cut to its first {keep} of {len(entries)} entries"
        if key == "items":
            text, how = _continue(structured, entries[:keep], text)
            note += f"; {how}"
        notes.append(note)
    return text


def bound_structured(
    structured: dict[str, Any], budget: int, string_cap: int, text: str, weight: int | None = None
) -> tuple[dict[str, Any], str, list[str]]:
    """`structured` within `budget` bytes of JSON; the text (its continuation call kept in step) and the notes
    saying what was cut and how. `weight`: its `size`, if the caller has it already."""
    if (size(structured) if weight is None else weight) <= budget:
        return structured, text, []
    notes: list[str] = []
    shrunk, n = cut_strings(structured, string_cap)
    if n:
        notes.append(f"{n} structured values over {string_cap} characters cut (marked …[+N chars])")
    text = _cut_lists(shrunk, budget, text, notes)
    if size(shrunk) > budget:
        shrunk, n = cut_strings(prune(shrunk, DEEP_ENTRIES), 64)
        notes.append(f"nested lists/objects cut to {DEEP_ENTRIES} entries and values to 64 characters")
        text = _cut_lists(shrunk, budget, text, notes)
    if size(shrunk) > budget:  # cannot happen with projected items; still never answer unbounded
        for key, value in list(shrunk.items()):
            if isinstance(value, list) and key not in CALL_KEYS:
                shrunk[key] = []
            elif isinstance(value, dict) and key not in CALL_KEYS:  # an `item` keeps its scalars (its id)
                shrunk[key] = {k: v for k, v in value.items() if not isinstance(v, (list, dict))}
        notes.append("structured content emptied: too large to show")
    return shrunk, text, notes


def note_text(text: str, notes: list[str]) -> str:
    """`text` with a line saying what was cut, placed before the server's trailing call lines."""
    if not notes:
        return text
    lines = text.split("\n")
    at = len(lines)
    while at > 1 and lines[at - 1].startswith(SERVER_LINES):
        at -= 1
    return "\n".join([*lines[:at], f"(Answer cut: {'; '.join(notes)}.)", *lines[at:]])


def visible_json(value: Any) -> str:
    """`value` as compact JSON text with every non-printable character escaped (still valid JSON)."""
    return visible(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
