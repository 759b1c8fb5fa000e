"""The hostile world, all at once: every attack of the hardening issue run against the real server, one table.

The server runs with planted secrets (SYSTEME_API_KEY, MATON_API_KEY, an HTTP bearer token, 40+ characters
each) against a hostile fake upstream (benchmarks/attack_upstream.py: uvicorn on 127.0.0.1, its own process).
Attacks about upstream or account data talk to the server through a real in-process MCP client session
(`mcp.Client(create_server(runtime))`); stdio, HTTP and CLI attacks run the real `systeme-mcp` in a subprocess.
Each attack runs in a fresh child process, so its peak RSS growth is its own (in-process: the child's VmHWM over
its VmRSS just before the attack, the peak reset with /proc/self/clear_refs; subprocess attacks: the server
process's, measured the same way from the child).

Columns: the slowest answer; the largest answer (the whole result as JSON, one line on stdio; tokens ≈ bytes/4);
peak RSS growth; what the answers told (structuredContent outcome / error.kind, "error text" for failed reads);
whether any answer (text, structured, resource or JSON-RPC error) held a planted secret plain, URL-encoded,
JSON-escaped or in another letter case; a crash (an exception, or the server process dying); within bounds
(text ≤ 10,000 bytes, structured ≤ 48,000 bytes of compact JSON, no line over 64 KiB, answered within the call
deadline + 1 s); and the attack's own checks. Then a summary line.
Run: python benchmarks/attacks.py [--only 4 5a ...]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import logging
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import httpx2
from mcp import Client, MCPError, types

from systeme_mcp.config import Settings
from systeme_mcp.http_guard import MAX_SESSIONS
from systeme_mcp.runtime import open_runtime
from systeme_mcp.server import create_server
from systeme_mcp.session_limits import PER_CLIENT_SESSIONS

ROOT = Path(__file__).resolve().parent.parent
SYSTEME_KEY = "sys_Pl4nted/Systeme+Key=with_odd-chars_9f8e7d6c"
MATON_KEY = "mtn_Pl4nted/Maton+Key=with_odd-chars_0a1b2c3d4e"
AUTH_TOKEN = "tok_Pl4nted_Http_Bearer_Token_5b1f0c9e8d7a6b"
SECRETS = (SYSTEME_KEY, MATON_KEY, AUTH_TOKEN)

TEXT_LIMIT = 10_000  # bytes of text (answers.TEXT_LIMIT)
STRUCTURED_LIMIT = 48_000  # bytes of compact JSON (answers.STRUCTURED_BUDGET)
LINE_LIMIT = 64 * 1024  # bytes of one line (the whole message, on stdio)
SLACK = 1.0  # seconds past the call deadline an answer may take (process scheduling, the MCP hop)
DEADLINE = 10.0  # SYSTEME_CALL_DEADLINE of every attack but the drip
CHILD_TIMEOUT = 120.0  # seconds an attack's child process may run
INVISIBLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff]")
SERVER_LINE = re.compile(r"^(more|next|apply): ")
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "attacks", "version": "0"}},
}
HTTP_ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
UPSTREAM_PORT = 0  # set by main / the child's --port


def secret_forms() -> list[str]:
    forms: set[str] = set()
    for s in SECRETS:
        forms |= {s, quote(s), quote(s, safe=""), quote_plus(s), json.dumps(s)[1:-1]}
    return sorted(f.lower() for f in forms)


FORMS = secret_forms()


def has_secret(*texts: str) -> bool:
    """Whether any planted secret is in `texts`, plain, URL-encoded, JSON-escaped, in any letter case."""
    return any(form in text.lower() for text in texts for form in FORMS)


def _detector_works() -> None:
    """The secret detector finds each planted secret in every form the table claims (a positive control)."""
    for s in SECRETS:
        for form in (s, s.upper(), s.lower(), quote(s), quote(s, safe="").lower(), quote_plus(s), json.dumps(s)):
            assert has_secret(f"said: {form}!"), form
    assert not has_secret("said: [redacted]!")


def upstream(scenario: str, tag: str) -> str:
    """The base URL of `scenario` on the hostile upstream, its requests recorded under `<scenario>-<tag>`."""
    return f"http://127.0.0.1:{UPSTREAM_PORT}/{scenario}-{tag}"


def upstream_seen(scenario: str, tag: str) -> list[dict[str, Any]]:
    """The requests the upstream received for `scenario-tag` (method, path, query, whether a secret came)."""
    conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=10)
    try:
        conn.request("GET", f"/__seen/{scenario}-{tag}")
        seen: list[dict[str, Any]] = json.loads(conn.getresponse().read())
        return seen
    finally:
        conn.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without SYSTEME_* / MATON_* settings or proxies (traffic stays on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEME_", "MATON_")) and "proxy" not in k.lower()}
    return env | extra


# ---------------------------------------------------------------------------------------------- memory


def _status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    figures: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = row.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0])
    return figures


class Peak:
    """Peak RSS growth of a process from now on: its VmHWM later over its VmRSS now (the peak reset first)."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.base = _status(pid).get("VmRSS", 0)
        self.last: float | None = None

    def growth_mb(self) -> float | None:
        """MB of growth so far (None when the process is gone and nothing was measured)."""
        hwm = _status(self.pid).get("VmHWM")
        if hwm is not None:
            self.last = max(0.0, (hwm - self.base) / 1024)
        return self.last


# ---------------------------------------------------------------------------------------------- answers


