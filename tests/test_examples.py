"""Every client configuration in examples/ parses (JSON, TOML, the shell commands), starts our server with
arguments our CLI accepts (or reaches it over HTTP at /mcp with a bearer token), names only environment variables
that are real settings (derived from the Settings model), and is shown or named in the README."""

from __future__ import annotations

import contextlib
import io
import json
import ntpath
import posixpath
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from systeme_mcp.cli import SUBCOMMANDS, _serve_parser

from .setting_names import setting_variables

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONFIGS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in {".json", ".toml", ".sh"})
SERVER_KEYS = ("mcpServers", "servers", "context_servers", "mcp_servers")  # Claude/Cursor/…, VS Code, Zed, Codex
URL_KEYS = ("url", "serverUrl", "httpUrl")  # most clients, Windsurf, Gemini CLI
UVX_VALUE_OPTIONS = {"--from", "--with", "--python", "-p"}  # uvx options that take a value


def _name(command: str) -> str:
    return ntpath.basename(command) if "\\" in command else posixpath.basename(command)


def our_arguments(command: str, args: list[str]) -> list[str] | None:
    """The arguments `systeme-mcp` receives from this command line, or None when it does not start our server
    (the console script, `uvx [--from X] systeme-mcp[==V]`, or `python -m systeme_mcp`)."""
    name = _name(command).removesuffix(".exe")
    if name == "systeme-mcp":
        return list(args)
    if name == "uvx":
        rest = list(args)
        while rest and rest[0].startswith("-"):
            if rest.pop(0) in UVX_VALUE_OPTIONS and rest:
                rest.pop(0)
        if rest and re.fullmatch(r"systeme-mcp(?:[=@]=?[\w.]+)?", rest[0]):
            return rest[1:]
        return None
    if name.startswith("python") and args[:2] == ["-m", "systeme_mcp"]:
        return args[2:]
    return None


def _cli_refuses(arguments: list[str]) -> str | None:
    if arguments and arguments[0] in SUBCOMMANDS[1:]:
        return None  # sandbox/demo/tools have their own parsers; the examples start the server
    arguments = arguments[1:] if arguments[:1] == ["serve"] else arguments
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            _serve_parser().parse_args(arguments)
        except SystemExit:
            return err.getvalue().strip().splitlines()[-1]
    return None


def _variables_in(value: str) -> set[str]:
    """Environment variables a client substitutes into a value: $VAR, ${VAR}, ${env:VAR}, ${VAR:-default}."""
    return set(re.findall(r"\$\{?(?:env:)?([A-Za-z_][A-Za-z0-9_]*)", value)) - {"input"}


