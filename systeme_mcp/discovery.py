"""The discovery profile (`--profile discover` / SYSTEME_PROFILE=discover): three tools instead of the catalog.

`search_tools` finds tools by words, `describe_tool` shows one tool's full schema, `call_tool` runs one by name.
The tools they reach are exactly those the full profile would list (`registry.select`: the chosen toolsets,
read-only mode), and `call_tool` runs the target's own `ToolDef.handler` with the call's own context, so
validation, confirmation, outcome rules and answers are those of a direct call; `server.call_tool` seals the
answer as it seals any other. Confirmation in the 2026-07-28 era: the question's request_state names the target
and its arguments (`confirm._state`), and the SDK's RequestStateBoundary seals it bound to this tools/call — the
name `call_tool` and its whole `arguments` — so the retry must repeat the same target call to count.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from mcp import types

from . import answers
from .projection import cut
from .runtime import CallContext
from .schemas import ArgumentError, input_schema
from .tools import ToolDef
from .workflow_kit import Declared, declare, param

log = logging.getLogger("systeme_mcp.discovery")

TOOLSET = "discovery"
SHOW = 20  # tools listed per search
SUMMARY = 160  # characters of a tool's one-line summary
STOP_WORDS = frozenset("a an and by for from in into of on or the to with".split())
WEIGHTS = {"name": 3, "title": 2, "description": 1, "arguments": 1}
FORMATS = {"email": "email", "uri": "http(s) URL", "uuid": "UUID", "date-time": "ISO-8601 date-time"}
NAME = {"type": "string", "max_length": 64}
DISCOVERY_TOOLS = ("search_tools", "describe_tool", "call_tool")
CALL_ARGUMENTS = ("name", "arguments")
_SENTENCE = re.compile(r"(?<!\be\.g)(?<!\bi\.e)\.\s")


def kind(tool: ToolDef) -> str:
    return "read" if tool.read_only else "destructive" if tool.destructive else "write"


def summary(tool: ToolDef) -> str:
    """The first sentence of the tool's description (what it is for), bounded."""
    text = " ".join((tool.tool.description or tool.tool.title or "").split())
    first = _SENTENCE.split(text, maxsplit=1)[0].rstrip(".")
    return cut(first, SUMMARY) + "."


# ---------------------------------------------------------------- search
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _matches(word: str, seen: set[str]) -> bool:
    return any(s.startswith(word) for s in seen)


def _index(tool: ToolDef) -> dict[str, set[str]]:
    t = tool.tool
    fields = {"name": t.name, "title": t.title or "", "description": t.description or ""}
    fields["arguments"] = " ".join(t.input_schema.get("properties", {}))
    return {field: set(_words(text)) for field, text in fields.items()}


def search(tools: dict[str, ToolDef], query: str, toolset: str | None = None) -> list[ToolDef]:
    """The tools matching `query`, best first; `*` matches all. A word matches the start of a word of a tool's
    name, title, description or argument names. The tools matching the most words (every word, or of three or
    more all but one) ranked by words matched, then where (name before title before the rest), then catalog
    order; an exact tool name first."""
    pool = [t for t in tools.values() if toolset is None or t.toolset == toolset]
    if query.strip() == "*":
        return pool
    words = [_stem(w) for w in _words(query)]
    words = list(dict.fromkeys(w for w in words if w not in STOP_WORDS)) or words
    ranked: list[tuple[int, int, int, ToolDef]] = []
    for order, tool in enumerate(pool):
        index = _index(tool)
        hits = [max((WEIGHTS[f] for f, seen in index.items() if _matches(w, seen)), default=0) for w in words]
        matched = sum(1 for h in hits if h)
        if tool.name == query.strip():
            ranked.append((-len(words) - 1, 0, order, tool))  # the exact name: first
        elif matched:
            ranked.append((-matched, -sum(hits), order, tool))
    ranked.sort(key=lambda r: r[:3])
    best = -ranked[0][0] if ranked else 0
    enough = min(best, len(words) - 1 if len(words) > 2 else len(words))  # of 3+ words, all but one will do
    return [tool for matched, *_, tool in ranked if -matched >= enough]


# ---------------------------------------------------------------- describe
def _range(low: Any, high: Any, unit: str = "") -> str:
    if low is not None and high is not None:
        return f" {low}-{high}{unit}"
    return f" ≥{low}{unit}" if low is not None else f" ≤{high}{unit}" if high is not None else ""