@dataclass
class Seen:
    """One answer and what the harness makes of it."""

    label: str
    seconds: float
    outcome: str
    text: str = ""
    structured: Any = None
    wire: str = ""  # the whole message as it travels (stdio: the line; in-process: the result as JSON)
    deadline: float = DEADLINE
    garbage: bool = False  # the upstream answered garbage: a success would be false
    success: bool = False  # the answer claims success (applied / already_applied / a page / an item)
    crash: str = ""
    folded_secret: bool = False  # one of the answers folded into this one (many alike) held a secret

    def sizes(self) -> tuple[int, int, int]:
        structured = 0 if self.structured is None else len(_compact(self.structured).encode("utf-8", "replace"))
        return len(self.text.encode("utf-8", "replace")), structured, len(self.wire.encode("utf-8", "replace"))

    def over_bounds(self) -> list[str]:
        text, structured, wire = self.sizes()
        longest = max([wire, *(len(x.encode("utf-8", "replace")) for x in self.text.split("\n"))])
        why = []
        if text > TEXT_LIMIT:
            why.append(f"text {text} B")
        if structured > STRUCTURED_LIMIT:
            why.append(f"structured {structured} B")
        if longest > LINE_LIMIT:
            why.append(f"line {longest} B")
        return why

    def over_deadline(self) -> bool:
        return self.seconds > self.deadline + SLACK

    def secret(self) -> bool:
        return self.folded_secret or has_secret(
            self.text, self.wire, _compact(self.structured) if self.structured is not None else ""
        )

    def false_success(self) -> bool:
        return self.garbage and self.success


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def describe_result(text: str, structured: Any, is_error: bool) -> tuple[str, bool]:
    """(what the answer told, whether it claims success)."""
    if isinstance(structured, dict) and "outcome" in structured:
        outcome = str(structured["outcome"])
        error = structured.get("error")
        if isinstance(error, dict) and error.get("kind"):
            outcome += f"/{error['kind']}"
        return outcome, not is_error and structured["outcome"] in ("applied", "already_applied")
    if is_error:
        return ("internal error" if text.startswith("Internal error") else "error text"), False
    if isinstance(structured, dict) and isinstance(structured.get("items"), list):
        return f"page({len(structured['items'])})", True
    if isinstance(structured, dict) and "item" in structured:
        return "item", True
    return "ok", True


def from_result(label: str, seconds: float, result: types.CallToolResult, **options: Any) -> Seen:
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    structured = result.structured_content
    wire = json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), ensure_ascii=False)
    outcome, success = describe_result(text, structured, bool(result.is_error))
    return Seen(label, seconds, outcome, text, structured, wire, success=success, **options)


def from_line(label: str, seconds: float, line: bytes | None, **options: Any) -> Seen:
    """An answer read off a stdio line (None: no answer before the wait ran out, or the process ended)."""
    if line is None:
        return Seen(label, seconds, "no answer", **options)
    try:
        wire = line.decode("utf-8")
        message = json.loads(wire)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        wire = line.decode("utf-8", "replace")
        return Seen(label, seconds, f"unreadable line ({type(exc).__name__})", wire=wire, **options)
    if "error" in message:
        error = message["error"]
        return Seen(
            label,
            seconds,
            f"jsonrpc {error.get('code')} id={json.dumps(message.get('id'))}",
            error.get("message", ""),
            wire=wire,
            **options,
        )
    result = message.get("result") or {}
    if "content" not in result:
        return Seen(label, seconds, "ok" if result == {} else "result", wire=wire, **options)
    text = "\n".join(c.get("text", "") for c in result["content"] if c.get("type") == "text")
    structured = result.get("structuredContent")
    outcome, success = describe_result(text, structured, bool(result.get("isError")))
    return Seen(label, seconds, outcome, text, structured, wire, success=success, **options)


@dataclass
class Row:
    attack: str
    seconds: float | None = None
    largest: int | None = None
    rss_mb: float | None = None
    outcome: str = ""
    secret: bool = False
    crash: str = ""
    within: bool = True
    false_successes: int = 0
    over_bounds: int = 0
    over_deadline: int = 0
    secrets: int = 0
    checks: str = ""
    failed_checks: int = 0


class Probe:
    """What one attack saw: its answers and its own checks."""

    def __init__(self, attack: str) -> None:
        self.attack = attack
        self.answers: list[Seen] = []
        self.checks: list[tuple[str, bool]] = []
        self.peak: Peak | None = None  # the server process's (subprocess attacks)
        self.rss_limit_mb: float | None = None
        self.logs = ""  # what the server wrote to stderr (grepped for secrets too)

    def add(self, seen: Seen) -> Seen:
        self.answers.append(seen)
        return seen

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, ok))
        return ok

    def row(self, rss_mb: float | None, crash: str = "") -> Row:
        answers = self.answers
        crash = crash or "; ".join(dict.fromkeys(a.crash for a in answers if a.crash))
        if self.rss_limit_mb is not None and rss_mb is not None:
            self.check(f"peak RSS growth < {self.rss_limit_mb:g} MB", rss_mb < self.rss_limit_mb)
        if self.logs:
            self.check("no secret in the server's logs", not has_secret(self.logs))
        outcome: dict[str, list[str]] = {}
        for a in answers:
            outcome.setdefault(a.outcome, []).append(a.label)
        told = "; ".join(f"{', '.join(labels)}: {what}" for what, labels in outcome.items())
        checks = "; ".join(f"{'ok' if ok else 'FAIL'} {what}" for what, ok in self.checks)
        over = [a for a in answers if a.over_bounds()]
        late = [a for a in answers if a.over_deadline()]
        return Row(
            attack=self.attack,
            seconds=max((a.seconds for a in answers), default=None),
            largest=max((a.sizes()[2] or sum(a.sizes()[:2]) for a in answers), default=None),
            rss_mb=rss_mb,
            outcome=told,
            secret=any(a.secret() for a in answers),
            crash=crash,
            within=not over and not late,
            false_successes=sum(a.false_success() for a in answers),
            over_bounds=len(over),
            over_deadline=len(late),
            secrets=sum(a.secret() for a in answers),
            checks=checks,
            failed_checks=sum(not ok for _, ok in self.checks),
        )


# ---------------------------------------------------------------------------------------------- in-process


def direct_settings(scenario: str, tag: str, **overrides: Any) -> Settings:
    base = upstream(scenario, tag)
    options: dict[str, Any] = {
        "backend": "direct",
        "systeme_api_key": SYSTEME_KEY,
        "maton_api_key": MATON_KEY,
        "systeme_api_url": base,
        "maton_ctrl_url": base,
        "maton_gateway_url": base,
        "call_deadline": DEADLINE,
        "toolsets": ["all"],
    }
    return Settings(**(options | overrides))


@contextlib.asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[Client]:
    """A real MCP client session on the server, in-process."""
    async with (
        open_runtime(settings) as runtime,
        Client(create_server(runtime), cache=None, read_timeout_seconds=CHILD_TIMEOUT) as client,
    ):
        yield client


