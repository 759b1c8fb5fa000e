"""The small routing core shared by every API route: path templates, the call context and replies.

A route is `(method, template, handler)`; a handler takes a `Call` and returns a `Reply` (or raises a
`Problem`). Templates use typed placeholders — `{id:int}` (1 to 18 digits), `{slug:slug}` (`\\w+`),
`{id:str}` (one path segment) — so a non-numeric or absurdly long id simply does not match (404).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .store import Store
from .validation import Body, PageParams, Query, paginate, valid_text

PLACEHOLDERS = {"int": r"[0-9]{1,18}", "slug": r"\w{1,255}", "str": r"[^/]{1,255}"}
JSON_TYPES = ("application/json", "application/ld+json")
MERGE_PATCH = "application/merge-patch+json"


@dataclass
class Options:
    """Behaviour switches of the fake account (see `Sandbox` for their meaning)."""

    no_mx_domains: tuple[str, ...] = ("invalid", "example.invalid", "no-mx.test")
    payments_configured: bool = True
    membership_delay: float = 0.2
    reject_unknown_fields: bool = False


@dataclass
class Env:
    """What handlers may touch: the state, the clock, the options and the event sink."""

    store: Store
    clock: Callable[[], float]
    options: Options
    emit: Callable[[str, dict[str, Any]], None]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # None → no body (204); a str is sent as text/html
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request as a handler sees it."""

    env: Env
    method: str
    path: str
    params: dict[str, str]
    query: Query
    raw_body: bytes
    content_type: str | None
    base_url: str = ""

    @property
    def store(self) -> Store:
        return self.env.store

    def int_param(self, name: str) -> int:
        return int(self.params[name])

    def body(self) -> Body:
        """The JSON object body (400 on malformed or absurdly nested JSON, or a non-object), strings made valid."""
        if not self.raw_body.strip():
            raise errors.bad_request("Syntax error")
        return Body(parse_json(self.raw_body), strict=self.env.options.reject_unknown_fields)

    def page(self) -> PageParams:
        return self.query.page()


def parse_json(raw: bytes) -> Any:
    """A request body's JSON with every string made valid Unicode (`valid_text`); 400 `Syntax error` if it is not
    JSON (undecodable bytes, or nesting too deep to parse)."""
    try:
        return valid_text(json.loads(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise errors.bad_request("Syntax error") from None


def page_reply(
    items: Iterable[Any], params: PageParams, key: Callable[[Any], int], render: Callable[[Any], Any]
) -> Reply:
    """`{items, hasMore}` for one cursor page."""
    page, more = paginate(items, params, key)
    return Reply(200, {"items": [render(i) for i in page], "hasMore": more})


def fetched(call: Call, table: dict[int, Any], render: Callable[[Any], Any]) -> Reply:
    """200 with the row of `table` the path's `{id}` names (404 if there is none)."""
    return Reply(200, render(call.store.get(table, call.int_param("id"))))


def created(table: dict[Any, Any], row: Any, render: Callable[[Any], Any]) -> Reply:
    """Store a new row under its id and answer 201 with it."""
    table[row.id] = row
    return Reply(201, render(row))


def named_page(call: Call, rows: Iterable[Any], render: Callable[[Any], Any]) -> Reply:
    """A page of the rows whose `name` contains `?query=` (case-insensitive), by id."""
    query = (call.query.text("query") or "").casefold()
    return page_reply((r for r in rows if query in r.name.casefold()), call.page(), lambda r: r.id, render)


def child_page(
    call: Call, parents: dict[int, Any], children: Iterable[Any], parent_field: str, render: Callable[[Any], Any]
) -> Reply:
    """A page of the children of the parent named by the path's `{id}` (404 if there is no such parent)."""
    parent = call.store.get(parents, call.int_param("id"))
    rows = (c for c in children if getattr(c, parent_field) == parent.id)
    return page_reply(rows, call.page(), lambda c: c.id, render)


def envelope(items: Iterable[Any]) -> Reply:
    """The collection envelope for endpoints without pagination parameters."""
    return Reply(200, {"items": list(items), "hasMore": False})


Handler = Callable[[Call], Reply]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]
    body_type: str | None  # required Content-Type family when a body is sent


class Router:
    """Routes of one path family; `match` answers the handler or the API's 404/405."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        def repl(m: re.Match[str]) -> str:
            name, kind = m.group(1), m.group(2) or "str"
            return f"(?P<{name}>{PLACEHOLDERS[kind]})"

        pattern = re.compile("^" + re.sub(r"\{(\w+)(?::(\w+))?\}", repl, template) + "$")
        body_type = MERGE_PATCH if method == "PATCH" else ("application/json" if method in ("POST", "PUT") else None)
        self.routes.append(Route(method, template, handler, pattern, body_type))

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def deco(handler: Handler) -> Handler:
            self.add(method, template, handler)
            return handler

        return deco

    def include(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def match(self, method: str, path: str, shown_path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, m.groupdict()
            allowed.append(route.method)
        if allowed:
            allow = ", ".join(dict.fromkeys(allowed))
            raise errors.Problem(
                405,
                f'No route found for "{method} {shown_path}": Method Not Allowed (Allow: {allow})',
                headers={"Allow": allow},
            )
        raise errors.not_found()


def check_content_type(route: Route, content_type: str | None, body: bytes) -> None:
    """415 when a body comes with a media type the operation does not accept (PATCH needs merge-patch)."""
    if route.body_type is None or (not body.strip() and route.body_type != MERGE_PATCH):
        return
    given = (content_type or "").split(";")[0].strip().lower()
    accepted = (MERGE_PATCH,) if route.body_type == MERGE_PATCH else JSON_TYPES
    if given not in accepted:
        supported = '", "'.join(accepted)
        raise errors.Problem(
            415, f'The content-type "{given}" is not supported. Supported MIME types are "{supported}".'
        )
