"""Validated arguments → the exact HTTP request the API expects (names, nesting, encodings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .catalog import Operation, Param

BODY = ("body", "field", "fields")  # where an argument goes inside the request body


@dataclass(frozen=True)
class RequestPlan:
    """One HTTP request, ready for the client. `idempotent` decides whether it may be retried blindly."""

    method: str
    path: str
    api: str = "systeme"
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    idempotent: bool = True

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def _scalar(p: Param, value: Any) -> Any:
    if p.type == "enum" and value is not None:
        return p.wire_value(value)
    if p.type == "enum_list":
        if p.as_objects:
            spec = p.as_objects
            return [{spec.key: p.wire_value(v), spec.version_key: spec.versions.get(v, 1)} for v in value]
        return [p.wire_value(v) for v in value]
    return value


def _query_value(p: Param, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(_scalar(p, value))


def _put(body: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = body
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value


def build_request(op: Operation, args: dict[str, Any]) -> RequestPlan:
    """Place each validated argument where the declaration says (path, query, body, contact fields)."""
    path = op.path
    query: dict[str, str] = {}
    body: dict[str, Any] = {}
    contact_fields: dict[str, Any] = {}
    for name, value in args.items():
        p = op.params[name]
        match p.location:
            case "path":
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            case "query":
                if value is not None:
                    query[p.wire_name] = _query_value(p, value)
            case "body":
                _put(body, p.wire_name, _scalar(p, value))
            case "fields":
                for slug, v in (value or {}).items():
                    contact_fields.setdefault(slug, v)
            case "field":
                contact_fields[p.wire_name] = value
            case "local":
                pass
    if contact_fields:
        body["fields"] = [{"slug": slug, "value": v} for slug, v in contact_fields.items()]
    # a write with a body; an operation that declares no body arguments (a bare POST action) sends none
    has_body = op.method in ("POST", "PUT", "PATCH") and any(p.location in BODY for p in op.params.values())
    return RequestPlan(
        method=op.method,
        path=path,
        api=op.api,
        query=query,
        body=body if has_body else None,
        idempotent=op.is_idempotent,
    )