async def call(
    probe: Probe,
    client: Client,
    label: str,
    tool: str,
    args: dict[str, Any],
    *,
    garbage: bool = False,
    deadline: float = DEADLINE,
) -> Seen:
    """One tools/call; a JSON-RPC error is an answer, any other exception a crash."""
    started = time.monotonic()
    try:
        result = await client.call_tool(tool, args)
    except MCPError as exc:
        seconds = time.monotonic() - started
        return probe.add(Seen(label, seconds, f"jsonrpc {exc.code}", exc.message, wire=exc.message, deadline=deadline))
    except Exception as exc:
        seconds = time.monotonic() - started
        # the SDK client raises RuntimeError on a non-error result whose structuredContent breaks the tool's own
        # outputSchema: the server did answer, claiming success
        claimed = isinstance(exc, RuntimeError) and "Invalid structured content" in str(exc)
        crash = type(exc).__name__ + (": result breaks the outputSchema" if claimed else "")
        told = "raised " + type(exc).__name__ + (" (outputSchema)" if claimed else "")
        seen = Seen(label, seconds, told, str(exc)[:500], crash=crash, garbage=garbage, success=claimed)
        return probe.add(seen)
    seen = from_result(label, time.monotonic() - started, result, deadline=deadline, garbage=garbage)
    return probe.add(seen)


async def read(probe: Probe, client: Client, label: str, uri: str, *, garbage: bool = False) -> Seen:
    """One resources/read: the body is the answer (a success), an MCP error its error text."""
    started = time.monotonic()
    try:
        result = await client.read_resource(uri)
    except MCPError as exc:
        seconds = time.monotonic() - started
        return probe.add(Seen(label, seconds, "error text", exc.message, wire=exc.message, garbage=garbage))
    except Exception as exc:
        seconds = time.monotonic() - started
        return probe.add(Seen(label, seconds, f"raised {type(exc).__name__}", str(exc)[:500], crash=type(exc).__name__))
    seconds = time.monotonic() - started
    text = "\n".join(c.text for c in result.contents if isinstance(c, types.TextResourceContents))
    wire = json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), ensure_ascii=False)
    told = "resource" + (" (truncated)" if '"truncated": true' in text or '"truncated":true' in text else "")
    return probe.add(Seen(label, seconds, told, text, None, wire, garbage=garbage, success=True))


def utf8_clean(probe: Probe) -> None:
    """Every answer encodes as strict UTF-8 (no lone surrogate reached the client)."""
    bad = []
    for a in probe.answers:
        try:
            (a.text + a.wire + (_compact(a.structured) if a.structured is not None else "")).encode("utf-8")
        except UnicodeEncodeError:
            bad.append(a.label)
    probe.check("every answer is valid UTF-8" + (f" (not: {', '.join(bad)})" if bad else ""), not bad)


def no_internal_errors(probe: Probe) -> None:
    bad = [a.label for a in probe.answers if a.text.startswith("Internal error")]
    probe.check("no internal error" + (f" (in: {', '.join(bad)})" if bad else ""), not bad)


async def a1b_surrogate_inprocess(probe: Probe) -> None:
    async with session(direct_settings("surrogate", "1b")) as c:
        await call(probe, c, "get", "get_contact", {"contact_id": 1})
        await call(probe, c, "list", "list_contacts", {})
        await call(probe, c, "tags", "list_tags", {})
        await read(probe, c, "res", "systeme://contacts/1")
        await read(probe, c, "res-tags", "systeme://tags")
        await call(probe, c, "arg-create", "create_tag", {"name": "x\ud800y"})
        await call(probe, c, "arg-query", "list_tags", {"query": "\ud800"})
        await call(probe, c, "after", "list_contacts", {})
    utf8_clean(probe)
    no_internal_errors(probe)
    probe.check("the contact is answered", any(a.label == "get" and a.outcome == "item" for a in probe.answers))


async def a3a_big_error(probe: Probe) -> None:
    async with session(direct_settings("big_error", "3a")) as c:
        await call(probe, c, "create", "create_tag", {"name": "vip"}, garbage=True)
        await call(probe, c, "list", "list_contacts", {}, garbage=True)
    requests = len(upstream_seen("big_error", "3a"))
    probe.check(f"{requests} requests reached the upstream for 2 calls (no retry storm)", requests <= 2)


async def a3b_violations(probe: Probe) -> None:
    async with session(direct_settings("violations", "3b")) as c:
        seen = await call(probe, c, "create", "create_tag", {"name": "vip"}, garbage=True)
        await call(probe, c, "update", "update_contact", {"contact_id": 1, "first_name": "Ana"}, garbage=True)
    probe.check("says how many violations were left out", "more violations" in seen.text)


async def a3c_huge_values(probe: Probe) -> None:
    async with session(direct_settings("huge_values", "3c")) as c:
        page = await call(probe, c, "list", "list_contacts", {})
        await call(probe, c, "get", "get_contact", {"contact_id": 1})
        await call(probe, c, "find", "find_contacts", {"name": "N"})
        await read(probe, c, "res", "systeme://contacts/1")
    nxt = page.structured.get("next") if isinstance(page.structured, dict) else None
    probe.check("the page names its next call", isinstance(nxt, dict) and "more: " in page.text)


async def a3d_huge_names(probe: Probe) -> None:
    async with session(direct_settings("huge_names", "3d")) as c:
        await read(probe, c, "res", "systeme://tags")
        await call(probe, c, "list", "list_tags", {})
        await read(probe, c, "account", "systeme://account")
    body = next((a.text for a in probe.answers if a.label == "res"), "")
    with contextlib.suppress(ValueError):
        probe.check("the resource says it was cut", json.loads(body).get("truncated") is True)


async def a4_gzip_bomb(probe: Probe) -> None:
    probe.rss_limit_mb = 100
    async with session(direct_settings("gzip_bomb", "4")) as c:
        await call(probe, c, "list", "list_contacts", {}, garbage=True)
        await call(probe, c, "update", "update_contact", {"contact_id": 5, "first_name": "Ana"}, garbage=True)
        await read(probe, c, "res", "systeme://tags", garbage=True)
    sent = [r.get("sent", 0) for r in upstream_seen("gzip_bomb", "4")]
    probe.check(f"at most {max(sent) / 1024:.0f} KB of the bomb were sent per request", max(sent) < 1024 * 1024)


async def a5a_drip(probe: Probe) -> None:
    async with session(direct_settings("drip", "5a", call_deadline=3.0)) as c:
        await call(probe, c, "list", "list_contacts", {}, garbage=True, deadline=3.0)
        await call(probe, c, "create", "create_tag", {"name": "vip"}, garbage=True, deadline=3.0)
        await call(probe, c, "update", "update_contact", {"contact_id": 5, "first_name": "A"}, garbage=True, deadline=3)


