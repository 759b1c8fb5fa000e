"""Declaration → the tool's input JSON Schema and the pydantic model that enforces it.

Both are derived from the same `Param` objects, so what the model is told and what is checked cannot drift
(the fuzz tests hold them to each other). Validation problems become `ArgumentError`s whose message names
the argument, what was wrong and what is allowed.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from . import newsletter_html
from .catalog import Operation, Param

EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
SLUG = r"^\w+$"
SLUG_MAX = 255
MAX_TEXT = 10_000


class ArgumentError(ValueError):
    """Arguments the API would reject; nothing was sent. `problems` are one line per argument."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        self.tool = tool
        self.problems = problems
        super().__init__(f"Invalid arguments for {tool} (nothing was sent):\n" + "\n".join(problems))


def _check_email(value: str) -> str:
    if len(value) > 255 or not EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("not an absolute http(s) URL")
    return value


UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _check_uuid(value: str) -> str:
    # only the hyphenated 8-4-4-4-12 text form (JSON Schema `format: uuid`), not every form uuid.UUID parses
    if not UUID_TEXT.fullmatch(value):
        raise ValueError("not a UUID")
    return str(uuid.UUID(value))


def _check_datetime(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO-8601 date-time") from None
    if "T" not in value and " " not in value:
        value += "T00:00:00"
    return value


def _check_future_datetime(value: str) -> str:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO-8601 date-time") from None
    if when.tzinfo is None:
        raise ValueError("no UTC offset, so the time is ambiguous; add one, e.g. +00:00 or Z")
    if when <= datetime.now(UTC):
        raise ValueError(f"in the past (now is {datetime.now(UTC).isoformat(timespec='seconds')})")
    return when.isoformat()


_STRING_CHECKS = {
    "email": _check_email,
    "url": _check_url,
    "uuid": _check_uuid,
    "datetime": _check_datetime,
    "future_datetime": _check_future_datetime,
    "newsletter_html": newsletter_html.check,
}


def allowed(p: Param) -> str:
    """What values `p` accepts, in words, for error messages."""
    if p.type == "integer":
        if p.minimum is not None and p.maximum is not None:
            return f"an integer {p.minimum}-{p.maximum}"
        return f"an integer >= {p.minimum}" if p.minimum is not None else "an integer"
    if p.type == "string":
        text = "text"
        if p.pattern == SLUG:
            text = "letters, digits and underscores only"
        elif p.pattern:
            text = f"text matching {p.pattern}"
        if p.min_length or p.max_length:
            text += f" of {p.min_length or 0}-{p.max_length or MAX_TEXT} characters"
        return text
    if p.type in ("enum", "enum_list"):
        listed = ", ".join(p.choices)
        return f"one of: {listed}" if p.type == "enum" else f"a non-empty list of: {listed}"
    return {
        "boolean": "true or false",
        "email": "an email address like name@example.com",
        "url": "an absolute http(s) URL like https://example.com/hook",
        "uuid": "a UUID like 3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10",
        "datetime": "an ISO-8601 date-time like 2024-01-31T00:00:00+00:00",
        "future_datetime": "a future ISO-8601 date-time with offset, like 2030-01-31T09:00:00+00:00",
        "newsletter_html": "HTML using only p, h2-h4, ul/ol/li, figure; inline span, strong, em, u, s, a, br; "
        "substitutions {email}, {first_name}, {surname}",
        "integer_list": f"a {'' if p.min_items == 0 else 'non-empty '}list of positive integer ids",
        "string_map": "an object {slug: text or null}; slugs use letters, digits and underscores",
    }[p.type]


def _schema(p: Param) -> dict[str, Any]:
    s: dict[str, Any]
    match p.type:
        case "integer":
            s = {"type": "integer"}
            if p.minimum is not None:
                s["minimum"] = p.minimum
            if p.maximum is not None:
                s["maximum"] = p.maximum
        case "boolean":
            s = {"type": "boolean"}
        case "string":
            s = {"type": "string", "maxLength": p.max_length or MAX_TEXT}
            if p.min_length:
                s["minLength"] = p.min_length
            if p.pattern:
                s["pattern"] = p.pattern
        case "email" | "url" | "uuid" | "datetime" | "future_datetime":
            fmt = {"email": "email", "url": "uri", "uuid": "uuid"}.get(p.type, "date-time")
            s = {"type": "string", "format": fmt}
        case "newsletter_html":
            s = {"type": "string", "maxLength": p.max_length or 100_000}
        case "enum":
            s = {"type": "string", "enum": p.choices}
        case "integer_list":
            s = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": _min_items(p)}
        case "enum_list":
            s = {
                "type": "array",
                "items": {"enum": p.choices},
                "minItems": p.min_items or 1,
                "uniqueItems": True,
            }
        case "string_map":
            value: dict[str, Any] = {"type": ["string", "null"] if p.nullable else "string", "maxLength": MAX_TEXT}
            names = {"pattern": SLUG, "maxLength": SLUG_MAX}
            s = {"type": "object", "propertyNames": names, "additionalProperties": value}
    if p.nullable and p.type != "string_map":
        s["type"] = [s["type"], "null"]
        if "enum" in s:
            s["enum"] = [*s["enum"], None]
    if p.default is not None:
        s["default"] = p.default
    return {"description": p.description, **s} if p.description else s  # a name that says it all needs none


def input_schema(op: Operation) -> dict[str, Any]:
    """The tool's inputSchema: compact JSON Schema 2020-12, no titles, unknown arguments rejected."""
    required = [n for n, p in op.params.items() if p.required]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _schema(p) for name, p in op.params.items()},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _annotation(p: Param) -> Any:
    t: Any
    match p.type:
        case "integer":
            t = Annotated[int, Field(strict=True, ge=p.minimum, le=p.maximum)]
        case "boolean":
            t = Annotated[bool, Field(strict=True)]
        case "string":
            limits = Field(min_length=p.min_length, max_length=p.max_length or MAX_TEXT, pattern=_ecma(p.pattern))
            t = Annotated[str, limits]
        case "email" | "url" | "uuid" | "datetime" | "future_datetime":
            t = Annotated[str, Field(strict=True), AfterValidator(_STRING_CHECKS[p.type])]
        case "newsletter_html":
            limit = Field(strict=True, max_length=p.max_length or 100_000)
            t = Annotated[str, limit, AfterValidator(_STRING_CHECKS[p.type])]
        case "enum":
            t = Literal[tuple(p.choices)]
        case "integer_list":
            t = Annotated[list[Annotated[int, Field(strict=True, ge=1)]], Field(min_length=_min_items(p))]
        case "enum_list":
            item: Any = Literal[tuple(p.choices)]
            t = Annotated[list[item], Field(min_length=p.min_items or 1), AfterValidator(_unique)]
        case "string_map":
            key = Annotated[str, Field(pattern=_ecma(SLUG), max_length=SLUG_MAX)]
            val: Any = Annotated[str, Field(strict=True, max_length=MAX_TEXT)]
            t = dict[key, val | None] if p.nullable else dict[key, val]
    if p.nullable and p.type != "string_map":
        t = t | None
    return t


