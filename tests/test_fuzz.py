"""Fuzzing every listed tool from its own inputSchema, through a real MCP client session against the sandbox.

Arguments are generated from the JSON Schema each tool publishes in tools/list (so tools added later are
fuzzed too): valid ones (types, enums, ranges, formats, patterns, required, no unknown keys) and invalid
mutations of them (wrong types, out of range, unknown or missing arguments, bad formats, nulls, huge strings,
path-injection strings in ids). Every answer must be a valid result (the SDK client checks structured content
against the outputSchema and raises otherwise) or an isError answer with a clear text; invalid arguments
must send nothing to the API and name the argument; the session must keep working. The server runs on the
gateway backend with a planted Maton key that must never appear in any answer.

`FUZZ_EXAMPLES` (default 15) sets the examples per tool and kind; runs are derandomized (reproducible).
`benchmarks/fuzz_report.py` runs the same generators at a larger count and prints the figures.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import string
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mcp import Client, MCPError, types
from pydantic import ValidationError

from systeme_mcp.catalog import load_catalog
from systeme_mcp.config import Settings
from systeme_mcp.registry import full_registry, registry_for, select
from systeme_mcp.runtime import open_runtime
from systeme_mcp.schemas import EMAIL, ArgumentsModel
from systeme_mcp.server import create_server
from systeme_mcp.tools import ToolDef

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
PLANTED_MATON_KEY = "mtn_PLANTED_k3y_7Qx2Vb9LkP4sZr8T"
ASCII_WORD = "[A-Za-z0-9_]"  # JSON Schema (ECMA-262) `\w` is ASCII-only
FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER

# Server-side checks a JSON Schema cannot express: a schema-valid value may be refused for these (clearly,
# naming the argument, nothing sent). `newsletter_html`: only the HTML Systeme.io keeps; `future_datetime`.
SEMANTIC_TYPES = ("newsletter_html", "future_datetime")
# Cross-argument rules (declared `rules`, `at_least_one`, bulk tools' contact_ids-or-filter): not in the schema.
RULE_PROBLEM = re.compile(r"^\(arguments\)|required when|only allowed when|; at most \d+ per call")
UNCLEAR = ("Traceback", "Internal error", 'File "', "object at 0x", "<class '", "NoneType", "KeyError")
MAX_ANSWER_CHARS = 60_000  # a list page of 100 items stays well below; an echoed megabyte would not
# The liveness probe after every call: an unknown tool. One letter, so the server's close-match search for a
# suggestion rejects every tool name at its cheapest bound ("alive_check" made each probe ~0.2 ms slower, ~1 s
# over the sweep's 4,000+ probes).
ALIVE_PROBE = "z"


# ---------------------------------------------------------------- valid arguments from a JSON Schema
def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return ["enum"] if "enum" in schema else ["object"]
    return t if isinstance(t, list) else [t]


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    low = lo if lo is not None else -(2**31)
    high = hi if hi is not None else 10**20
    near = st.integers(low, min(high, low + 11)) if lo is not None else st.integers(max(low, -5), min(high, 12))
    return st.one_of(near, st.integers(low, high), st.sampled_from([low, high]))


def _text(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    lo, hi = schema.get("minLength", 0), schema.get("maxLength", 10_000)
    pattern = schema.get("pattern")
    if pattern:
        regex = pattern.replace(r"\w", ASCII_WORD)
        return st.from_regex(regex, fullmatch=pattern.endswith("$")).filter(lambda s: lo <= len(s) <= hi)
    nasty = st.sampled_from(["../", "..%2F..%2F", "%2F", "a/b", "<script>x</script>", "{first_name}", "\x00", "é漢😀"])
    samples = [
        st.text(min_size=lo, max_size=min(hi, 40)),
        nasty.filter(lambda s: lo <= len(s) <= hi),
        st.text(string.ascii_letters, min_size=hi, max_size=hi) if hi <= 300 else st.nothing(),
    ]
    return st.one_of(samples)


def _email() -> st.SearchStrategy[str]:
    local = st.from_regex(r"[a-z0-9]{1,10}([._+-][a-z0-9]{1,5}){0,2}", fullmatch=True)
    domain = st.from_regex(
        r"[a-z0-9]{1,12}(-[a-z0-9]{1,6})?(\.[a-z0-9]{1,8}){0,2}\.(com|test|org|fr|io)", fullmatch=True
    )
    return st.builds(lambda a, b: f"{a}@{b}", local, domain).filter(lambda e: bool(EMAIL.match(e)))


def _url() -> st.SearchStrategy[str]:
    host = st.from_regex(r"[a-z0-9]{1,12}\.(example\.com|test|org)", fullmatch=True)
    path = st.from_regex(r"(/[A-Za-z0-9_-]{1,10}){0,3}", fullmatch=True)
    return st.builds(lambda s, h, p: f"{s}://{h}{p}", st.sampled_from(["https", "http"]), host, path)


def _datetime() -> st.SearchStrategy[str]:
    # RFC 3339 with an offset, in the future: valid for both the `datetime` and `future_datetime` kinds
    zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
    when = st.datetimes(min_value=datetime(2031, 1, 1), max_value=datetime(2099, 12, 31), timezones=zones)
    return when.map(lambda d: d.isoformat(timespec="microseconds" if d.microsecond else "seconds"))


FORMATS: dict[str, Callable[[], st.SearchStrategy[str]]] = {
    "email": _email,
    "uri": _url,
    "uuid": lambda: st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()),
    "date-time": _datetime,
}


def value_strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values conforming to one property's schema (the subset of JSON Schema the tools use)."""
    options: list[st.SearchStrategy[Any]] = []
    for t in _types(schema):
        if t == "null":
            options.append(st.none())
        elif "enum" in schema:
            options.append(st.sampled_from([v for v in schema["enum"] if v is not None]))
        elif t == "integer":
            options.append(_integers(schema))
        elif t == "boolean":
            options.append(st.booleans())
        elif t == "string" and "format" in schema:
            options.append(FORMATS[schema["format"]]())
        elif t == "string":
            options.append(_text(schema))
        elif t == "array":
            items = schema.get("items", {})
            lo = schema.get("minItems", 0)
            if "enum" in items:
                choices = items["enum"]
                options.append(st.lists(st.sampled_from(choices), min_size=lo, max_size=len(choices), unique=True))
            else:
                options.append(st.lists(value_strategy(items), min_size=lo, max_size=5))
        elif t == "object" and "properties" in schema:
            options.append(arguments_strategy(schema))
        elif t == "object" and isinstance(schema.get("additionalProperties"), dict):
            names = schema.get("propertyNames", {}).get("pattern", r"^\w+$")
            keys = st.from_regex(names.replace(r"\w", ASCII_WORD), fullmatch=True).filter(lambda k: len(k) <= 40)
            options.append(st.dictionaries(keys, value_strategy(schema["additionalProperties"]), max_size=3))
        else:  # an object the schema leaves open (e.g. the bulk tools' `filter`): the one value sure to fit
            options.append(st.just({}))
    return st.one_of(options)