async def a5b_retry_after(probe: Probe) -> None:
    async with session(direct_settings("retry_after", "5b")) as c:
        await call(probe, c, "list", "list_tags", {}, garbage=True)
        await call(probe, c, "update", "update_contact", {"contact_id": 5, "first_name": "Ana"}, garbage=True)
        await call(probe, c, "create", "create_tag", {"name": "vip"}, garbage=True)
    probe.check("every answer came in under 2 s", all(a.seconds < 2 for a in probe.answers))


async def a5c_rate_zero(probe: Probe) -> None:
    async with session(direct_settings("rate_zero", "5c")) as c:
        for i in range(3):
            await call(probe, c, f"list{i + 1}", "list_tags", {})
        await call(probe, c, "create", "create_tag", {"name": "vip"})
    probe.check("every answer came in under 2 s", all(a.seconds < 2 for a in probe.answers))


async def a5d_rate_huge(probe: Probe) -> None:
    async with session(direct_settings("rate_huge", "5d")) as c:
        for i in range(3):
            await call(probe, c, f"list{i + 1}", "list_tags", {})
    probe.check("every answer came in under 2 s", all(a.seconds < 2 for a in probe.answers))


async def a6a_redirect(probe: Probe) -> None:
    async with session(direct_settings("redirect", "6a")) as c:
        await call(probe, c, "del-contact", "delete_contact", {"contact_id": 1, "confirm": True}, garbage=True)
        await call(probe, c, "del-tag", "delete_tag", {"tag_id": 5, "confirm": True}, garbage=True)
    deletes = [r for r in upstream_seen("redirect", "6a") if r["method"] == "DELETE"]
    probe.check(f"the redirect was not followed ({len(deletes)} DELETEs for 2 calls)", len(deletes) == 2)


async def a6b_bad_json_list(probe: Probe) -> None:
    async with session(direct_settings("bad_json", "6b")) as c:
        await call(probe, c, "list", "list_contacts", {}, garbage=True)
        await call(probe, c, "get", "get_contact", {"contact_id": 1}, garbage=True)
        await read(probe, c, "res", "systeme://tags", garbage=True)


async def a6c_bad_json_write(probe: Probe) -> None:
    async with session(direct_settings("bad_json_write", "6c")) as c:
        args = {"contact_ids": [1, 2, 3], "tag_id": 5, "dry_run": False}
        bulk = await call(probe, c, "bulk", "bulk_add_tag", args, garbage=True)
        await call(probe, c, "single", "add_tag_to_contact", {"contact_id": 4, "tag_id": 5}, garbage=True)
    counts = bulk.structured.get("counts") if isinstance(bulk.structured, dict) else None
    probe.check(
        f"the bulk counts no contact as changed (counts: {counts})",
        not (isinstance(counts, dict) and counts.get("changed")),
    )


async def a6d_wrong_shape(probe: Probe) -> None:
    async with session(direct_settings("wrong_shape", "6d")) as c:
        await call(probe, c, "list", "list_contacts", {}, garbage=True)
        await call(probe, c, "get", "get_contact", {"contact_id": 1}, garbage=True)
        await read(probe, c, "res", "systeme://contacts/1", garbage=True)
        await call(probe, c, "tags-no-id", "list_tags", {}, garbage=True)
        await call(probe, c, "conns-no-id", "list_connections", {}, garbage=True)


async def a7_bulk_remove(probe: Probe) -> None:
    async with session(direct_settings("bulk", "7")) as c:
        args = {"contact_ids": [1, 2, 3], "tag_id": 5, "dry_run": False}
        seen = await call(probe, c, "bulk", "bulk_remove_tag", args)
    deletes = [r for r in upstream_seen("bulk", "7") if r["method"] == "DELETE"]
    error = seen.structured.get("error") if isinstance(seen.structured, dict) else None
    asked = isinstance(error, dict) and error.get("kind") == "needs_confirmation"
    probe.check(
        f"asked for confirmation (it {'did' if asked else 'did not'}; {len(deletes)} DELETEs reached the upstream)",
        asked and not deletes,
    )


def fenced(probe: Probe) -> None:
    """No answer line is a forged server call line, and no text carries a raw control, bidi or zero-width char."""
    forged, raw = [], []
    for a in probe.answers:
        found = a.structured if isinstance(a.structured, dict) else {}
        calls = {v["tool"] for k in ("next", "apply") if isinstance(v := found.get(k), dict) and "tool" in v}
        for row in a.text.split("\n"):
            if SERVER_LINE.match(row) and not any(row.split(": ", 1)[1].startswith(f"{t}(") for t in calls):
                forged.append(a.label)
        if INVISIBLE.search(a.text):
            raw.append(a.label)
    probe.check("no forged more:/next:/apply: line" + (f" (in: {', '.join(forged)})" if forged else ""), not forged)
    probe.check("no raw control/bidi/zero-width char in text" + (f" (in: {', '.join(raw)})" if raw else ""), not raw)


async def a8_forged(probe: Probe) -> None:
    async with session(direct_settings("forged", "8")) as c:
        await call(probe, c, "list", "list_contacts", {})
        await call(probe, c, "get", "get_contact", {"contact_id": 1})
        await call(probe, c, "tags", "list_tags", {})
        await call(probe, c, "get-tag", "get_tag", {"tag_id": 6})
        await call(probe, c, "find", "find_contacts", {"name": "RED"})
        ask = await call(probe, c, "del-tag", "delete_tag", {"tag_id": 6})
        await call(probe, c, "del-contact", "delete_contact", {"contact_id": 1})
        await read(probe, c, "res-tags", "systeme://tags")
        await read(probe, c, "res-contact", "systeme://contacts/1")
    fenced(probe)
    quoted = "needs_confirmation" in ask.outcome and '"ok]\\n' in ask.text
    probe.check("the delete asked, naming the tag quoted", quoted)
    deletes = [r for r in upstream_seen("forged", "8") if r["method"] == "DELETE"]
    probe.check(f"nothing was deleted ({len(deletes)} DELETEs)", not deletes)


