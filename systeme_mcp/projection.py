"""API objects → the compact items the model reads: declared fields only, one line per item.
(Their JSON Schema is in `answer_schemas.item_schema`.)

Items keep the fields their shape declares (snake_case, nulls/empties dropped, ids kept, UTC times as `…Z`); a
value is cut with a marker past `VALUE_BUDGET` characters inside a line. A list page's line shows only the
shape's `list_fields` (`line(..., only=shape.list_fields)`); a single item's line shows every field.

Account data is text typed by strangers, so every value reaching text goes through `fence`: a plain value
(printable, none of the renderer's delimiters) is shown as is; anything else is a JSON string literal whose
non-printable characters (controls, ESC, zero-width, bidi, separators, lone surrogates) are `\\uXXXX` escapes.
A value can therefore never break a line, close a `tags=[…]` list, or look like a call: it is one quoted token.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from .catalog import Operation, ResultField, ResultShape

VALUE_BUDGET = 160  # characters for one value inside a line
REF_BUDGET = 40  # characters for one name inside `tags=[…]`
DELIMITERS = frozenset(' ,=[]{}#()"\\`')  # a value holding one of these (or a non-printable) is quoted
SHORTHAND = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=%")  # b64token, %-encoded


def _escape(c: str) -> str:
    """One non-printable character as a JSON escape (astral ones as their UTF-16 pair)."""
    if c in SHORTHAND:
        return SHORTHAND[c]
    n = ord(c)
    if n > 0xFFFF:
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def visible(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (but those in `keep`) written as a JSON `\\u` escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in text)


def quoted(text: str) -> str:
    """`text` as a JSON string literal that shows every non-printable character as an escape."""
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else _escape(c) for c in text) + '"'


def json_text(value: Any) -> str:
    """`value` as JSON text, every string in it escaped like `quoted` (valid JSON, one line)."""
    return visible(json.dumps(value, ensure_ascii=False))


def fence(value: Any, *, quote: bool = False) -> str:
    """A value from the account as one token of a line: as is if plain, else quoted and escaped.

    Plain: a non-empty printable string without the renderer's delimiters (space and `,=[]{}#()"\\` or a
    backtick), or a number. `quote` quotes every string (the confirmation question shows account text as data)."""
    if isinstance(value, str):
        if quote or not value or not value.isprintable() or not DELIMITERS.isdisjoint(value):
            return quoted(value)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json_text(value)


def cut(text: str, budget: int = VALUE_BUDGET) -> str:
    """`text`, or at most its first `budget` characters and a marker saying how many were left out.

    The cut never ends inside a run of token characters (RFC 6750 b64token: what API keys are made of): a key
    is kept whole or left out whole, so the scrubber, which runs later on the whole answer, still finds it."""
    if len(text) <= budget:
        return text
    end = budget
    if text[end] in TOKEN:
        while end > 0 and text[end - 1] in TOKEN:
            end -= 1
    return f"{text[:end]}…[+{len(text) - end} chars]"


def cut_line(text: str, budget: int) -> str:
    """A `line` within about `budget` characters, cut between two of its parts (never inside a quoted value or
    a `[…]` list), with a marker saying how many characters were left out."""
    if len(text) <= budget:
        return text
    end, depth, quoting, escaped = 0, 0, False, False
    for i, c in enumerate(text[: budget + 1]):
        if quoting:
            escaped, quoting = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            quoting = True
        elif c in "[]":
            depth += 1 if c == "[" else -1
        elif c == " " and depth == 0:
            end = i
    return f"{text[:end]} …[+{len(text) - end} chars]"


def pick(obj: Any, path: str) -> Any:
    """The value at a dotted `path` of a JSON object (`.` is the object itself); None where absent."""
    if path == ".":  # the item itself (lists of scalars, e.g. phone numbers)
        return obj
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def items_of(op: Operation, data: Any) -> list[Any]:
    """The items of a list answer (at the declared `items_path`), or [] if the answer has none."""
    items = pick(data, op.items_path) if isinstance(data, dict) else data
    return items if isinstance(items, list) else []


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _project_field(f: ResultField, raw: Any) -> Any:
    match f.type:
        case "slug_map":
            if not isinstance(raw, list):
                return None
            pairs = ((e.get("slug"), e.get("value")) for e in raw if isinstance(e, dict))
            return {str(k): v for k, v in pairs if k and v not in (None, "")} or None
        case "refs":
            if not isinstance(raw, list):
                return None
            return [{"id": e.get("id"), "name": e.get("name")} for e in raw if isinstance(e, dict)] or None
        case "events":
            if not isinstance(raw, list):
                return None
            return [e.get("event") if isinstance(e, dict) else e for e in raw] or None
        case "flag":
            return True if raw is True else None
        case "boolean":
            return raw if isinstance(raw, bool) else None
        case "integer":
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        case "datetime" if isinstance(raw, str) and raw.endswith("+00:00") and _is_datetime(raw):
            return raw.removesuffix("+00:00") + "Z"  # the same instant in RFC 3339's short form for UTC
        case _:
            if raw in (None, "", [], {}):
                return None
            return raw if isinstance(raw, (str, int)) and not isinstance(raw, bool) else str(raw)


def project(shape: ResultShape, obj: Any) -> dict[str, Any]:
    """The compact structured item: declared fields only, nothing empty."""
    item: dict[str, Any] = {}
    for name, f in shape.fields.items():
        value = _project_field(f, pick(obj, f.path))
        if value is not None:
            item[name] = value
    return item


def _shown(value: Any, budget: int = VALUE_BUDGET, *, quote: bool = False) -> str:
    return fence(cut(value, budget) if isinstance(value, str) else value, quote=quote)


def line(shape: ResultShape, item: dict[str, Any], *, quote: bool = False, only: Collection[str] | None = None) -> str:
    """`#812 email=ana@acme.test first_name=Ana tags=[vip#3] unsubscribed` — one item, one line.

    Every value from the account is `fence`d (cut first); `quote` quotes every string value. `only` (a shape's
    `list_fields`, for a list page) narrows the line to those fields — `name`, or `name.key` for one key of a
    slug_map field; the key is always shown."""
    key = item.get(shape.key)
    parts = [f"#{_shown(key)}" if shape.key == "id" else f"{shape.key}={_shown(key, quote=quote)}"]
    for name, value in item.items():
        if name == shape.key:
            continue
        f = shape.fields[name]
        whole = only is None or name in only
        if not whole and f.type != "slug_map":
            continue
        if f.type == "flag":
            parts.append(name)
        elif f.type == "slug_map":
            pairs = value.items() if whole else ((k, v) for k, v in value.items() if f"{name}.{k}" in (only or ()))
            parts.extend(f"{_shown(k, REF_BUDGET)}={_shown(v, quote=quote)}" for k, v in pairs)
        elif f.type == "refs":
            refs = (f"{_shown(str(r['name']), REF_BUDGET, quote=quote)}#{_shown(r['id'])}" for r in value)
            parts.append(f"{name}=[" + ", ".join(refs) + "]")
        elif f.type == "events":
            parts.append(f"{name}=[{', '.join(_shown(e, REF_BUDGET) for e in value)}]")
        else:
            parts.append(f"{name}={_shown(value, quote=quote)}")
    return " ".join(parts)


def call_text(tool: str, arguments: dict[str, Any]) -> str:
    """`list_contacts(starting_after=4812, limit=50)` — an exact call the model can make."""
    args = ", ".join(f"{k}={json_text(v)}" for k, v in arguments.items())
    return f"{tool}({args})"


def target_words(op: Operation, args: dict[str, Any]) -> str:
    """`contact 812` / `contact field company_name` — what a path addresses, for messages."""
    noun = (op.target.noun if op.target and op.target.noun else "") or op.path_params[-1].removesuffix("_id")
    noun = noun.replace("_", " ")
    ident = args.get(op.path_params[-1]) if op.path_params else None
    return f"{noun} {fence(ident)}" if ident is not None else noun


def format_args(template: str, args: dict[str, Any]) -> str:
    """`template.format(**args)` with every string argument `fence`d (they may be copied from account data)."""
    return template.format(**{k: fence(cut(v)) if isinstance(v, str) else v for k, v in args.items()})
