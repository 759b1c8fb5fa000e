"""Every declared operation (the loaded catalog: every `tool_specs/*.toml` table) through a real MCP client
session, in both protocol eras, against the sandbox with every toolset loaded:
- the happy path: its case in tests/cases/ (state checked through the sandbox's own HTTP API), every answer's
  structuredContent matching the tool's output schema;
- an invalid argument (derived from the tool's input schema): isError, the argument named, `not_applied` /
  `invalid_arguments` for a write, and nothing sent;
- an upstream error (valid arguments derived from the declaration, every request answered 500): isError, no
  traceback, and for a write the exact structured outcome.
A new declaration fails `test_the_case_table_covers_exactly_the_catalog` until it has a case."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from mcp import Client, types

from systeme_mcp.catalog import Catalog, Operation, Param, load_catalog

from .cases import CASES
from .helpers import RawApi, requests_seen, text

pytestmark = pytest.mark.anyio

TOOLS = [op.name for op in load_catalog()]


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return {"twilio_connected": True}  # so the SMS reads answer


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["all"]}  # confirm_destructive stays off (conftest), waits stay virtual


async def tool_named(mcp: Client, name: str) -> types.Tool:
    return next(t for t in (await mcp.list_tools()).tools if t.name == name)


def check_structured(tool: types.Tool, result: types.CallToolResult) -> None:
    """Structured content, where there is some, matches the tool's output schema (failures included: the SDK
    client checks only successful answers)."""
    assert tool.output_schema is not None
    if result.structured_content is not None:
        jsonschema.validate(result.structured_content, tool.output_schema)


class Checked:
    """The client as the cases see it: every call's answer is checked against the tool's output schema, and the
    names of the tools called are kept."""

    def __init__(self, client: Client, tools: dict[str, types.Tool]) -> None:
        self.client, self.tools = client, tools
        self.called: set[str] = set()

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None, **options: Any) -> Any:
        result = await self.client.call_tool(name, arguments, **options)
        self.called.add(name)
        check_structured(self.tools[name], result)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


# ---------------------------------------------------------------- the case table
def test_the_case_table_covers_exactly_the_catalog(catalog: Catalog) -> None:
    assert sorted(CASES) == sorted(op.name for op in catalog)


# ---------------------------------------------------------------- happy path
@pytest.mark.parametrize("tool", TOOLS)
async def test_happy_path_changes_the_sandbox(tool: str, mcp: Client, api: RawApi) -> None:
    checked = Checked(mcp, {t.name: t for t in (await mcp.list_tools()).tools})
    await CASES[tool](checked, api)
    assert tool in checked.called, f"the case of {tool} never calls it"


# ---------------------------------------------------------------- invalid argument
def _invalid_value(prop: dict[str, Any]) -> Any:
    """A value the schema forbids, chosen from the property's own constraints."""
    if "enum" in prop:
        return "not-a-choice"
    if prop.get("format") == "uuid":
        return "not-a-uuid"
    if prop.get("format") == "email":
        return "not-an-email"
    if prop.get("format") == "uri":
        return "ftp://files.example.com/x"
    if prop.get("format") == "date-time":
        return "yesterday"
    if prop.get("type") == "integer":
        return (prop.get("minimum") or 1) - 1
    if prop.get("type") == "array":
        return []
    if prop.get("pattern"):
        return "no spaces allowed!"
    if prop.get("type") == "boolean":
        return "yes"
    return 12345


def invalid_arguments(tool: types.Tool) -> tuple[str, dict[str, Any]]:
    """(the argument at fault, the arguments): the tool's first argument with a value its schema forbids, or an
    argument it does not take when it takes none."""
    props: dict[str, Any] = tool.input_schema["properties"]
    name, value = next(((n, _invalid_value(p)) for n, p in props.items()), ("bogus", 1))
    return name, {name: value}


@pytest.mark.parametrize("tool", TOOLS)
async def test_invalid_argument_is_named_and_nothing_is_sent(
    tool: str, mcp: Client, catalog: Catalog, sandbox: Any
) -> None:
    definition = await tool_named(mcp, tool)
    name, arguments = invalid_arguments(definition)
    before = requests_seen(sandbox)
    result = await mcp.call_tool(tool, arguments)
    assert result.is_error
    assert f"`{name}`" in text(result), text(result)  # the message names the argument: its contract
    check_structured(definition, result)
    if catalog[tool].read_only:
        assert "nothing was sent" in text(result)  # a read says it only in words
    else:
        assert result.structured_content is not None
        assert result.structured_content["outcome"] == "not_applied"
        assert result.structured_content["error"] == {"kind": "invalid_arguments"}
    assert requests_seen(sandbox) == before, "an invalid call reached the API"


# ---------------------------------------------------------------- upstream error
SAMPLES: dict[str, Any] = {  # a valid value of each declared parameter type (ids need not exist: see below)
    "boolean": True,
    "string": "valid_text",
    "email": "someone@example.com",
    "url": "https://hooks.example.com/x",
    "uuid": "3f2c8e0a-9d4b-4c1e-8f7a-2b6d5e4c3a10",
    "datetime": "2024-01-01T00:00:00+00:00",
    "future_datetime": "2099-01-01T09:00:00+00:00",
    "newsletter_html": "<p>Hello {first_name}</p>",
    "string_map": {"valid_slug": "valid text"},
}


def valid_value(p: Param) -> Any:
    """A value the declaration allows for `p` (a new parameter type needs a sample in SAMPLES)."""
    match p.type:
        case "integer":
            return max(1, p.minimum or 1)
        case "enum":
            return p.choices[0]
        case "enum_list":
            return [p.choices[0]]
        case "integer_list":
            return [1]
    return SAMPLES[p.type]


def valid_arguments(op: Operation) -> dict[str, Any]:
    """Arguments that pass the operation's validation, derived from its declaration: the required parameters,
    one changeable parameter when it needs at least one, and each parameter a rule then requires."""
    names = [n for n, p in op.params.items() if p.required]
    if op.at_least_one:
        names.append(next(n for n, p in op.params.items() if p.location not in ("path", "local") and n not in names))
    arguments = {n: valid_value(op.params[n]) for n in names}
    for rule in op.rules:
        if all(arguments.get(k) in v for k, v in rule.when.items()):
            arguments[rule.param] = valid_value(op.params[rule.param])
    return arguments


@pytest.mark.parametrize("tool", TOOLS)
async def test_upstream_error_is_explained(tool: str, mcp: Client, catalog: Catalog, sandbox: Any) -> None:
    from systeme_mcp.sandbox import FaultPlan

    op = catalog[tool]
    definition = await tool_named(mcp, tool)
    sandbox.faults.set(FaultPlan(rate=1.0, kinds=("500",), seed=1))  # every request: the ids need not exist
    before = requests_seen(sandbox)
    result = await mcp.call_tool(tool, valid_arguments(op))
    assert requests_seen(sandbox) > before, f"the arguments did not pass validation: {text(result)}"
    assert result.is_error, text(result)
    assert "Traceback" not in text(result)
    check_structured(definition, result)
    if op.read_only:
        assert "500" in text(result), text(result)  # a read's failure carries no structured content
    else:  # a 500 after the request was sent: the write may or may not have happened
        assert result.structured_content == {
            "outcome": "unknown",
            "message": text(result).split("\n", 1)[0],
            "error": {"kind": "server_error", "status": 500},
        }
