"""API objects → the compact items the model reads: declared fields only, one line per item, and their schema.

Items keep the fields their shape declares (snake_case, nulls/empties dropped, ids kept); a value is cut
with a marker past `VALUE_BUDGET` characters inside a line.
"""

from __future__ import annotations

import json
from typing import Any

from .catalog import Operation, ResultField, ResultShape

VALUE_BUDGET = 160  # characters for one value inside a line


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
        value = _project_field(f, pick(obj, f.path))
        if value is not None:
            item[name] = value
    return item


def cut(text: str, budget: int = VALUE_BUDGET) -> str:
    """`text`, or its first `budget` characters and a marker saying how many were left out."""
    return text if len(text) <= budget else f"{text[:budget]}…[+{len(text) - budget} chars]"


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = cut(value)
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
            parts.append(f"{name}=[" + ", ".join(f"{cut(str(r['name']), 40)}#{r['id']}" for r in value) + "]")
        elif f.type == "events":
            parts.append(f"{name}=[{', '.join(map(str, value))}]")
        else:
            parts.append(f"{name}={_value(value)}")
    return " ".join(parts)


def call_text(tool: str, arguments: dict[str, Any]) -> str:
    """`list_contacts(starting_after=4812, limit=50)` — an exact call the model can make."""
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{tool}({args})"


def target_words(op: Operation, args: dict[str, Any]) -> str:
    """`contact 812` / `contact field company_name` — what a path addresses, for messages."""
    noun = (op.target.noun if op.target and op.target.noun else "") or op.path_params[-1].removesuffix("_id")
    noun = noun.replace("_", " ")
    ident = args.get(op.path_params[-1]) if op.path_params else None
    return f"{noun} {ident}" if ident is not None else noun


ITEM_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "flag": {"const": True},
    "slug_map": {"type": "object", "additionalProperties": {"type": "string"}},
    "refs": {"type": "array", "items": {"type": "object"}},
    "events": {"type": "array", "items": {"type": "string"}},
}


def item_schema(shape: ResultShape) -> dict[str, Any]:
    """JSON Schema of a projected item."""
    props = {name: dict(ITEM_TYPES[f.type]) for name, f in shape.fields.items()}
    props[shape.key] = {"type": ["integer", "string"]}
    return {"type": "object", "properties": props, "required": [shape.key]}
