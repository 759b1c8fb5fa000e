"""The servers `overhead.py` compares, in-process or served over stdio / Streamable HTTP on 127.0.0.1.

- `bare`: a low-level SDK `Server` with one trivial tool (`get_tag`, a constant text answer, no output schema).
- `floor`: the least a tool that reads the API does, on the low-level SDK `Server`: one `get_tag` with an output
  schema (and the per-tool input-schema lookup) that GETs the tag through an httpx2.AsyncClient over the same
  MockTransport as `mock`, decodes the JSON and answers one text line plus the tag as structured content — no
  validation beyond the SDK's, no retries, pacing, scrubbing, bounds or jobs. The floor of per-call cost for any
  server of an HTTP API; `mock ÷ floor` is what this project adds on top of it.
- `ours`: systeme_mcp's server (toolsets `all`) over the embedded sandbox, its rate limit off.
- `mock`: systeme_mcp's server (toolsets `all`, backend `direct`, a dummy 30-character key) whose upstream is an
  httpx2.MockTransport answering a constant tag at once: what is left is the server's own cost.

`ours` and `mock` are served as the CLI serves them (transport.py: AnswerMalformedLines on stdio; http_app with
its guards and http_guard.uvicorn_config over HTTP); `bare` the plain SDK way. Imports are lazy, so a `bare`
process loads only the SDK (cold start).

Run: python benchmarks/overhead_servers.py {stdio|http} {bare|floor|ours|mock} [port]
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio

if TYPE_CHECKING:
    import httpx2
    from mcp.server import Server

Variant = Literal["bare", "floor", "ours", "mock"]
VARIANTS: tuple[Variant, ...] = ("bare", "floor", "ours", "mock")
TOOL = "get_tag"
ARGUMENTS: dict[str, Any] = {"tag_id": 1}
TAG = {"id": 1, "name": "customer", "createdAt": "2024-01-01T00:00:00+00:00"}
DUMMY_KEY = "bench-dummy-key-0123456789abcd"  # 30 characters: long enough to be redacted like a real key


def bare_server() -> Server[Any]:
    """One tool with an input schema, answering a constant; nothing else."""
    from mcp import types
    from mcp.server import Server, ServerRequestContext

    tool = types.Tool(
        name=TOOL,
        description="Get one tag by id.",
        input_schema={"type": "object", "properties": {"tag_id": {"type": "integer"}}, "required": ["tag_id"]},
    )
    listed = types.ListToolsResult(tools=[tool])
    answer = types.CallToolResult(content=[types.TextContent(type="text", text="tag #1 name=customer")])

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return listed

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        return answer

    return Server("bare", version="0", on_list_tools=list_tools, on_call_tool=call_tool)


def floor_server() -> Server[Any]:
    """One `get_tag` that reads the tag from the (mock) upstream and answers it as text and structured content."""
    import httpx2
    from mcp import types
    from mcp.server import Server, ServerRequestContext

    schema = {"type": "object", "properties": {"tag_id": {"type": "integer"}}, "required": ["tag_id"]}
    output = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "createdAt": {"type": "string"}},
        "required": ["id", "name"],
    }
    tool = types.Tool(name=TOOL, description="Get one tag by id.", input_schema=schema, output_schema=output)
    listed = types.ListToolsResult(tools=[tool])
    http = httpx2.AsyncClient(
        transport=mock_upstream(), base_url="http://upstream.invalid", headers={"X-API-Key": DUMMY_KEY}
    )

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return listed

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        answer = await http.get(f"/api/tags/{int((params.arguments or {})['tag_id'])}")
        tag = answer.json()
        text = f"tag #{tag['id']} name={tag['name']}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=tag)

    return Server(
        "floor",
        version="0",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=lambda name: schema if name == TOOL else None,
    )


def mock_upstream() -> httpx2.MockTransport:
    """An upstream answering the same tag to every request, at once."""
    import httpx2

    body = httpx2.Response(200, json=TAG).content
    headers = {"content-type": "application/json; charset=utf-8"}

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers=headers)

    return httpx2.MockTransport(answer)


@asynccontextmanager
async def open_server(variant: Variant, **settings: Any) -> AsyncIterator[Server[Any]]:
    """The server of `variant`, its runtime open (closed on exit); `settings` go to our Settings."""
    if variant in ("bare", "floor"):
        yield bare_server() if variant == "bare" else floor_server()
        return
    from systeme_mcp.config import Settings
    from systeme_mcp.server import serving

    if variant == "ours":
        from systeme_mcp.sandbox import Sandbox

        options = Settings(backend="sandbox", toolsets=["all"], **settings)
        async with serving(options, sandbox=Sandbox(rate_limit=None)) as server:
            yield server
        return
    options = Settings(
        backend="direct",
        systeme_api_key=DUMMY_KEY,
        systeme_api_url="http://upstream.invalid",
        toolsets=["all"],
        **settings,
    )
    async with serving(options, transport=mock_upstream()) as server:
        yield server


async def serve_stdio(variant: Variant) -> None:
    from mcp.server.stdio import stdio_server

    async with open_server(variant) as server, stdio_server() as (read, write):
        if variant in ("bare", "floor"):
            await server.run(read, write, server.create_initialization_options())
            return
        from systeme_mcp.transport import AnswerMalformedLines

        await server.run(AnswerMalformedLines(read, write), write, server.create_initialization_options())


async def serve_http(variant: Variant, port: int) -> None:
    import uvicorn

    host = "127.0.0.1"
    async with open_server(variant, transport="http", host=host, port=port) as server:
        if variant in ("bare", "floor"):
            config = uvicorn.Config(server.streamable_http_app(), host=host, port=port, log_level="warning")
        else:
            from systeme_mcp import http_guard
            from systeme_mcp.config import Settings
            from systeme_mcp.transport import http_app

            settings = Settings(transport="http", host=host, port=port, backend="sandbox")  # http_app reads host
            config = http_guard.uvicorn_config(http_app(server, settings), host, port)
            http_guard.limit_rejection_logs()
        await uvicorn.Server(config).serve()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("stdio", "http") or argv[1] not in VARIANTS:
        print(__doc__, file=sys.stderr)
        return 2
    variant = next(v for v in VARIANTS if v == argv[1])
    if argv[0] == "stdio":
        anyio.run(serve_stdio, variant)
    else:
        anyio.run(serve_http, variant, int(argv[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
