"""The one place where answers are built: every `CallToolResult` (and confirmation question) the server returns.

An answer is text for the model plus structuredContent for the app. Writes always say their `outcome`
(applied / already_applied / not_applied / unknown) with a short `message`, failures included; a failure's
text says what went wrong, whether anything changed, and what to do next. A list shows every item of the page
asked for as one compact line (the shape's `list_fields`; structured items keep every field), cut at an item
boundary only if the text would pass `TEXT_LIMIT` bytes, with the exact call that continues after the last line.

`sealed` is the last step out of every answer: it removes every secret first (before any cut of its own, so no
cut splits a key), makes invisible characters visible, turns forged `more:`/`next:`/`apply:` lines into quoted
values, then bounds the answer: structuredContent within `STRUCTURED_BUDGET` bytes of JSON, text within
`TEXT_LIMIT` bytes, saying in the text what was cut and how (see `bounds.py`). Cuts made earlier (values in a
line, error texts) never end inside a token, so a key is kept whole (then scrubbed) or left out whole.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from mcp import types

from . import bounds, errors
from .calls import Outcome, OutcomeKind
from .catalog import Catalog, Operation, ResultShape
from .confirm import KEY, QUESTION_BUDGET, SCHEMA, Ask, Decision, Declined, NeedsConfirm, Target
from .projection import call_text, cut, cut_line, format_args, items_of, line, pick, project, target_words
from .schemas import ArgumentError

TEXT_BUDGET = 8_000  # characters of text a single-item or workflow answer aims for; some CLIs cut tool text at 10 KB
TEXT_LIMIT = 10_000  # UTF-8 bytes: the hard cap `sealed` enforces on an answer's text (so on any line of it)
LIST_ROOM = 200  # bytes under TEXT_LIMIT a list page leaves free (for a note `sealed` may add): its lines fit whole
STRUCTURED_BUDGET = 48_000  # UTF-8 bytes of compact JSON for structuredContent (with the text: under 64 KiB)
STRING_BUDGET = 1_000  # characters per string value when structured content must shrink
ERROR_BUDGET = 4_000  # characters of an error text
VERBS = {"GET": "", "POST": "Created", "PUT": "Updated", "PATCH": "Updated", "DELETE": "Deleted"}

Answer = types.CallToolResult | types.InputRequiredResult


def _result(text: str, structured: dict[str, Any] | None = None, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=error
    )


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _error_info(exc: errors.SystemeError | ArgumentError | None, kind: str = "") -> dict[str, Any]:
    info: dict[str, Any] = {"kind": kind or getattr(exc, "code", "error")}
    if isinstance(exc, errors.ApiError):
        info["status"] = exc.status
        if exc.retry_after is not None:
            info["retry_after"] = exc.retry_after
    return info


def _write_failure(text: str, kind: OutcomeKind, error: dict[str, Any]) -> types.CallToolResult:
    return _result(text, {"outcome": kind.value, "message": _first_line(text), "error": error}, error=True)


# ---------------------------------------------------------------- refusals before anything is sent
def invalid_arguments(exc: ArgumentError, *, write: bool) -> types.CallToolResult:
    """Arguments the API would reject: every problem, one line per argument; nothing was sent."""
    text = cut(str(exc), ERROR_BUDGET)
    if write:
        return _write_failure(text, OutcomeKind.NOT_APPLIED, _error_info(exc, "invalid_arguments"))
    return _result(text, error=True)


def refused(text: str, *, write: bool, kind: str = "refused") -> types.CallToolResult:
    """A workflow that cannot proceed; `text` says why and what to do."""
    text = cut(text, ERROR_BUDGET)
    if write:
        return _write_failure(text, OutcomeKind.NOT_APPLIED, {"kind": kind})
    return _result(text, error=True)


def decision(op: Operation, decided: Decision) -> Answer:
    """What the call answers instead of proceeding: a question, a request to confirm, or the user's no."""
    match decided:
        case Ask(question=question, state=state):
            request = types.ElicitRequest(
                params=types.ElicitRequestFormParams(message=cut(question, QUESTION_BUDGET), requested_schema=SCHEMA)
            )
            return types.InputRequiredResult(input_requests={KEY: request}, request_state=state)
        case NeedsConfirm(what=what, retry=retry, facts=facts):
            text = (
                f"Not done yet: this would {op.title.lower()} — {what}. It cannot be undone. Ask the user; if they "
                f"agree, call {call_text(op.name, retry)}. Nothing was sent."
            )
            answer = _write_failure(text, OutcomeKind.NOT_APPLIED, {"kind": "needs_confirmation"})
            answer.structured_content = {**(answer.structured_content or {}), **facts}
            return answer
        case Declined(what=what, reason=reason):
            text = f"Not done: the user {reason} ({op.title.lower()} — {what}). Nothing was sent or changed."
            return _result(text, {"outcome": OutcomeKind.NOT_APPLIED.value, "message": text})
    raise AssertionError(f"not a refusal: {decided!r}")