async def echo_attack(probe: Probe, settings: Settings, tag: str) -> None:
    async with session(settings) as c:
        await call(probe, c, "get", "get_contact", {"contact_id": 1})
        await call(probe, c, "list", "list_contacts", {})
        await call(probe, c, "tags", "list_tags", {})
        await call(probe, c, "create-422", "create_tag", {"name": "vip"})
        await call(probe, c, "delete-500", "delete_tag", {"tag_id": 5, "confirm": True})
        await call(probe, c, "connections", "list_connections", {})
        await read(probe, c, "res", "systeme://contacts/1")
        await read(probe, c, "account", "systeme://account")
    received = [r for r in upstream_seen("echo", tag) if r["secret"]]
    probe.check(f"the upstream did receive a key to echo ({len(received)} requests)", bool(received))


async def a10a_echo_direct(probe: Probe) -> None:
    await echo_attack(probe, direct_settings("echo", "10a"), "10a")


async def a10b_echo_gateway(probe: Probe) -> None:
    settings = direct_settings("echo", "10b", backend="gateway", systeme_api_key=None)
    await echo_attack(probe, settings, "10b")


# ---------------------------------------------------------------------------------------------- stdio


class StdioServer:
    """`python -m systeme_mcp.cli` over stdio, spoken to line by line (raw JSON-RPC)."""

    def __init__(self, env: dict[str, str], cwd: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "systeme_mcp.cli"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.stderr = bytearray()
        self.next_id = 1
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip(b"\n"))
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # the process is gone: the answer will be missing

    def answer(self, timeout: float) -> bytes | None:
        """The next response (notifications and server requests skipped); None on timeout or end of output."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                return None
            try:
                message = json.loads(line)
            except ValueError:
                return line
            if isinstance(message, dict) and "method" in message and "id" not in message:
                continue  # a notification (log message, progress)
            if isinstance(message, dict) and "method" in message:
                continue  # a request to the client: not declared, ignored
            return line

    def ask(self, line: bytes, timeout: float = DEADLINE + 10) -> tuple[bytes | None, float]:
        started = time.monotonic()
        self.send(line)
        return self.answer(timeout), time.monotonic() - started

    def request(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return json.dumps(message).encode()

    def tool(self, name: str, args: dict[str, Any]) -> bytes:
        return self.request("tools/call", {"name": name, "arguments": args})

    def initialize(self) -> bool:
        line, _ = self.ask(json.dumps(INIT).encode(), 30)
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        return line is not None and b"serverInfo" in line

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> int:
        """Close stdin (the client leaves) and wait for the exit code (killed after 10 s)."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def logs(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def stdio_env(scenario: str, tag: str, **extra: str) -> dict[str, str]:
    base = upstream(scenario, tag)
    return clean_env(
        SYSTEME_BACKEND="direct",
        SYSTEME_API_KEY=SYSTEME_KEY,
        MATON_API_KEY=MATON_KEY,
        SYSTEME_API_URL=base,
        MATON_CTRL_URL=base,
        SYSTEME_CALL_DEADLINE=str(DEADLINE),
        SYSTEME_TOOLSETS="all",
        **extra,
    )


def stdio_call(probe: Probe, server: StdioServer, label: str, line: bytes, **options: Any) -> Seen:
    answer, seconds = server.ask(line)
    return probe.add(from_line(label, seconds, answer, **options))


def finish_stdio(probe: Probe, server: StdioServer) -> None:
    assert probe.peak is not None
    probe.peak.growth_mb()
    alive = server.alive()
    code = server.close()
    probe.logs = server.logs()
    probe.check(f"the process survived to the end and exited {code} on stdin close", alive and code == 0)
    probe.check("no traceback on stderr", "Traceback" not in probe.logs)


def a1a_surrogate_stdio(probe: Probe) -> None:
    server = StdioServer(stdio_env("surrogate", "1a"))
    probe.check("initialize answered", server.initialize())
    probe.peak = Peak(server.proc.pid)
    stdio_call(probe, server, "get", server.tool("get_contact", {"contact_id": 1}))
    stdio_call(probe, server, "list", server.tool("list_contacts", {}))
    escaped = server.tool("create_tag", {"name": "PLACEHOLDER"}).replace(b"PLACEHOLDER", b"x\\ud800y")
    stdio_call(probe, server, "arg-escape", escaped)
    raw = server.tool("create_tag", {"name": "PLACEHOLDER"}).replace(b"PLACEHOLDER", b"x\xed\xa0\x80y")
    stdio_call(probe, server, "arg-raw", raw)
    after = stdio_call(probe, server, "next-call", server.tool("list_tags", {}))
    ping = stdio_call(probe, server, "ping", server.request("ping"))
    probe.check("the call after the surrogates is answered", after.outcome.startswith("page"))
    probe.check("ping answered", ping.outcome == "ok")
    utf8_clean(probe)
    no_internal_errors(probe)
    finish_stdio(probe, server)


def a2_dotenv(probe: Probe) -> None:
    trap = upstream("trap", "2")
    good = upstream("ok", "2")
    with tempfile.TemporaryDirectory() as cwd:
        Path(cwd, ".env").write_text(
            "SYSTEME_BACKEND=direct\n"
            f"SYSTEME_API_URL={trap}\n"
            f"MATON_GATEWAY_URL={trap}\n"
            f"MATON_CTRL_URL={trap}\n"
            "SYSTEME_API_KEY=sys_from_the_planted_env_file_0123456789\n"
            "SYSTEME_CONFIRM_DESTRUCTIVE=0\n"
            "SYSTEME_READ_ONLY=0\n"
        )
        env = clean_env(
            MATON_API_KEY=MATON_KEY,
            SYSTEME_API_KEY=SYSTEME_KEY,
            MATON_GATEWAY_URL=good,
            MATON_CTRL_URL=good,
            SYSTEME_CALL_DEADLINE=str(DEADLINE),
            SYSTEME_TOOLSETS="all",
        )
        server = StdioServer(env, cwd=cwd)
        probe.check("initialize answered", server.initialize())
        probe.peak = Peak(server.proc.pid)
        asked = stdio_call(probe, server, "del-contact", server.tool("delete_contact", {"contact_id": 1}))
        stdio_call(probe, server, "del-tag", server.tool("delete_tag", {"tag_id": 5}))
        stdio_call(probe, server, "list", server.tool("list_contacts", {}))
        finish_stdio(probe, server)
    trapped = upstream_seen("trap", "2")
    deletes = [r for r in upstream_seen("ok", "2") if r["method"] == "DELETE"]
    probe.check(
        f"the planted listener got nothing ({len(trapped)} requests, {sum(r['secret'] for r in trapped)} with a key)",
        not trapped,
    )
    probe.check("the delete still asks for confirmation", "needs_confirmation" in asked.outcome and not deletes)
    probe.check("start-up names the real gateway", f"gateway backend at {good}" in probe.logs)