def _stdio_problems(name: str, entry: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    arguments = our_arguments(entry["command"], list(entry.get("args", [])))
    if arguments is None:
        return [f"{name}: {entry['command']} {entry.get('args', [])} does not start systeme-mcp"]
    if refused := _cli_refuses(arguments):
        problems.append(f"{name}: systeme-mcp refuses {arguments}: {refused}")
    env: dict[str, str] = entry.get("env", {})
    named = set(env) | set(entry.get("env_vars", []))
    for value in env.values():
        named |= _variables_in(value)
        for ref in re.findall(r"\$\{input:([^}]+)\}", value):
            if ref not in inputs:
                problems.append(f"{name}: ${{input:{ref}}} has no input")
            elif "KEY" in ref.upper() and inputs[ref].get("password") is not True:
                problems.append(f"{name}: input {ref} prompts for a key without password: true")
    problems += [f"{name}: {var} is not a setting" for var in sorted(named - setting_variables())]
    return problems


def _http_problems(name: str, entry: dict[str, Any]) -> list[str]:
    url = next((entry[k] for k in URL_KEYS if k in entry), None)
    if url is None:
        return [f"{name}: neither a command nor a URL"]
    problems = [] if urlsplit(url).path.endswith("/mcp") else [f"{name}: {url} is not the /mcp endpoint"]
    authorization = entry.get("headers", {}).get("Authorization", "")
    token_variable = entry.get("bearer_token_env_var")
    if token_variable is not None:
        problems += [] if token_variable in setting_variables() else [f"{name}: {token_variable} is not a setting"]
    elif not authorization.startswith("Bearer "):
        problems.append(f"{name}: no Authorization: Bearer header")
    return problems


def config_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with one client configuration (empty when nothing is)."""
    servers = next((config[k] for k in SERVER_KEYS if k in config), None)
    if not servers:
        return [f"no server table (one of {SERVER_KEYS})"]
    inputs = {i["id"]: i for i in config.get("inputs", [])}
    problems: list[str] = []
    for name, entry in servers.items():
        problems += _stdio_problems(name, entry, inputs) if "command" in entry else _http_problems(name, entry)
    return problems


def claude_code_commands(script: str) -> list[dict[str, Any]]:
    """Each `claude mcp add …` line (commented-out alternatives too) as the configuration it writes."""
    configs = []
    for line in script.splitlines():
        line = line.strip().lstrip("#").strip()
        if not line.startswith("claude mcp add "):
            continue
        words = shlex.split(line)[3:]
        cut = words.index("--") if "--" in words else len(words)
        rest, command = words[:cut], words[cut + 1 :]
        env: dict[str, str] = {}
        headers: dict[str, str] = {}
        positional: list[str] = []
        while rest:
            word = rest.pop(0)
            if word in ("--env", "-e") and rest:
                key, _, value = rest.pop(0).partition("=")
                env[key] = value
            elif word in ("--header", "-H") and rest:
                header, _, value = rest.pop(0).partition(": ")
                headers[header] = value
            elif word in ("--transport", "-t", "--scope", "-s") and rest:
                rest.pop(0)
            else:
                positional.append(word)
        entry: dict[str, Any] = {"command": command[0], "args": command[1:], "env": env} if command else {}
        if not command:
            entry = {"url": positional[1] if len(positional) > 1 else "", "headers": headers}
        configs.append({"mcpServers": {positional[0] if positional else "?": entry}})
    return configs


def load(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return [json.loads(text)]
    if path.suffix == ".toml":
        return [tomllib.loads(text)]
    return claude_code_commands(text)


def test_there_are_examples_for_every_client() -> None:
    names = {p.name for p in CONFIGS}
    for client in ("claude_desktop", "claude_code", "cursor", "vscode", "windsurf", "zed", "codex", "gemini", "http"):
        assert any(n.startswith(client) for n in names), f"no example for {client}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_starts_our_server_with_real_settings(path: Path) -> None:
    configs = load(path)
    assert configs, f"{path.name}: nothing to check"
    for config in configs:
        assert config_problems(config) == [], path.name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_readme_names_each_example(path: Path) -> None:
    assert f"examples/{path.name}" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("config", "wrong"),
    [
        ({"mcpServers": {"s": {"command": "other-mcp"}}}, "does not start systeme-mcp"),
        ({"mcpServers": {"s": {"command": "uvx", "args": ["systeme"]}}}, "does not start systeme-mcp"),
        ({"mcpServers": {"s": {"command": "systeme-mcp", "env": {"MATON_KEY": "k"}}}}, "MATON_KEY is not a setting"),
        ({"servers": {"s": {"command": "systeme-mcp", "env": {"MATON_API_KEY": "${env:MATON_TOKEN}"}}}}, "MATON_TOKEN"),
        ({"mcpServers": {"s": {"command": "systeme-mcp", "args": ["--readonly"]}}}, "refuses"),
        ({"servers": {"s": {"command": "systeme-mcp", "env": {"MATON_API_KEY": "${input:k}"}}}}, "has no input"),
        (
            {
                "inputs": [{"type": "promptString", "id": "key", "password": False}],
                "servers": {"s": {"command": "systeme-mcp", "env": {"MATON_API_KEY": "${input:key}"}}},
            },
            "password: true",
        ),
        ({"mcpServers": {"s": {"url": "http://127.0.0.1:8000/"}}}, "not the /mcp endpoint"),
        ({"mcpServers": {"s": {"url": "http://127.0.0.1:8000/mcp"}}}, "no Authorization"),
        ({"mcp_servers": {"s": {"url": "http://h/mcp", "bearer_token_env_var": "TOKEN"}}}, "TOKEN is not a setting"),
        ({"context_servers": {}}, "no server table"),
    ],
)
def test_the_example_check_can_fail(config: dict[str, Any], wrong: str) -> None:
    assert any(wrong in problem for problem in config_problems(config)), config_problems(config)


def test_the_claude_code_commands_are_read_as_written() -> None:
    script = 'claude mcp add --transport stdio --env MATON_KEY="$X" systeme -- uvx --from . systeme-mcp --read-only'
    (config,) = claude_code_commands(script)
    entry = {"command": "uvx", "args": ["--from", ".", "systeme-mcp", "--read-only"], "env": {"MATON_KEY": "$X"}}
    assert config == {"mcpServers": {"systeme": entry}}
    assert config_problems(config) == ["systeme: MATON_KEY is not a setting", "systeme: X is not a setting"]