def preview(op: Operation, args: dict[str, Any], target: Target) -> types.CallToolResult:
    """A dry run: what the call would do (the record read, the audience), nothing sent, and the call that does it."""
    apply = {k: v for k, v in args.items() if k != "confirm"} | {"dry_run": False}
    text = f"Preview, nothing was sent: this would {op.title.lower()} — {target.words}."
    text += f"\napply: {call_text(op.name, apply)}"
    structured = {"dry_run": True, "outcome": OutcomeKind.NOT_APPLIED.value, "message": _first_line(text)}
    return _result(text, {**structured, **target.facts, "apply": {"tool": op.name, "arguments": apply}})


# ---------------------------------------------------------------- declared operations
def operation(
    catalog: Catalog,
    op: Operation,
    args: dict[str, Any],
    outcome: Outcome,
    *,
    lead: str = "",
    extra: dict[str, Any] | None = None,
) -> types.CallToolResult:
    """The answer to one declared call. `lead` is said first; `extra` is added to a success's structuredContent."""
    if outcome.error is not None:
        text = lead + failure_text(op, args, outcome)
        if op.read_only:
            return _result(text, error=True)
        return _write_failure(text, outcome.kind, _error_info(outcome.error))
    if op.is_list:
        text, page = _page(catalog, op, args, outcome.data)
        return _result(lead + text, page)
    structured: dict[str, Any] = {}
    shape = catalog.shape(op)
    if shape and outcome.data not in (None, "", {}):
        verb = VERBS[op.method] if outcome.kind == OutcomeKind.APPLIED else ""
        obj = pick(outcome.data, op.result_path) if op.result_path else outcome.data
        structured["item"] = item = project(shape, obj)
        text = cut_line((f"{verb} " if verb else "") + f"{shape.noun} {line(shape, item)}", TEXT_BUDGET)
    elif op.success:
        text = format_args(op.success, args)
    else:
        text = f"{VERBS[op.method] or 'Done:'} {target_words(op, args)}."
    if outcome.kind == OutcomeKind.ALREADY_APPLIED:
        text = f"Already done (nothing changed): {text}"
    text = lead + text
    if outcome.note:
        text += f"\n(The first answer was lost; {outcome.note}.)"
    if outcome.repeat_of is not None:
        text += f"\n(An identical call {outcome.repeat_of:.0f} s ago applied it; this one was not sent again.)"
    if not op.read_only:
        structured["outcome"] = outcome.kind.value
    structured["message"] = _first_line(text)
    return _result(text, {**structured, **(extra or {})})