def _key(schema: Any) -> str:
    """A hashable stand-in for a JSON schema, for the caches below (schemas are JSON: the round trip is lossless
    and keeps the order of the properties)."""
    return json.dumps(schema)


def arguments_strategy(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Argument objects valid against a tool's input schema: every required key, any subset of the rest."""
    return _arguments_strategy(_key(schema))


@functools.cache
def _arguments_strategy(key: str) -> st.SearchStrategy[dict[str, Any]]:
    # built and validated by hypothesis once per schema, not once per example
    schema = json.loads(key)
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: value_strategy(s) for k, s in props.items() if k in required},
        optional={k: value_strategy(s) for k, s in props.items() if k not in required},
    )


# ---------------------------------------------------------------- invalid arguments: one mutation of a valid set
PATH_INJECTION = ["../", "../../etc/passwd", "%2F", "..%2F..%2Fadmin", "a/../b", "1/../2", "?x=1", "#frag", "a b"]
BAD_FORMATS = {
    "email": ["not-an-email", "a@", "@b.com", "a b@c.com", "a@b", "", "a@b..com", "../@", "<a@b.com>"],
    "uri": ["javascript:alert(1)", "ftp://x.example.com/", "not a url", "https://", "/relative/path", "", "http//x"],
    "uuid": [
        *PATH_INJECTION,
        "not-a-uuid",
        "123",
        "",
        "3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10/../x",
        "3f2c8e0a9d4b4c1e8f7a2b6d5e4c3a10",
        "{3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10}",
        "urn:uuid:3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10",
        "3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a1",
    ],
    "date-time": ["yesterday", "2024-13-45T00:00:00Z", "31/01/2024", "", "2024-01-01T25:00:00Z", "T12:00"],
}
WRONG_VALUES: list[Any] = ["12", "text", 1.5, True, False, 0, -1, [1], ["a"], {"a": 1}, {}, [], None]
HUGE = "x" * 1_000_001


