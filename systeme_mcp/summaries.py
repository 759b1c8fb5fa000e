"""API answers → what the model reads: one compact line per item, structured content, a next-call hint.

Items are projected to the fields their shape declares (snake_case, nulls/empties dropped, ids kept), long
values are cut with a marker, and every answer stays under `TEXT_BUDGET` characters: a page that would
not fit is cut at an item boundary and the hint continues from the last item shown.
"""

from __future__ import annotations

import json
from typing import Any

from .catalog import Catalog, Operation, ResultField, ResultShape

TEXT_BUDGET = 8_000  # characters; some CLIs cut tool text at 10 KB
VALUE_BUDGET = 160  # characters for one value inside a line


def _get(obj: Any, path: str) -> Any:
    if path == ".":  # the item itself (lists of scalars, e.g. phone numbers)
        return obj
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


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
        case _:
            if raw in (None, "", [], {}):
                return None
            return raw if isinstance(raw, (str, int)) and not isinstance(raw, bool) else str(raw)


def project(shape: ResultShape, obj: Any) -> dict[str, Any]:
    """The compact structured item: declared fields only, nothing empty."""
    item: dict[str, Any] = {}
    for name, f in shape.fields.items():
        value = _project_field(f, _get(obj, f.path))
        if value is not None:
            item[name] = value
    return item


def _cut(text: str, budget: int = VALUE_BUDGET) -> str:
    return text if len(text) <= budget else f"{text[:budget]}…[+{len(text) - budget} chars]"


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = _cut(value)
        return text if text and not any(c in text for c in ' ,=[]{}\n"') else json.dumps(text, ensure_ascii=False)
    return json.dumps(value)


def line(shape: ResultShape, item: dict[str, Any]) -> str:
    """`#812 email=ana@acme.test first_name=Ana tags=[vip#3] unsubscribed` — one item, one line."""
    key = item.get(shape.key)
    parts = [f"#{key}" if shape.key == "id" else f"{shape.key}={_value(key)}"]
    for name, value in item.items():
        if name == shape.key:
            continue
        f = shape.fields[name]
        if f.type == "flag":
            parts.append(name)
        elif f.type == "slug_map":
            parts.extend(f"{k}={_value(v)}" for k, v in value.items())
        elif f.type == "refs":
            parts.append(f"{name}=[" + ", ".join(f"{_cut(str(r['name']), 40)}#{r['id']}" for r in value) + "]")
        elif f.type == "events":
            parts.append(f"{name}=[{', '.join(map(str, value))}]")
        else:
            parts.append(f"{name}={_value(value)}")
    return " ".join(parts)


def call_text(tool: str, arguments: dict[str, Any]) -> str:
    """`list_contacts(starting_after=4812, limit=50)` — an exact call the model can make."""
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{tool}({args})"


def render_list(catalog: Catalog, op: Operation, args: dict[str, Any], data: Any) -> tuple[str, dict[str, Any]]:
    """A page of items: header, one line each, and the exact next call (or 'last page')."""
    shape = catalog.shape(op)
    assert shape is not None
    raw_items = _get(data, op.items_path) if isinstance(data, dict) else data
    items = [project(shape, o) for o in (raw_items if isinstance(raw_items, list) else [])]
    has_more = bool(data.get("hasMore")) if isinstance(data, dict) else False
    lines: list[str] = []
    used = 0
    for item in items:
        text = line(shape, item)
        if used + len(text) > TEXT_BUDGET and lines:
            break
        lines.append(text)
        used += len(text) + 1
    shown = items[: len(lines)]
    cut = len(shown) < len(items)
    has_more = has_more or cut
    noun = shape.noun + ("" if len(items) == 1 else "s")
    header = f"{len(items)} {noun}" if items else f"No {shape.noun}s found"
    if cut:
        header += f" (text shows the first {len(shown)} to stay under {TEXT_BUDGET} characters)"
    nxt: dict[str, Any] | None = None
    if has_more and shown and op.paginated:
        next_args = {k: v for k, v in args.items() if k != "starting_after"}
        next_args["starting_after"] = shown[-1][shape.key]
        nxt = {"tool": op.name, "arguments": next_args}
        footer = f"more: {call_text(op.name, next_args)}"
    elif has_more:
        footer = "more exist, but this list cannot be paged further; narrow the filters."
    else:
        footer = "last page." if items else ""
    text = "\n".join([header + (":" if lines else "."), *lines, footer]).strip()
    return text, {"items": shown, "has_more": has_more, "next": nxt}


def render_item(catalog: Catalog, op: Operation, data: Any, verb: str) -> tuple[str, dict[str, Any]]:
    shape = catalog.shape(op)
    assert shape is not None
    obj = _get(data, op.result_path) if op.result_path else data
    item = project(shape, obj)
    prefix = f"{verb} {shape.noun} " if verb else f"{shape.noun} "
    text = _cut(prefix + line(shape, item), TEXT_BUDGET)
    return text, {"item": item}


def item_schema(shape: ResultShape) -> dict[str, Any]:
    """JSON Schema of a projected item."""
    types: dict[str, Any] = {
        "string": {"type": "string"},
        "integer": {"type": "integer"},
        "boolean": {"type": "boolean"},
        "flag": {"const": True},
        "slug_map": {"type": "object", "additionalProperties": {"type": "string"}},
        "refs": {"type": "array", "items": {"type": "object"}},
        "events": {"type": "array", "items": {"type": "string"}},
    }
    props = {name: dict(types[f.type]) for name, f in shape.fields.items()}
    props[shape.key] = {"type": ["integer", "string"]}
    return {"type": "object", "properties": props, "required": [shape.key]}


OUTCOMES = ["applied", "already_applied", "not_applied"]


def output_schema(catalog: Catalog, op: Operation) -> dict[str, Any]:
    """The tool's outputSchema, matching what render_* produce."""
    shape = catalog.shape(op)
    props: dict[str, Any]
    if op.is_list and shape:
        props = {
            "items": {"type": "array", "items": item_schema(shape)},
            "has_more": {"type": "boolean"},
            "next": {"type": ["object", "null"], "description": "The exact call for the next page."},
        }
        return {"type": "object", "properties": props, "required": ["items", "has_more"]}
    props = {"message": {"type": "string"}}
    required = ["message"]
    if shape:
        props["item"] = item_schema(shape)
    if not op.read_only:
        props["outcome"] = {"enum": OUTCOMES}
        required.append("outcome")
    return {"type": "object", "properties": props, "required": required}