def failure_text(op: Operation, args: dict[str, Any], outcome: Outcome) -> str:
    """What failed, whether the write happened, and what to do next (within `ERROR_BUDGET` characters)."""
    exc = outcome.error
    assert exc is not None
    if isinstance(exc, errors.NotFound) and op.not_found:
        text = f"{format_args(op.not_found, args)} (404)."
    elif isinstance(exc, errors.NotFound):
        text = dataclasses.replace(exc, what=target_words(op, args) if op.path_params else "").message()
    else:
        text = cut(exc.message(), ERROR_BUDGET - 400)  # room for what follows
    if op.read_only:
        return text
    if outcome.kind == OutcomeKind.UNKNOWN and op.is_idempotent:
        return text + (
            f" The {op.method} may or may not have been applied: outcome unknown. "
            "Repeating it is safe (it cannot apply twice)."
        )
    if outcome.kind == OutcomeKind.UNKNOWN:
        hint = op.unknown_hint or (
            f"Check with {op.verify.tool} before retrying."
            if op.verify
            else "Check with a read (the matching get/list tool) before retrying."
        )
        return (
            f"Outcome unknown: {text} The {op.name} request may or may not have been applied, and it could not "
            f"be confirmed either way. {hint}"
        )
    if isinstance(exc, errors.TransportError) and not exc.sent:
        return text + " The request never reached the API: nothing was changed; it is safe to retry."
    if isinstance(exc, errors.ApiError) and exc.status < 500 and "nothing was changed" not in text:
        return text + " Nothing was changed."
    return text


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def _left_out(catalog: Catalog, shape: ResultShape) -> str:
    """What compact lines leave out, and where it is: ` (lines leave out locale, …: get_contact shows them)`."""
    listed = shape.list_fields
    if listed is None:
        return ""
    names = [
        f"other {name}" if any(e.startswith(f"{name}.") for e in listed) else name
        for name in shape.fields
        if name != shape.key and name not in listed
    ]
    if not names:
        return ""
    getters = (o for o in catalog if o.read_only and not o.is_list and o.path_params)
    details = next((o.name for o in getters if (s := catalog.shape(o)) and s.noun == shape.noun), None)
    where = f"{details} shows them" if details else "only in structured content"
    return f" (lines leave out {', '.join(names)}: {where})"


def _page(catalog: Catalog, op: Operation, args: dict[str, Any], data: Any) -> tuple[str, dict[str, Any]]:
    """A page of items: header, one compact line per item (the shape's `list_fields`), and the exact next call (or
    'last page'). Every item of the page is shown, unless the text would pass `TEXT_LIMIT` bytes (less
    `LIST_ROOM`) or the structured content `STRUCTURED_BUDGET`: then both end at the same item, the header says
    so, and the next call continues right after it. Structured items keep every field."""
    shape = catalog.shape(op)
    assert shape is not None
    items = [project(shape, o) for o in items_of(op, data)]
    api_has_more = bool(data.get("hasMore")) if isinstance(data, dict) else False
    room = TEXT_LIMIT - LIST_ROOM
    lines: list[str] = []
    used = 0
    for item in items:
        row = line(shape, item, only=shape.list_fields)
        used += len(row.encode()) + 1
        if used > room and lines:
            break
        lines.append(row)
    shown = items[: len(lines)]
    why = f"{TEXT_LIMIT} bytes of text" if len(shown) < len(items) else ""
    values_cut = 0
    if bounds.size(shown) > STRUCTURED_BUDGET - 1_000:  # room for has_more and next
        shown, values_cut = bounds.cut_strings(shown, STRING_BUDGET, top=False)
        keep = max(1, bounds.fitting(shown, STRUCTURED_BUDGET - 1_000))
        if keep < len(shown):
            shown, lines, why = shown[:keep], lines[:keep], f"{STRUCTURED_BUDGET} bytes of structured content"
    noun = shape.noun if len(items) == 1 else _plural(shape.noun)
    left_out = _left_out(catalog, shape) if items else ""

    def render(count: int) -> tuple[str, dict[str, Any]]:
        cut_short = count < len(items)
        has_more = api_has_more or cut_short
        header = f"{len(items)} {noun}{left_out}" if items else f"No {_plural(shape.noun)} found"
        if cut_short:
            header += f" (showing the first {count} to stay under {why})"
        if values_cut:
            header += (
                f" ({values_cut} values over {STRING_BUDGET} characters cut in structured content, marked …[+N chars])"
            )
        nxt: dict[str, Any] | None = None
        if has_more and count and op.paginated:
            next_args = {k: v for k, v in args.items() if k != "starting_after"}
            next_args["starting_after"] = shown[count - 1][shape.key]
            nxt = {"tool": op.name, "arguments": next_args}
            footer = f"more: {call_text(op.name, next_args)}"
        elif has_more:
            footer = "more exist, but this list cannot be paged further; narrow the filters."
        else:
            footer = "last page." if items else ""
        text = "\n".join([header + (":" if count else "."), *lines[:count], footer]).strip()
        return text, {"items": shown[:count], "has_more": has_more, "next": nxt}

    count = len(lines)
    text, page = render(count)
    while count > 1 and len(text.encode()) > room:  # the header and the next call take their room from the lines
        count -= 1
        why = why or f"{TEXT_LIMIT} bytes of text"
        text, page = render(count)
    return text, page