@dataclass
class Mutation:
    kind: str
    arguments: dict[str, Any]
    names: set[str]  # the answer must name one of these


def ecma(schema: Any) -> Any:
    """`schema` with its patterns read as JSON Schema (ECMA-262) reads them, for Python's `re`: `\\w` is
    ASCII-only and `$` does not match before a final newline."""
    if isinstance(schema, dict):
        out = {k: ecma(v) for k, v in schema.items()}
        if isinstance(schema.get("pattern"), str):
            pattern = schema["pattern"].replace(r"\w", ASCII_WORD)
            out["pattern"] = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        return out
    return [ecma(v) for v in schema] if isinstance(schema, list) else schema


def _prop_valid(schema: dict[str, Any], value: Any, *, formats: bool = False) -> bool:
    return bool(_validator(_key(schema), formats).is_valid(value))


@functools.cache
def _validator(key: str, formats: bool) -> jsonschema.Draft202012Validator:
    checker = FORMAT_CHECKER if formats else None
    return jsonschema.Draft202012Validator(ecma(json.loads(key)), format_checker=checker)


def _bad_values(prop: dict[str, Any]) -> list[tuple[str, Any]]:
    """(kind, value) pairs that violate one property's schema (a fresh list of the values computed once)."""
    return copy.deepcopy(_bad_values_for(_key(prop)))


@functools.cache
def _bad_values_for(key: str) -> list[tuple[str, Any]]:
    prop = json.loads(key)
    found: list[tuple[str, Any]] = []
    found += [("wrong_type", v) for v in WRONG_VALUES if not _prop_valid(prop, v)]
    types_ = _types(prop)
    if "integer" in types_:
        lo, hi = prop.get("minimum"), prop.get("maximum")
        if lo is not None:
            found += [("out_of_range", lo - 1), ("out_of_range", -(10**12))]
        if hi is not None:
            found += [("out_of_range", hi + 1), ("out_of_range", 10**30)]
        found += [("path_injection", s) for s in PATH_INJECTION]
    if "enum" in prop:
        found += [("bad_enum", v) for v in ("", "ASC", "unknown_value", "../", " now")]
    elif "string" in types_:
        fmt, pattern = prop.get("format"), prop.get("pattern")
        if fmt:
            found += [("bad_format", v) for v in BAD_FORMATS[fmt]]
        if pattern:
            found += [("pattern", v) for v in [*PATH_INJECTION, "", "abc\n", "a-b", "a.b", "\x00"]]
        if "maxLength" in prop:
            found += [("too_long", "y" * (prop["maxLength"] + 1)), ("huge", HUGE)]
        if prop.get("minLength"):
            found += [("too_short", "")]
    if "array" in types_:
        items = prop.get("items", {})
        found += [("bad_item", [v]) for v in (0, -3, "1", 1.5, True, None, "../", "UNKNOWN_EVENT")]
        if prop.get("minItems"):
            found += [("too_few", [])]
        if prop.get("uniqueItems") and "enum" in items:
            found += [("duplicates", [items["enum"][0], items["enum"][0]])]
    if "object" in types_ and isinstance(prop.get("additionalProperties"), dict):
        found += [("bad_key", {k: "v"}) for k in ("../x", "a b", "", "%2F", "é")]
        found += [("bad_value", {"ok": v}) for v in (1, True, [1], {"a": 1})]
    if "null" not in types_:
        found.append(("null", None))
    # keep what the schema really refuses; formats are trusted (jsonschema checks some only loosely)
    return [(k, v) for k, v in found if k == "bad_format" or not _prop_valid(prop, v, formats=True)]