def _ecma(pattern: str | None) -> str | None:
    """A schema pattern as JSON Schema (ECMA-262) reads it: `\\w` is ASCII-only there, Unicode in pydantic."""
    return pattern.replace(r"\w", "[A-Za-z0-9_]") if pattern else None


def _min_items(p: Param) -> int:
    return 1 if p.min_items is None else p.min_items


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("items must be unique")
    return values


def arguments_model(op: Operation) -> type[BaseModel]:
    """A pydantic model that accepts exactly the arguments the input schema allows."""
    fields: dict[str, Any] = {}
    for name, p in op.params.items():
        fields[name] = (_annotation(p), ...) if p.required else (_annotation(p), None)
    config = ConfigDict(extra="forbid", validate_default=False)
    model: type[BaseModel] = create_model(f"{op.name}_arguments", __config__=config, **fields)
    return model


def _short(name: str) -> str:
    """An argument name or key as given, cut if huge (it is echoed to the model)."""
    return name if len(name) <= 60 else f"{name[:40]}… ({len(name)} characters)"


def _problem(op: Operation, error: Any) -> str:
    loc = [_short(str(x)) for x in error["loc"]]
    name = loc[0] if loc else "(arguments)"
    p = op.params.get(name)
    if error["type"] == "extra_forbidden":
        accepted = ", ".join(op.params) or "no arguments"
        return f"`{name}`: unknown argument. {op.name} accepts: {accepted}."
    if error["type"] == "missing":
        return f"`{name}`: required; {allowed(p) if p else ''}."
    got = error.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 80 else type(got).__name__
    if isinstance(got, str) and len(got) > 80:
        shown = f"{got[:60]!r}… ({len(got)} characters)"
    if p is not None and p.secret and got is not None:  # write-only: never echo what was typed
        shown = f"a hidden value of {len(got)} characters" if isinstance(got, str) else "a hidden value"
    reason = str(error["msg"]).removeprefix("Value error, ")
    where = name + "".join(f"[{x}]" for x in loc[1:])
    if p is not None and got is None and not p.nullable:
        return f"`{where}`: cannot be null here; leave it out instead, or give {allowed(p)}."
    hint = f" Allowed: {allowed(p)}." if p else ""
    return f"`{where}`: {reason} (got {shown}).{hint}"


def _check_rules(op: Operation, given: dict[str, Any]) -> list[str]:
    problems = []
    if op.at_least_one:
        changeable = [n for n, p in op.params.items() if p.location not in ("path", "local")]
        if not any(n in given for n in changeable):
            problems.append(f"(arguments): nothing to change; give at least one of: {', '.join(changeable)}.")
    for rule in op.rules:
        applies = all(given.get(k) in v for k, v in rule.when.items())
        condition = " or ".join(f"{k} is {'/'.join(v)}" for k, v in rule.when.items())
        if applies and given.get(rule.param) in (None, [], {}):
            problems.append(f"`{rule.param}`: required when {condition}; {allowed(op.params[rule.param])}.")
        elif not applies and rule.only and rule.param in given:
            problems.append(f"`{rule.param}`: only allowed when {condition}; leave it out.")
    return problems


def validate_arguments(op: Operation, model: type[BaseModel], arguments: dict[str, Any] | None) -> dict[str, Any]:
    """Validated arguments (only those given), or ArgumentError listing every problem."""
    try:
        parsed = model.model_validate(arguments or {})
    except ValidationError as exc:
        raise ArgumentError(op.name, [_problem(op, e) for e in exc.errors()]) from None
    given = parsed.model_dump(exclude_unset=True)
    problems = _check_rules(op, given)
    if problems:
        raise ArgumentError(op.name, problems)
    defaults = {n: p.default for n, p in op.params.items() if p.default is not None and n not in given}
    return {**given, **defaults}


class ArgumentsModel:
    """An operation's arguments model, built on first use (building all of them costs start-up time)."""

    def __init__(self, op: Operation) -> None:
        self.op = op
        self._model: type[BaseModel] | None = None

    @property
    def model(self) -> type[BaseModel]:
        if self._model is None:
            self._model = arguments_model(self.op)
        return self._model

    def validate(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """Validated arguments (only those given), or ArgumentError listing every problem."""
        return validate_arguments(self.op, self.model, arguments)
