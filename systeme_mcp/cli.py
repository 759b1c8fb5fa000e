"""`systeme-mcp`: serve (stdio default, or Streamable HTTP), `sandbox`, `demo`, `tools`.

Exit statuses: 0 when done, and when a server (stdio, HTTP, sandbox) is stopped with Ctrl-C, the way to stop it;
130 when Ctrl-C interrupts the demo; 0 when a reader stops reading early (`systeme-mcp tools | head`); 1 or 2
with a one-line message on stderr for a configuration or start-up problem (never a traceback)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import __version__
from .jobstore import redact

SUBCOMMANDS = ("serve", "sandbox", "demo", "tools")
USAGE = """%(prog)s [serve] [options]        the MCP server (stdio by default; --transport http)
       %(prog)s sandbox [options]      the embedded Systeme.io sandbox over HTTP (see: %(prog)s sandbox -h)
       %(prog)s demo                   a scripted agent session against the sandbox
       %(prog)s tools [--markdown]     the tool table
       %(prog)s --version"""


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="systeme-mcp",
        usage=USAGE,
        description="MCP server for Systeme.io. Over stdio it waits silently for an MCP client on stdin (it is not "
        "interactive: Ctrl-C stops it); the options below are serve's.",
        epilog="Credentials come from the environment (or a file named with --env-file): MATON_API_KEY (Maton "
        "gateway) or SYSTEME_API_KEY (direct API); with neither, the embedded sandbox is used. No .env file is "
        "read unless named. Logs and notices go to stderr; stdout carries only the protocol.",
    )
    p.add_argument("--version", action="version", version=f"systeme-mcp {__version__}")
    p.add_argument("--transport", choices=["stdio", "http"], help="stdio (default) or Streamable HTTP at /mcp")
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument(
        "--toolsets",
        help="comma-separated toolsets to load; `default` names the default ones (all but payment, webhooks, bulk, "
        "funnels, mailing, sms; connections only with the Maton gateway or the sandbox), `all` every one",
    )
    p.add_argument(
        "--profile",
        choices=["full", "discover"],
        help="full: list every loaded tool (default); discover: three tools (search_tools, describe_tool, "
        "call_tool) that reach them all, for clients short of context",
    )
    p.add_argument("--read-only", action="store_true", default=None, help="expose and allow only reads")
    p.add_argument(
        "--no-confirm",
        dest="confirm_destructive",
        action="store_false",
        default=None,
        help="do not ask before destructive operations (unattended automation)",
    )
    p.add_argument("--auth-token", help="bearer token HTTP clients must send (required off loopback)")
    p.add_argument(
        "--tenancy",
        choices=["single", "per-request"],
        help="HTTP: single (default: the server's own key) or per-request (each request sends its tenant's key)",
    )
    p.add_argument("--allowed-hosts", help="comma-separated public host names HTTP clients use (e.g. mcp.example.com)")
    p.add_argument(
        "--env-file", metavar="PATH", help="read settings from this .env file (default: none; or SYSTEME_ENV_FILE)"
    )
    p.add_argument("--backend", choices=["auto", "gateway", "direct", "sandbox"], help="force a backend")
    p.add_argument(
        "--call-budget",
        type=float,
        metavar="SECONDS",
        help="a call still running after this long answers with a job that carries on (default 20; get_job checks it)",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="where durable jobs live: memory, sqlite:///ABSOLUTE/PATH, or redis://HOST:PORT/DB (a fleet's shared "
        "store; default: memory with the sandbox, else a file in ~/.local/state/systeme-mcp)",
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level (WARNING)")
    return p


def env_file(options: dict[str, Any]) -> Path | None:
    """The .env file the user named (`--env-file`, else SYSTEME_ENV_FILE), or None: a `.env` that merely sits
    in the working directory is never read. A named file that is not there stops start-up."""
    named = options.pop("env_file", None) or os.environ.get("SYSTEME_ENV_FILE") or None
    if named is None:
        return None
    path = Path(named).expanduser()
    if not path.is_file():
        raise SystemExit(f"systeme-mcp: env file not found: {path} (from --env-file / SYSTEME_ENV_FILE)")
    try:
        path.open("rb").close()
    except OSError as exc:
        raise SystemExit(f"systeme-mcp: cannot read env file {path}: {exc.strerror}") from None
    return path


def load_settings(options: dict[str, Any]) -> Any:
    """Settings from the environment and a named .env file, with CLI options on top; a clear message and exit
    on bad configuration."""
    from .config import Settings  # lazy: `--help` need not load pydantic-settings

    options = dict(options)
    path = env_file(options)
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return Settings(_env_file=path, **given)
    except ValidationError as exc:
        flags = {a.dest: a.option_strings[0] for a in _serve_parser()._actions if a.option_strings}
        problems = "; ".join(setting_problem(Settings, e, flags) for e in exc.errors())
        raise SystemExit(f"systeme-mcp: invalid configuration: {problems}") from None


def setting_problem(model: Any, error: Any, flags: dict[str, str]) -> str:
    """One validation error as the user can act on it: the variable (and flag) to look at, pydantic's message
    without its "Value error, " prefix, and the value given unless the setting is a secret."""
    message = str(error["msg"]).removeprefix("Value error, ")
    where = str(error["loc"][0]).lower() if error["loc"] else ""  # the field's name, or the variable's
    names = {name: [name, *getattr(f.validation_alias, "choices", [])] for name, f in model.model_fields.items()}
    found = [name for name, known in names.items() if where in (str(k).lower() for k in known)]
    if not found:
        return message
    name, field = found[0], model.model_fields[found[0]]
    variable = str(names[name][1] if len(names[name]) > 1 else name.upper())
    given = error.get("input")
    given = redact(given) if isinstance(given, str) else given  # a store URL's password is never shown
    secret = "SecretStr" in str(field.annotation)
    shown = isinstance(given, str | int | float) and not secret and len(str(given)) < 80 and repr(given) not in message
    notes = ([f"given {given!r}"] if shown else []) + ([f"flag {flags[name]}"] if name in flags else [])
    message += f" ({'; '.join(notes)})" if notes else ""
    return message if message.startswith(variable) else f"{variable}: {message}"


class NoticeFormatter(logging.Formatter):
    """`logger: message` on stderr, the prefix once: the server's own notices already begin with `systeme-mcp`."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if text.startswith("systeme-mcp") else f"{record.name}: {text}"