def simple_value(schema: dict[str, Any]) -> Any:
    """One plain value that fits a property's schema (the sweep's base arguments)."""
    t = next(x for x in _types(schema) if x != "null")
    if "enum" in schema:
        return next(v for v in schema["enum"] if v is not None)
    canned = {
        "email": "sweep@example.com",
        "uri": "https://sweep.example.com/hook",
        "date-time": "2031-01-31T09:00:00+00:00",
    }
    if t == "string" and "format" in schema:
        return canned.get(schema["format"], "3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10")
    if t == "string":
        return "abc=" if schema.get("pattern", "").endswith("=") else "abc"
    if t == "integer":
        return max(schema.get("minimum", 1), 1)
    if t == "array":
        items = schema.get("items", {})
        return [items["enum"][0]] if "enum" in items else [1]
    return {"abc": "x"} if isinstance(schema.get("additionalProperties"), dict) else {}


def sweep(schema: dict[str, Any]) -> list[Mutation]:
    """Every bad value of every argument, each on otherwise plain valid arguments (deterministic)."""
    props = schema.get("properties", {})
    base = {k: simple_value(props[k]) for k in schema.get("required", [])}
    found = [Mutation("unknown_arg", {**base, n: 1}, {n[:40]}) for n in UNKNOWN_NAMES if n not in props]
    found += [Mutation("missing_required", {k: v for k, v in base.items() if k != r}, {r}) for r in base]
    for name, prop in props.items():
        found += [Mutation(kind, {**base, name: value}, {name}) for kind, value in _bad_values(prop)]
    return found


UNKNOWN_NAMES = ["unknown_arg", "__proto__", "contactId", "../id", "id;drop", "é", "k" * 100_000, ""]


def invalid_arguments(schema: dict[str, Any]) -> st.SearchStrategy[Mutation]:
    """A valid argument set with exactly one thing broken."""
    return _invalid_arguments(_key(schema))


@functools.cache
def _invalid_arguments(key: str) -> st.SearchStrategy[Mutation]:
    return _one_mutation(json.loads(key))


@st.composite
def _one_mutation(draw: st.DrawFn, schema: dict[str, Any]) -> Mutation:
    args = dict(draw(arguments_strategy(schema)))
    props = schema.get("properties", {})
    required = list(schema.get("required", []))
    choices = ["unknown"] + (["missing"] if required else []) + (["bad_value"] if props else [])
    kind = draw(st.sampled_from(choices))
    if kind == "unknown":
        name = draw(st.sampled_from([n for n in UNKNOWN_NAMES if n not in props]))
        args[name] = draw(st.sampled_from(["x", 1, None, {"nested": True}]))
        return Mutation("unknown_arg", args, {name[:40]})
    if kind == "missing":
        name = draw(st.sampled_from(required))
        args.pop(name, None)
        return Mutation("missing_required", args, {name})
    name = draw(st.sampled_from(sorted(props)))
    bad_kind, value = copy.deepcopy(draw(st.sampled_from(_bad_values_for(_key(props[name])))))
    args[name] = value
    return Mutation(bad_kind, args, {name})