BAD_LINES: list[tuple[str, bytes, bool]] = [  # (label, line, whether it must get a JSON-RPC error)
    ("garbage", b"garbage", True),
    ("1MB-garbage", b"{" + b"x" * 1_000_000, True),
    ("batch", b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', True),
    ("method=5", b'{"jsonrpc":"2.0","id":"x","method":5}', True),
    ("id=true", b'{"jsonrpc":"2.0","id":true,"method":5}', True),
    ("params=[1]", b'{"jsonrpc":"2.0","id":81,"method":"tools/call","params":[1]}', True),
    ("name=5", b'{"jsonrpc":"2.0","id":82,"method":"tools/call","params":{"name":5}}', True),
    (
        "args=list",
        b'{"jsonrpc":"2.0","id":83,"method":"tools/call","params":{"name":"list_tags","arguments":[1]}}',
        True,
    ),
    ("jsonrpc=1.0", b'{"jsonrpc":"1.0","id":4,"method":"ping"}', True),
    ("string", b'"just a string"', True),
    ("empty-object", b"{}", True),
    ("surrogate", b'{"jsonrpc":"2.0","id":3,"method":"ping","params":"\\ud800"}', True),
    ("raw-surrogate", b"\xed\xa0\x80 \xff", True),
    # invalid UTF-8 inside an ignored member of a valid ping: read with U+FFFD, so a pong is a fine answer too
    ("bad-bytes-in-ping", b'{"jsonrpc":"2.0","id":5,"method":"ping","x":"\xed\xa0\x80 \xff"}', False),
]


def a11_malformed(probe: Probe) -> None:
    server = StdioServer(stdio_env("ok", "11"))
    probe.check("initialize answered", server.initialize())
    probe.peak = Peak(server.proc.pid)
    unanswered, no_pong = [], []
    for label, line, must_fail in BAD_LINES:
        seen = stdio_call(probe, server, label, line)
        if not seen.outcome.startswith("jsonrpc -") if must_fail else seen.outcome == "no answer":
            unanswered.append(label)
        if stdio_call(probe, server, f"ping-{label}", server.request("ping")).outcome != "ok":
            no_pong.append(label)
    probe.check(
        "each line got a JSON-RPC error (the last one: an answer)"
        + (f" (not: {', '.join(unanswered)})" if unanswered else ""),
        not unanswered,
    )
    probe.check(
        "a ping after each was answered" + (f" (not after: {', '.join(no_pong)})" if no_pong else ""), not no_pong
    )
    finish_stdio(probe, server)


# ---------------------------------------------------------------------------------------------- HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """`python -m systeme_mcp.cli --transport http` on a free port."""

    def __init__(self, *flags: str, env: dict[str, str]) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "systeme_mcp.cli", "--transport", "http", "--port", str(self.port), *flags]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        self.stderr = bytearray()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line

    def wait_ready(self, timeout: float = 30) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.stderr.decode("utf-8", "replace")


def http_env(tag: str) -> dict[str, str]:
    return stdio_env("ok", tag)


def http_seen(label: str, seconds: float, answer: httpx2.Response | None, deadline: float = DEADLINE) -> Seen:
    if answer is None:
        return Seen(label, seconds, "no answer", deadline=deadline)
    body = answer.text
    return Seen(label, seconds, f"HTTP {answer.status_code}", body[: TEXT_LIMIT * 2], wire=body, deadline=deadline)


async def post(http: httpx2.AsyncClient, url: str, label: str, headers: dict[str, str]) -> Seen:
    started = time.monotonic()
    try:
        answer: httpx2.Response | None = await http.post(url, json=INIT, headers=headers)
    except httpx2.HTTPError:
        answer = None
    return http_seen(label, time.monotonic() - started, answer)