def log_to_stderr(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(NoticeFormatter("%(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


# The HTTP stack's own loggers: httpcore2 dumps request and response headers at DEBUG (an upstream that echoes
# a key into a header would put it on stderr), httpx2 logs each request line at INFO.
HTTP_LOGGERS = {
    "httpcore2": logging.WARNING,
    "httpcore": logging.WARNING,
    "httpx2": logging.INFO,
    "httpx": logging.INFO,
}


def quiet_http_logs() -> None:
    """Never let the HTTP stack log headers or bodies, whatever SYSTEME_LOG_LEVEL says."""
    for name, floor in HTTP_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.getEffectiveLevel()))


def serve(argv: list[str]) -> int:
    args = _serve_parser().parse_args(argv)
    settings = load_settings(vars(args))
    log_to_stderr(settings.log_level)
    quiet_http_logs()
    from .transport import run  # lazy: the server stack loads only when serving

    try:
        run(settings)
    except ValueError as exc:  # e.g. unknown toolset, unsafe bind, busy port
        raise SystemExit(f"systeme-mcp: {exc}") from None
    except KeyboardInterrupt:  # Ctrl-C in a terminal: the server has shut down; the way to stop it
        print("systeme-mcp: stopped (Ctrl-C)", file=sys.stderr)
    return 0


def tools(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="systeme-mcp tools", description="Print the tool table.")
    p.add_argument("--markdown", action="store_true", help="the README table (Markdown)")
    args = p.parse_args(argv)
    from .docs import tool_table  # lazy: the catalog loads only for this command

    print(tool_table(markdown=args.markdown))
    return 0


def only(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `exc` is a `kind`, or a group (from a task group) of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(only(inner, kind) for inner in exc.exceptions)
    return isinstance(exc, kind)


def printing(command: Callable[[list[str]], int], argv: list[str]) -> int:
    """Run a command that writes to stdout: a reader that stops early (`| head`) ends it quietly with 0, and
    Ctrl-C with 130, never a traceback."""
    try:
        code = command(argv)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return code
    except BaseException as exc:
        if only(exc, BrokenPipeError):
            # what is left to print goes nowhere, including the interpreter's final flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if only(exc, KeyboardInterrupt):
            return 130
        raise


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "serve"
    if command == "sandbox":
        from .sandbox.serve import main as sandbox_main  # lazy: per subcommand

        return sandbox_main(argv)
    if command == "demo":
        from .demo import main as demo_main  # lazy: per subcommand

        return printing(demo_main, argv)
    if command == "tools":
        return printing(tools, argv)
    return serve(argv)


if __name__ == "__main__":
    raise SystemExit(main())