# ---------------------------------------------------------------- the session under test
@dataclass
class Tally:
    """What happened to one tool's examples (the figures benchmarks/fuzz_report.py prints)."""

    valid: int = 0
    invalid: int = 0
    results: int = 0  # valid results (structured content checked by the client)
    tool_errors: int = 0  # isError answers to valid arguments (404s, API refusals, cross-argument rules)
    rule_refusals: int = 0  # ... of which refused by a rule the schema cannot express
    crashes: int = 0  # exceptions out of call_tool, internal errors, or a session that stopped answering
    requests_for_invalid: int = 0
    secrets_found: int = 0
    unclear: int = 0  # answers failing the clarity checks (no argument named, traceback, too long)
    failures: list[str] = field(default_factory=list)


class Harness:
    """One MCP client session on the server over a sandbox (a plain class: hypothesis prints it short)."""

    def __init__(self, sandbox: Any, client: Client, tools: dict[str, types.Tool], registry: dict[str, ToolDef]):
        self.sandbox = sandbox
        self.client = client
        self.tools = tools
        self.registry = registry
        self.secrets: tuple[str, ...] = (PLANTED_MATON_KEY,)
        self.portal: Any = None

    def __repr__(self) -> str:
        return f"Harness({len(self.tools)} tools)"

    def semantic(self, tool: str) -> set[str]:
        op = self.registry[tool].operation
        return {n for n, p in op.params.items() if p.type in SEMANTIC_TYPES} if op else set()


def fuzz_settings(sb: Any, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "backend": "gateway",
        "maton_api_key": PLANTED_MATON_KEY,
        "maton_gateway_url": sb.base_url,
        "maton_ctrl_url": sb.base_url,
        "confirm_destructive": False,
        "toolsets": ["all"],
        "max_attempts": 1,
    }
    return Settings(**(options | overrides))


@asynccontextmanager
async def fuzz_session(mode: str = "auto", **overrides: Any) -> AsyncIterator[Harness]:
    """The server on the gateway backend (planted key) over a fresh sandbox, and a real MCP client."""
    from systeme_mcp.sandbox import Sandbox

    sb = Sandbox(rate_limit=None, membership_delay=0.0, maton_keys={PLANTED_MATON_KEY})
    async with (
        open_runtime(fuzz_settings(sb, **overrides), transport=sb.transport()) as runtime,
        Client(create_server(runtime), mode=mode, cache=None) as client,
    ):
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        yield Harness(sb, client, tools, registry_for(runtime.settings, runtime.catalog))


@functools.cache
def registry_for_settings() -> dict[str, ToolDef]:
    """The registry the fuzzed server lists (every toolset), without starting it."""

    catalog = load_catalog()
    return select(full_registry(catalog), ["all"], read_only=False)


def listed_tools() -> list[str]:
    """The names tools/list returns (computed once at collection, through a real client)."""

    async def names() -> list[str]:
        async with fuzz_session() as h:
            return list(h.tools)

    return anyio.run(names)


def answer_text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def leaked(h: Harness, *texts: str) -> list[str]:
    forms = {f for s in h.secrets for f in (s, quote(s, safe=""), s[-12:], json.dumps(s)[1:-1])}
    return [f for f in forms for t in texts if f in t]


def _check_clear(h: Harness, tool: str, result: types.CallToolResult, tally: Tally, where: str) -> str:
    text = answer_text(result)
    structured = json.dumps(result.structured_content, ensure_ascii=False)
    found = leaked(h, text, structured)
    if found:
        tally.secrets_found += 1
        tally.failures.append(f"{where}: secret in answer")
    if "Internal error" in text:
        tally.crashes += 1
        tally.failures.append(f"{where}: {text[:300]}")
    elif not text.strip() or any(u in text for u in UNCLEAR) or len(text) > MAX_ANSWER_CHARS:
        tally.unclear += 1
        tally.failures.append(f"{where}: unclear answer ({len(text)} chars): {text[:300]!r}")
    return text


