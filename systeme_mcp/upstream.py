"""Everything the upstream sends is untrusted: bodies are read under a size cap, JSON is decoded into text that
is always valid Unicode, and an answer is checked against the declared shape before anything believes it.

- `read_body`: counts the bytes on the wire and after decompression; past `cap` it stops reading at once
  (the response is closed by the caller) and raises `Overflow` — a gzip bomb never gets decoded further.
- `decode_json`: UTF-8 with invalid bytes replaced, lone surrogates (`"\\ud800"` is legal JSON) replaced by
  U+FFFD in every key and value, NaN/Infinity read as null, pathological nesting refused.
- `shape_problem`: a list operation's items must be a list of objects (of scalars where the shape projects the
  item itself); an item operation's object must be an object. It says what came instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from .catalog import Operation, ResultShape
from .projection import pick

SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class Overflow(Exception):
    """A body passed the cap. `read`: bytes read off the wire; `decoded`: bytes after decompression (None: the
    declared Content-Length alone was over the cap, nothing was read)."""

    def __init__(self, read: int, decoded: int | None) -> None:
        super().__init__(f"answer over the cap after {read} bytes read")
        self.read = read
        self.decoded = decoded


class _CountedStream(httpx2.AsyncByteStream):
    """The raw (still compressed) body stream, counted; raises Overflow the moment it passes `cap`."""

    def __init__(self, inner: httpx2.AsyncByteStream, cap: int) -> None:
        self._inner = inner
        self._cap = cap
        self.count = 0
        self.decoded = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self.count += len(chunk)
            if self.count > self._cap:
                raise Overflow(self.count, self.decoded)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


async def read_body(response: httpx2.Response, cap: int) -> bytes:
    """The decoded body of a streamed `response`, at most `cap` bytes on the wire and `cap` decoded."""
    declared = response.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
        raise Overflow(int(declared[:18]), None)
    counted: _CountedStream | None = None
    if isinstance(response.stream, httpx2.AsyncByteStream):
        counted = _CountedStream(response.stream, cap)
        response.stream = counted
    body = bytearray()
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > cap:
            raise Overflow(counted.count if counted else len(body), len(body) + len(chunk))
        body += chunk
        if counted is not None:
            counted.decoded = len(body)
    return bytes(body)


def location_host(location: str | None) -> str:
    """The host a redirect points to, and nothing else of it (its path and query may carry secrets)."""
    if not location:
        return ""
    try:
        host = httpx2.URL(location).host
    except Exception:  # a hostile Location can be anything at all
        return "(unparsable)"
    return host[:100] if host else "(relative)"


def valid_text(value: Any) -> Any:
    """`value` (decoded JSON) with every lone surrogate in its strings, keys included, replaced by U+FFFD.
    Iterative: nesting depth cannot exhaust the stack."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if not isinstance(value, (dict, list)):
        return value
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        node = parent[key]
        if isinstance(node, str):
            parent[key] = SURROGATE.sub("\ufffd", node)
        elif isinstance(node, list):
            stack.extend((node, i) for i in range(len(node)))
        elif isinstance(node, dict):
            if any(SURROGATE.search(k) for k in node):
                node = parent[key] = {SURROGATE.sub("\ufffd", k): v for k, v in node.items()}
            stack.extend((node, k) for k in node)
    return root[0]


def _no_constant(name: str) -> None:
    return None  # NaN, Infinity, -Infinity: not JSON, read as null


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one, as json.loads would make for every answer


def decode_json(body: bytes) -> tuple[bool, Any]:
    """(True, the value) if `body` is JSON, else (False, None). Strings are always valid Unicode."""
    text = body.decode("utf-8-sig", errors="replace")
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):  # ValueError includes over-long integers
        return False, None
    if SURROGATE_ESCAPE.search(body):
        value = valid_text(value)
    return True, value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object" if isinstance(value, dict) else type(value).__name__


def describe(value: Any) -> str:
    """What a JSON value is, in a few words, without echoing it (it may be huge or hostile)."""
    if value is None:
        return "nothing (null or absent)"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, list):
        kinds = sorted({_kind(v) for v in value[:100]})
        return f"a list of {len(value)}" + (f" ({', '.join(kinds)})" if kinds else "")
    if isinstance(value, dict):
        keys = [repr(str(k)[:40]) for k in list(value)[:8]]
        more = f" and {len(value) - 8} more" if len(value) > 8 else ""
        return f"an object with keys {', '.join(keys)}{more}" if keys else "an empty object"
    return f"a {_kind(value)}"


def _scalar_items(shape: ResultShape | None) -> bool:
    return shape is not None and any(f.path == "." for f in shape.fields.values())


def shape_problem(op: Operation, data: Any, shape: ResultShape | None = None) -> str | None:
    """Why `data` cannot be `op`'s declared answer (None: it can). `shape`: the op's result shape, if known (a
    shape that projects the item itself, like phone numbers, has scalar items; unknown: objects or scalars)."""
    if op.is_list:
        items = pick(data, op.items_path) if isinstance(data, dict) else data
        where = f"`{op.items_path}`" if isinstance(data, dict) else "the answer"
        if not isinstance(items, list):
            return f"expected a list of {op.shape_name} objects at {where}, got {describe(items)}"
        allowed = (str, int) if _scalar_items(shape) else (dict,) if shape is not None else (dict, str, int)
        if any(not isinstance(i, allowed) or isinstance(i, bool) for i in items):
            return f"expected a list of {op.shape_name} items at {where}, got {describe(items)}"
        if shape is not None and not _scalar_items(shape):
            key = _key_path(shape)
            keyless = sum(1 for i in items if pick(i, key) in (None, ""))
            if keyless:
                return f"{keyless} of {len(items)} {op.shape_name} items at {where} have no `{key}`"
        return None
    if op.shape_name is None or data is None:
        return None  # no result declared, or none sent (e.g. 201/204 without a body)
    obj = pick(data, op.result_path) if op.result_path and isinstance(data, dict) else data
    where = f" at `{op.result_path}`" if op.result_path else ""
    if not isinstance(obj, dict):
        return f"expected a {op.shape_name} object{where}, got {describe(obj)}"
    if shape is not None and pick(obj, _key_path(shape)) in (None, ""):
        return f"expected a {op.shape_name} object{where} with its `{_key_path(shape)}`, got {describe(obj)}"
    return None


def _key_path(shape: ResultShape) -> str:
    """Where an item's key (which every structured item carries) is in the API's object."""
    return shape.fields[shape.key].path if shape.key in shape.fields else shape.key


def answer_problem(
    op: Operation, data: Any, *, is_json: bool, size: int, content_type: str, shape: ResultShape | None = None
) -> str | None:
    """Why a 2xx answer cannot be `op`'s declared result: not JSON where JSON is expected, or the wrong shape."""
    says_json = "json" in content_type.lower()
    if not is_json and (op.is_list or op.shape_name or (says_json and size)):
        return f"not JSON, {size} bytes, content-type {content_type[:80] or '(none)'}"
    return shape_problem(op, data, shape) if is_json else None