# ---------------------------------------------------------------- workflow tools and the server's own answers
def workflow(text: str, structured: dict[str, Any], *, error: bool = False) -> types.CallToolResult:
    """A workflow tool's answer: its text, and its structured content with the first line as `message`."""
    return _result(text, {**structured, "message": _first_line(text)}, error=error)


def internal_error(name: str, exc: BaseException) -> types.CallToolResult:
    """A bug, not a user error: said without internals, and the write's outcome plainly unknown."""
    return _result(
        f"Internal error in {name} ({type(exc).__name__}); the outcome of any write is unknown. "
        "Check the affected records with a read tool before retrying.",
        error=True,
    )


def _calls(structured: dict[str, Any] | None) -> set[str]:
    """The tools this answer's structured content names as exact calls (`next`, `apply`)."""
    found = (structured or {}).get("next"), (structured or {}).get("apply")
    return {c["tool"] for c in found if isinstance(c, dict) and isinstance(c.get("tool"), str)}


def sealed(answer: Answer, scrub: Callable[[str], str]) -> Answer:
    """`answer` made safe to send (the last step out): secrets removed first, then invisible characters made
    visible, forged call lines quoted, lone surrogates replaced, and everything bounded (see the module doc)."""
    if isinstance(answer, types.InputRequiredResult):
        for request in (answer.input_requests or {}).values():
            params = getattr(request, "params", None)
            if isinstance(params, types.ElicitRequestFormParams):
                params.message = bounds.safe_text(cut(scrub(params.message), QUESTION_BUDGET))
        return answer
    structured = answer.structured_content
    weight = None  # its compact JSON's UTF-8 bytes, once known
    if structured is not None:
        dumped = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        clean = bounds.no_surrogates(scrub(dumped))
        if clean != dumped:
            structured = json.loads(clean)
        else:
            weight = len(dumped.encode())
    texts = [b for b in answer.content if isinstance(b, types.TextContent)]
    for block in texts:
        raw = scrub(block.text)
        if len(raw) > 4 * TEXT_LIMIT:  # escaping below may lengthen it; never on a huge text
            raw = bounds.bound_text(raw, 4 * TEXT_LIMIT)
        block.text = bounds.safe_text(bounds.neutralize(raw, _calls(structured)))
    if structured is not None:
        text = texts[0].text if texts else ""
        structured, text, notes = bounds.bound_structured(structured, STRUCTURED_BUDGET, STRING_BUDGET, text, weight)
        if texts:
            texts[0].text = bounds.note_text(text, notes)
        if notes and isinstance(structured.get("message"), str):
            structured["message"] = _first_line(texts[0].text) if texts else structured["message"]
        answer.structured_content = structured
    room = TEXT_LIMIT // max(len(texts), 1)
    for block in texts:
        block.text = bounds.bound_text(block.text, room)
    return answer