async def _alive(h: Harness, tally: Tally, where: str) -> None:
    try:
        with anyio.fail_after(10):
            # ping is legacy-only; an unknown tool is answered by the server's tools/call itself (the protocol
            # error -32602), sends nothing
            with pytest.raises(MCPError) as refused:
                await h.client.call_tool(ALIVE_PROBE, {})
        assert refused.value.error.code == types.INVALID_PARAMS
    except Exception as exc:
        tally.crashes += 1
        tally.failures.append(f"{where}: session stopped answering ({type(exc).__name__}: {exc})")
        raise


async def run_valid(h: Harness, tool: str, args: dict[str, Any], tally: Tally) -> None:
    """One valid example: a result, or a clear isError answer; rule refusals only for rules."""
    tally.valid += 1
    where = f"{tool} valid {json.dumps(args, ensure_ascii=False)[:300]}"
    try:
        with anyio.fail_after(60):
            result = await h.client.call_tool(tool, args)
    except Exception as exc:  # includes the client's outputSchema check (RuntimeError)
        tally.crashes += 1
        tally.failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")
        await _alive(h, tally, where)
        return
    text = _check_clear(h, tool, result, tally, where)
    if not result.is_error:
        tally.results += 1
    else:
        tally.tool_errors += 1
        if text.startswith("Invalid arguments for"):
            problems = text.split("\n")[1:]
            allowed = h.semantic(tool)
            odd = [p for p in problems if not RULE_PROBLEM.search(p) and not any(f"`{n}`" in p for n in allowed)]
            if odd:
                tally.failures.append(f"{where}: schema-valid arguments refused: {odd}")
                tally.unclear += 1
            else:
                tally.rule_refusals += 1
    await _alive(h, tally, where)


async def run_invalid(h: Harness, tool: str, mutation: Mutation, tally: Tally) -> None:
    """One invalid example: an isError answer naming the argument, and no request sent."""
    tally.invalid += 1
    shown = json.dumps(mutation.arguments, ensure_ascii=False)
    where = f"{tool} invalid[{mutation.kind}] {shown[:200]}{'…' if len(shown) > 200 else ''}"
    before = len(h.sandbox.requests)
    try:
        with anyio.fail_after(60):
            result = await h.client.call_tool(tool, mutation.arguments)
    except Exception as exc:
        tally.crashes += 1
        tally.failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")
        await _alive(h, tally, where)
        return
    sent = len(h.sandbox.requests) - before
    if sent:
        tally.requests_for_invalid += sent
        tally.failures.append(f"{where}: {sent} request(s) sent for invalid arguments")
    text = _check_clear(h, tool, result, tally, where)
    if not result.is_error:
        tally.failures.append(f"{where}: invalid arguments accepted")
        tally.unclear += 1
    elif not text.startswith(f"Invalid arguments for {tool}") or not any(f"`{n}" in text for n in mutation.names):
        tally.failures.append(f"{where}: the answer does not name {sorted(mutation.names)}: {text[:300]!r}")
        tally.unclear += 1
    await _alive(h, tally, where)


# ---------------------------------------------------------------- the tests
TOOLS = listed_tools()
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported with its arguments; no shrinking needed
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """One session for the module, on its own event loop in a thread (hypothesis drives sync tests)."""
    with anyio.from_thread.start_blocking_portal() as portal, portal.wrap_async_context_manager(fuzz_session()) as h:
        h.portal = portal
        yield h


def test_every_listed_tool_is_fuzzed() -> None:
    assert len(TOOLS) >= 36 and len(set(TOOLS)) == len(TOOLS)


def _assert_clean(tally: Tally) -> None:
    if tally.failures:
        pytest.fail("\n".join(tally.failures[:10]), pytrace=False)


@pytest.fixture(scope="module")
def legacy() -> Iterator[Harness]:
    """The same, in the 2025-11-25 handshake era."""
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(fuzz_session("legacy")) as h,
    ):
        h.portal = portal
        yield h