def _value(s: dict[str, Any]) -> str:
    """One schema value in words: its type and every constraint."""
    if "enum" in s:
        return "one of " + "|".join("null" if v is None else str(v) for v in s["enum"])
    declared = s.get("type")
    kinds: list[Any] = declared if isinstance(declared, list) else [declared]
    base = next((k for k in kinds if k != "null"), None)
    words = base or "any value"
    if base == "string":
        words = FORMATS.get(s.get("format", ""), "text")
        words += _range(s.get("minLength"), s.get("maxLength"), " chars")
        words += f" matching {s['pattern']}" if "pattern" in s else ""
    elif base in ("integer", "number"):
        words += _range(s.get("minimum"), s.get("maximum"))
    elif base == "array":
        words = f"list of {_value(s.get('items', {}))}"
        words += f", ≥{s['minItems']} items" if s.get("minItems") else ""
        words += ", unique" if s.get("uniqueItems") else ""
    elif base == "object" and isinstance(s.get("additionalProperties"), dict):
        key = _value({"type": "string", **s.get("propertyNames", {})})
        words = f"object {{{key}: {_value(s['additionalProperties'])}}}"
    return words + (" or null" if "null" in kinds and "enum" not in s else "")


def describe_text(tool: ToolDef) -> str:
    """The tool in compact words: what it does, then one line per argument with every constraint."""
    t = tool.tool
    schema = t.input_schema
    required = set(schema.get("required", []))
    lines = [f"{t.name} — {t.title or t.name} [{kind(tool)}; toolset {tool.toolset}]", t.description or ""]
    props: dict[str, Any] = schema.get("properties", {})
    lines.append(f'Arguments, for call_tool(name="{t.name}", arguments={{...}}):' if props else "Arguments: none.")
    for name, prop in props.items():
        must = ", required" if name in required else ""
        lines.append(f"- {name}: {_value(prop)}{must}. {prop.get('description', '')}".rstrip())
    outputs = ", ".join((t.output_schema or {}).get("properties", {}))
    lines.append(f"Answers text{f' and structured content: {outputs}' if outputs else ''}.")
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------- the three tools
def _missing(name: str, chosen: dict[str, ToolDef], every: dict[str, ToolDef], *, call: bool) -> types.CallToolResult:
    """Why `name` cannot be reached in this profile and what to do instead; nothing was sent."""
    shown = json.dumps(cut(name, 80))
    other = every.get(name)
    if other is not None:  # a real tool this server does not load
        loaded = {t.toolset for t in chosen.values()}
        why = (
            "this server is read-only (SYSTEME_READ_ONLY), so only reads are loaded"
            if other.toolset in loaded
            else f"its toolset `{other.toolset}` is not loaded (SYSTEME_TOOLSETS / --toolsets)"
        )
        text = f"{shown} is not available in this discovery profile: {why}. Nothing was sent."
        return answers.refused(text, write=call and not other.read_only, kind="not_loaded")
    close = difflib.get_close_matches(name, chosen, n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    direct = " Discovery tools are called directly." if name in DISCOVERY_TOOLS else ""
    text = (
        f"Unknown tool {shown} in this discovery profile.{hint}{direct} Find tools with search_tools(query), "
        "then run one with call_tool(name, arguments). Nothing was sent."
    )
    return answers.refused(text, write=False, kind="unknown_tool")


def _read_tool(decl: Declared, output: dict[str, Any], run: Callable[[dict[str, Any]], answers.Answer]) -> ToolDef:
    """A discovery tool that only reads the catalog: validated like any workflow tool, closed-world."""

    async def handler(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        try:
            return run(decl.validate(arguments))
        except ArgumentError as exc:
            return answers.invalid_arguments(exc, write=False)

    op = decl.op
    tool = types.Tool(
        name=op.name,
        title=op.title,
        description=op.description,
        input_schema=input_schema(op),
        output_schema=output,
        annotations=types.ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    return ToolDef(tool=tool, toolset=TOOLSET, read_only=True, destructive=False, handler=handler)


def search_tool(chosen: dict[str, ToolDef]) -> ToolDef:
    toolsets = list(dict.fromkeys(t.toolset for t in chosen.values()))
    query = param(
        "query",
        {"type": "string", "min_length": 1, "max_length": 200, "required": True},
        description='Words, e.g. "tag contact"; * lists all.',
    )
    params = [query]
    if len(toolsets) > 1:
        params.append(param("toolset", {"type": "enum", "values": toolsets}, description="Only this toolset."))
    decl = declare(
        "search_tools",
        "Search tools",
        "Find this server's Systeme.io tools by words. One line each: name — what it does [read|write|destructive]. "
        "Then describe_tool for its arguments and call_tool to run it.",
        params,
        read_only=True,
    )
    text: dict[str, Any] = {"type": "string"}
    item = {"name": text, "summary": text, "kind": {"enum": ["read", "write", "destructive"]}, "toolset": text}
    items = {"type": "array", "items": {"type": "object", "properties": item}}
    output = {"type": "object", "properties": {"tools": items, "total": {"type": "integer"}}, "required": ["tools"]}

    def run(args: dict[str, Any]) -> answers.Answer:
        scope = f" in toolset {args['toolset']}" if "toolset" in args else ""
        found = search(chosen, args["query"], args.get("toolset"))
        shown = [{"name": t.name, "summary": summary(t), "kind": kind(t), "toolset": t.toolset} for t in found[:SHOW]]
        said = json.dumps(args["query"])
        if not found:
            text = f"No tool matches {said}{scope}. Try other words, or * for every tool."
        else:
            best = f" (the best {SHOW} shown)" if len(found) > SHOW else ""
            lines = [f"{t['name']} — {t['summary']} [{t['kind']}]" for t in shown]
            counts = Counter(t.toolset for t in found)
            toolsets = ", ".join(f"{name} {n}" for name, n in counts.items())
            more = [f"{len(found) - SHOW} more: add words or pick a toolset ({toolsets})."] if len(found) > SHOW else []
            text = "\n".join([f"{len(found)} tools match {said}{scope}{best}:", *lines, *more])
        return answers.workflow(text, {"tools": shown, "total": len(found)})

    return _read_tool(decl, output, run)


def describe_tool(chosen: dict[str, ToolDef], every: dict[str, ToolDef]) -> ToolDef:
    decl = declare(
        "describe_tool",
        "Describe tool",
        "One tool's arguments: names, types, constraints, which are required (full schemas in structured content).",
        [param("name", {**NAME, "required": True}, description="Tool name from search_tools.")],
        read_only=True,
    )
    schema = {"type": "object"}
    props = {"name": {"type": "string"}, "input_schema": schema, "output_schema": {"type": ["object", "null"]}}
    output = {"type": "object", "properties": props, "required": ["name", "input_schema"]}

    def run(args: dict[str, Any]) -> answers.Answer:
        target = chosen.get(args["name"])
        if target is None:
            return _missing(args["name"], chosen, every, call=False)
        t = target.tool
        structured = {
            "name": t.name,
            "title": t.title,
            "kind": kind(target),
            "toolset": target.toolset,
            "description": t.description,
            "input_schema": t.input_schema,
            "output_schema": t.output_schema,
            "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else None,
        }
        return answers.workflow(describe_text(target), structured)

    return _read_tool(decl, output, run)


def call_tool(chosen: dict[str, ToolDef], every: dict[str, ToolDef]) -> ToolDef:
    """Runs the target's own handler with this call's context (the params naming the target), so a call through
    it is a direct call in all but the name on the wire."""

    async def handler(ctx: CallContext, arguments: dict[str, Any]) -> answers.Answer:
        name = arguments.get("name")
        inner = arguments.get("arguments")
        target = chosen.get(name) if isinstance(name, str) else None
        problems = [
            f"`{cut(k, 60)}`: unknown argument; call_tool takes `name` and `arguments` (put the tool's own "
            "arguments inside `arguments`)."
            for k in arguments
            if k not in CALL_ARGUMENTS
        ][:5]
        if not isinstance(name, str) or not name:
            problems.append("`name`: required; a tool name from search_tools.")
        if inner is not None and not isinstance(inner, dict):
            problems.append(f"`arguments`: must be an object of the tool's arguments (got {type(inner).__name__}).")
        if problems:
            write = target is not None and not target.read_only
            return answers.invalid_arguments(ArgumentError("call_tool", problems), write=write)
        assert isinstance(name, str)
        if target is None:
            return _missing(name, chosen, every, call=True)
        given: dict[str, Any] = dict(inner or {})
        params = ctx.params
        if isinstance(params, types.CallToolRequestParams):
            params = params.model_copy(update={"name": name, "arguments": given})
        ctx.params = params  # this call's own context (its budget, its job), now naming the target
        try:
            return await target.handler(ctx, given)
        except Exception as exc:  # a bug, not a user error: named after the tool that failed
            log.exception("tool %s failed (through call_tool)", name)
            return answers.internal_error(name, exc)

    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 64, "description": "Tool name from search_tools."},
            "arguments": {"type": "object", "description": "Its arguments, as describe_tool gives them."},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    reads_only = all(t.read_only for t in chosen.values())
    annotations = types.ToolAnnotations(
        read_only_hint=reads_only,
        destructive_hint=not reads_only and any(t.destructive for t in chosen.values()),
        idempotent_hint=all(
            t.tool.annotations is not None and t.tool.annotations.idempotent_hint for t in chosen.values()
        ),
        open_world_hint=True,
    )
    tool = types.Tool(
        name="call_tool",
        title="Call tool",
        description="Run a tool by name with its arguments, exactly as a direct call: same validation, confirmation "
        "before destructive changes, and answer. A call an answer names, e.g. more: list_tags(limit=50), is made "
        'as call_tool(name="list_tags", arguments={"limit": 50}).',
        input_schema=schema,
        annotations=annotations,
    )
    return ToolDef(
        tool=tool,
        toolset=TOOLSET,
        read_only=reads_only,
        destructive=annotations.destructive_hint is True,
        handler=handler,
    )


def discovery_tools(chosen: dict[str, ToolDef], every: dict[str, ToolDef]) -> dict[str, ToolDef]:
    """The discovery profile's tools, reaching `chosen` (the tools the full profile would list); `every` is the
    whole registry, to say why a tool that exists is not loaded."""
    tools = [search_tool(chosen), describe_tool(chosen, every), call_tool(chosen, every)]
    return {t.name: t for t in tools}