async def a9a_sessions(probe: Probe) -> None:
    server = HttpServer(env=http_env("9a"))
    try:
        probe.check("the HTTP server started", server.wait_ready())
        probe.peak = Peak(server.proc.pid)
        opened: list[tuple[Seen, str]] = []
        limiter = anyio.CapacityLimiter(50)
        limits = httpx2.Limits(max_connections=60, max_keepalive_connections=60)
        async with httpx2.AsyncClient(trust_env=False, timeout=30, limits=limits) as http:

            async def open_one(i: int) -> None:
                async with limiter:
                    started = time.monotonic()
                    try:
                        answer: httpx2.Response | None = await http.post(server.url, json=INIT, headers=HTTP_ACCEPT)
                    except httpx2.HTTPError:
                        answer = None
                    seen = http_seen(f"open{i}", time.monotonic() - started, answer)
                    opened.append((seen, answer.headers.get("mcp-session-id", "") if answer is not None else ""))

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(open_one, i)
            spent = time.monotonic() - started
            by_status: dict[str, list[Seen]] = {}
            for seen, _ in opened:
                by_status.setdefault(seen.outcome, []).append(seen)
            for status, group in by_status.items():  # one answer per status: the slowest, with the largest body
                slowest = max(group, key=lambda a: a.seconds)
                largest = max(group, key=lambda a: len(a.wire))
                leaked = any(a.secret() for a in group)
                probe.add(
                    Seen(
                        f"{len(group)} opens",
                        slowest.seconds,
                        status,
                        largest.text,
                        wire=largest.wire,
                        folded_secret=leaked,
                    )
                )
            ok = len(by_status.get("HTTP 200", []))
            refused = len(by_status.get("HTTP 503", []))
            probe.check(  # one client (one address): its own cap applies before the server-wide one
                f"200 sessions opened in {spent:.1f} s: {ok} got 200, {refused} got 503 after the cap",
                ok == min(PER_CLIENT_SESSIONS, MAX_SESSIONS) and refused == 200 - ok,
            )
            session_id = next((sid for seen, sid in opened if sid), "")
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            headers = {**HTTP_ACCEPT, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
            started = time.monotonic()
            pong = await http.post(server.url, json=ping, headers=headers)
            probe.add(http_seen("ping-open-session", time.monotonic() - started, pong))
            probe.check("an open session still answers a ping", pong.status_code == 200)
    finally:
        if probe.peak is not None:
            probe.peak.growth_mb()
        probe.logs = server.stop()


async def a9b_slowloris(probe: Probe) -> None:
    server = HttpServer(env=http_env("9b"))
    try:
        probe.check("the HTTP server started", server.wait_ready())
        probe.peak = Peak(server.proc.pid)
        closed: list[float] = []
        head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        started = time.monotonic()

        async def slow() -> None:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                for byte in head:
                    try:
                        await stream.send(bytes([byte]))
                        with anyio.move_on_after(0.5):
                            if not await stream.receive():
                                raise anyio.EndOfStream
                    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        closed.append(time.monotonic() - started)
                        return
                    if time.monotonic() - started > 16:
                        return

        async with httpx2.AsyncClient(trust_env=False, timeout=10) as http, anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(slow)
            await anyio.sleep(2)
            probe.add(await post(http, server.url, "normal@2s", HTTP_ACCEPT))
            await anyio.sleep(4)
            probe.add(await post(http, server.url, "normal@6s", HTTP_ACCEPT))
        probe.add(await _after(server.url))
        when = f", after {min(closed):.1f}-{max(closed):.1f} s" if closed else ""
        probe.check(f"the server closed {len(closed)}/50 slow sockets{when}", len(closed) == 50)
        fine = all(a.outcome == "HTTP 200" for a in probe.answers if a.label.startswith("normal"))
        probe.check("normal requests succeed meanwhile and after", fine)
    finally:
        if probe.peak is not None:
            probe.peak.growth_mb()
        probe.logs = server.stop()


async def _after(url: str) -> Seen:
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
        return await post(http, url, "normal-after", HTTP_ACCEPT)


async def a12_public_host(probe: Probe) -> None:
    flags = ("--host", "0.0.0.0", "--auth-token", AUTH_TOKEN, "--allowed-hosts", "example.test")
    server = HttpServer(*flags, env=http_env("12"))
    try:
        probe.check("the HTTP server started", server.wait_ready())
        probe.peak = Peak(server.proc.pid)
        cases = [
            ("example.test+bearer", {"Host": "example.test", "Authorization": f"bearer {AUTH_TOKEN}"}, 200),
            (
                "example.test:443+Origin",
                {"Host": "example.test:443", "Origin": "https://example.test", "Authorization": f"Bearer {AUTH_TOKEN}"},
                200,
            ),
            ("no-token", {"Host": "example.test"}, 401),
            ("wrong-token", {"Host": "example.test", "Authorization": f"Bearer {AUTH_TOKEN}x"}, 401),
            ("evil-host", {"Host": "evil.test", "Authorization": f"Bearer {AUTH_TOKEN}"}, 421),
            (
                "evil-origin",
                {"Host": "example.test", "Origin": "https://evil.test", "Authorization": f"Bearer {AUTH_TOKEN}"},
                403,
            ),
        ]
        async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
            for label, headers, expected in cases:
                seen = probe.add(await post(http, server.url, label, {**HTTP_ACCEPT, **headers}))
                probe.check(
                    f"{label} → {expected} (got {seen.outcome.removeprefix('HTTP ')})",
                    seen.outcome == f"HTTP {expected}",
                )
    finally:
        if probe.peak is not None:
            probe.peak.growth_mb()
        probe.logs = server.stop()


# ---------------------------------------------------------------------------------------------- sandbox CLI


def _sqlite_garbage() -> bytes:
    return b"SQLite format 3\x00" + bytes(range(256)) * 16


CORRUPT: list[tuple[str, bytes]] = [
    ("random", bytes((i * 7919 + 13) % 256 for i in range(8192))),
    ("json", b'{"contacts": [{"id": "one"}]}'),
    ("sqlite-header", _sqlite_garbage()),
]


def a13_corrupt_state(probe: Probe) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for label, content in CORRUPT:
            path = Path(tmp, f"{label}.db")
            path.write_bytes(content)
            argv = [sys.executable, "-m", "systeme_mcp.cli", "sandbox", "--port", "0", "--state", str(path)]
            started = time.monotonic()
            try:
                done = subprocess.run(argv, capture_output=True, timeout=30, check=False, env=clean_env())
            except subprocess.TimeoutExpired:
                probe.add(Seen(label, time.monotonic() - started, "started serving", deadline=30))
                probe.check(f"{label}: refused", False)
                continue
            err = done.stderr.decode("utf-8", "replace")
            lines = err.splitlines()
            seen = Seen(
                label,
                time.monotonic() - started,
                f"exit {done.returncode}, {len(lines)} line(s)",
                err,
                wire=err,
                deadline=30,
            )
            probe.add(seen)
            probe.check(
                f"{label}: exit 2, one line, no traceback",
                done.returncode == 2 and len(lines) == 1 and "Traceback" not in err,
            )


# ---------------------------------------------------------------------------------------------- running

Attack = Callable[[Probe], Awaitable[None]]


def in_thread(blocking: Callable[[Probe], None]) -> Attack:
    """A blocking attack (subprocesses, pipes) run in a worker thread."""

    async def attack(probe: Probe) -> None:
        await anyio.to_thread.run_sync(blocking, probe)

    return attack


ATTACKS: dict[str, tuple[str, Attack]] = {
    "1a": ("1a lone surrogate \\ud800 (stdio)", in_thread(a1a_surrogate_stdio)),
    "1b": ("1b lone surrogate \\ud800 (in-process)", a1b_surrogate_inprocess),
    "2": ("2 planted .env in the cwd (stdio)", in_thread(a2_dotenv)),
    "3a": ("3a 10 MB error body", a3a_big_error),
    "3b": ("3b 1 MB detail + 20,000 violations", a3b_violations),
    "3c": ("3c 100 KB values on 60 contacts of a page", a3c_huge_values),
    "3d": ("3d resource of 60 tags with 100 KB names", a3d_huge_names),
    "4": ("4 gzip bomb (4 GiB of zeros)", a4_gzip_bomb),
    "5a": ("5a body dripping 1 byte/s (deadline 3 s)", a5a_drip),
    "5b": ("5b Retry-After: 999999", a5b_retry_after),
    "5c": ("5c X-RateLimit-Remaining 0, Refill 1e12", a5c_rate_zero),
    "5d": ("5d X-RateLimit-Remaining 1e12, Refill 1e12", a5d_rate_huge),
    "6a": ("6a 302 to a delete", a6a_redirect),
    "6b": ("6b 200 invalid JSON to list_contacts", a6b_bad_json_list),
    "6c": ("6c 200 invalid JSON to a tag write (bulk)", a6c_bad_json_write),
    "6d": ("6d 200 of the wrong shape", a6d_wrong_shape),
    "7": ("7 bulk_remove_tag dry_run=false, no confirm", a7_bulk_remove),
    "8": ("8 forged `more:` tag, ANSI/bidi/zero-width name", a8_forged),
    "9a": ("9a 200 legacy HTTP sessions at once", a9a_sessions),
    "9b": ("9b 50 slow sockets (headers 1 byte/0.5 s)", a9b_slowloris),
    "10a": ("10a key echoed in bodies + headers (direct)", a10a_echo_direct),
    "10b": ("10b key echoed in bodies + headers (gateway)", a10b_echo_gateway),
    "11": ("11 stdio malformed lines", in_thread(a11_malformed)),
    "12": ("12 --host 0.0.0.0 --auth-token --allowed-hosts", a12_public_host),
    "13": ("13 sandbox corrupt --state file", in_thread(a13_corrupt_state)),
}


def run_one(key: str) -> Row:
    """Run one attack in this process (a fresh child) and return its row; an exception is a crash row."""
    for name in [n for n in os.environ if n.startswith(("SYSTEME_", "MATON_")) or "proxy" in n.lower()]:
        del os.environ[name]
    title, attack = ATTACKS[key]
    probe = Probe(title)
    captured = io.StringIO()  # the in-process server's own logs, every level (grepped for secrets)
    handler = logging.StreamHandler(captured)
    server_log = logging.getLogger("systeme_mcp")
    server_log.addHandler(handler)
    server_log.setLevel(logging.DEBUG)
    peak = Peak()
    crash = ""
    try:
        anyio.run(attack, probe)
    except Exception as exc:
        crash = f"{type(exc).__name__}: {str(exc)[:120]}"
        traceback.print_exc()
    server_log.removeHandler(handler)
    if probe.peak is None:  # in-process: the logs are this process's
        probe.logs = captured.getvalue() or " "
    rss = probe.peak.growth_mb() if probe.peak is not None else peak.growth_mb()
    if os.environ.get("ATTACKS_DUMP"):  # --verbose: every answer, for diagnosis
        for a in probe.answers:
            print(f"--- {a.label} [{a.outcome}] {a.seconds:.2f} s {a.sizes()}\n{a.text[:1500]}", file=sys.stderr)
            if a.structured is not None:
                print(f"structured: {_compact(a.structured)[:800]}", file=sys.stderr)
    return probe.row(rss, crash)


def run_child(key: str, dump: bool = False) -> tuple[Row, str]:
    """Run attack `key` in a fresh child process; a child that dies or hangs is a crash row."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", key, "--port", str(UPSTREAM_PORT)]
    title = ATTACKS[key][0]
    env = clean_env(**({"ATTACKS_DUMP": "1"} if dump else {}))
    try:
        done = subprocess.run(argv, capture_output=True, timeout=CHILD_TIMEOUT, check=False, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        return Row(title, crash=f"child timed out after {CHILD_TIMEOUT:g} s", within=False), str(exc.stderr or "")
    stderr = done.stderr.decode("utf-8", "replace")
    for line in reversed(done.stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith("ROW "):
            return Row(**json.loads(line[4:])), stderr
    return Row(title, crash=f"child exited {done.returncode} without a row", within=False), stderr


def start_upstream() -> tuple[subprocess.Popen[bytes], int]:
    env = clean_env(ATTACK_SECRETS=json.dumps(list(SECRETS)))
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("attack_upstream.py"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit("the hostile upstream did not start")
    return proc, int(line.split()[1])


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def table(rows: list[Row]) -> str:
    head = [
        "attack",
        "answer time (s)",
        "largest answer (B / ~tok)",
        "peak RSS growth (MB)",
        "outcome told",
        "secret seen",
        "crash",
        "within bounds",
        "checks",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        size = f"{r.largest:,} / ~{r.largest // 4:,}" if r.largest is not None else "—"
        cells = [
            r.attack,
            f"{r.seconds:.2f}" if r.seconds is not None else "—",
            size,
            f"{r.rss_mb:.1f}" if r.rss_mb is not None else "—",
            r.outcome or "—",
            yes(r.secret),
            f"yes ({r.crash})" if r.crash else "no",
            yes(r.within) + ("" if r.within else f" ({r.over_bounds} over bounds, {r.over_deadline} over deadline)"),
            r.checks or "—",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    return (
        f"crashes: {sum(bool(r.crash) for r in rows)}, "
        f"false successes: {sum(r.false_successes for r in rows)}, "
        f"secrets seen: {sum(r.secrets for r in rows)}, "
        f"answers over bounds: {sum(r.over_bounds for r in rows)}, "
        f"calls over deadline: {sum(r.over_deadline for r in rows)}, "
        f"failed checks: {sum(r.failed_checks for r in rows)} "
        f"(rows with a false success: {', '.join(r.attack.split()[0] for r in rows if r.false_successes) or 'none'})"
    )


def main() -> None:
    global UPSTREAM_PORT
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="*", choices=list(ATTACKS), help="run only these attacks")
    parser.add_argument("--one", choices=list(ATTACKS), help=argparse.SUPPRESS)  # the child's own attack
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print every answer and each child's stderr")
    options = parser.parse_args()
    if options.one:
        UPSTREAM_PORT = options.port
        print("ROW " + json.dumps(asdict(run_one(options.one))), flush=True)
        return
    started = time.monotonic()
    _detector_works()
    upstream_proc, UPSTREAM_PORT = start_upstream()
    rows: list[Row] = []
    try:
        for key in options.only or list(ATTACKS):
            t0 = time.monotonic()
            row, stderr = run_child(key, options.verbose)
            rows.append(row)
            print(f"  {row.attack}: {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            if options.verbose or row.crash:
                print(stderr if options.verbose else stderr[-3000:], file=sys.stderr)
    finally:
        upstream_proc.terminate()
        try:
            upstream_proc.wait(3)
        except subprocess.TimeoutExpired:  # uvicorn waits for open (hostile, endless) answers
            upstream_proc.kill()
            upstream_proc.wait(10)
    print(table(rows))
    print()
    print("Summary: " + summary(rows))
    print(f"Total runtime: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