@pytest.fixture
def fresh(harness: Harness) -> Harness:
    """The module's session, on a sandbox back at its seed state (once per tool, not per example)."""
    harness.sandbox.reset()
    return harness


@pytest.mark.parametrize("tool", TOOLS)
@FUZZ
@given(data=st.data())
def test_valid_arguments_get_a_result_or_a_clear_error(fresh: Harness, tool: str, data: st.DataObject) -> None:
    schema = fresh.tools[tool].input_schema
    args = data.draw(arguments_strategy(schema), label="arguments")
    assert _prop_valid(schema, args, formats=True), args  # the generator itself conforms
    tally = Tally()
    fresh.portal.call(run_valid, fresh, tool, args, tally)
    _assert_clean(tally)


@pytest.mark.parametrize("tool", TOOLS)
@FUZZ
@given(data=st.data())
def test_invalid_arguments_are_refused_naming_the_argument_with_nothing_sent(
    harness: Harness, tool: str, data: st.DataObject
) -> None:
    mutation = data.draw(invalid_arguments(harness.tools[tool].input_schema), label="mutation")
    tally = Tally()
    harness.portal.call(run_invalid, harness, tool, mutation, tally)
    _assert_clean(tally)


def test_every_bad_value_of_every_argument_is_refused_with_nothing_sent(harness: Harness) -> None:
    """The deterministic sweep: each bad value of each argument of each listed tool, on plain valid arguments."""
    tally = Tally()

    async def run_all() -> None:
        for tool, listed in harness.tools.items():
            for mutation in sweep(listed.input_schema):
                await run_invalid(harness, tool, mutation, tally)

    harness.portal.call(run_all)
    assert tally.invalid > 20 * len(TOOLS)
    _assert_clean(tally)


@FUZZ
@given(data=st.data())
def test_the_legacy_era_session_survives_valid_and_invalid_calls(legacy: Harness, data: st.DataObject) -> None:
    tool = data.draw(st.sampled_from(TOOLS), label="tool")
    schema = legacy.tools[tool].input_schema
    tally = Tally()
    if data.draw(st.booleans(), label="valid"):
        legacy.portal.call(run_valid, legacy, tool, data.draw(arguments_strategy(schema), label="arguments"), tally)
    else:
        legacy.portal.call(run_invalid, legacy, tool, data.draw(invalid_arguments(schema), label="mutation"), tally)
    _assert_clean(tally)


# ---------------------------------------------------------------- the schema and the model agree
DECLARED = [name for name, t in registry_for_settings().items() if t.operation is not None]


@functools.cache
def _arguments_model(name: str) -> ArgumentsModel:
    """The tool's arguments model, built once (pydantic model creation costs more than validating)."""
    operation = registry_for_settings()[name].operation
    assert operation is not None
    return ArgumentsModel(operation)


def _model_accepts(tool: ToolDef, args: dict[str, Any]) -> bool:
    try:
        _arguments_model(tool.name).model.model_validate(args)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", DECLARED)
@settings(FUZZ, max_examples=EXAMPLES * 2)
@given(data=st.data())
def test_the_model_accepts_what_the_schema_allows_and_refuses_what_it_does_not(name: str, data: st.DataObject) -> None:
    tool = registry_for_settings()[name]
    assert tool.operation is not None
    schema = tool.tool.input_schema
    args = data.draw(arguments_strategy(schema), label="valid")
    for arg, param in tool.operation.params.items():  # a value a JSON Schema cannot describe: give a good one
        if arg in args and param.type == "newsletter_html":
            args[arg] = "<p>Hello {first_name},</p><ul><li><strong>news</strong></li></ul>"
    assert _model_accepts(tool, args), args
    mutation = data.draw(invalid_arguments(schema), label="invalid")
    assert not _model_accepts(tool, mutation.arguments), (mutation.kind, mutation.arguments)
