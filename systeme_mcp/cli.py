"""`systeme-mcp`: serve (stdio default, or Streamable HTTP), `sandbox`, `demo`, `tools`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

SUBCOMMANDS = ("serve", "sandbox", "demo", "tools")


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="systeme-mcp",
        description="MCP server for Systeme.io. Subcommands: serve (default), sandbox, demo, tools.",
        epilog="Credentials come from the environment (or a file named with --env-file): MATON_API_KEY (Maton "
        "gateway) or SYSTEME_API_KEY (direct API); with neither, the embedded sandbox is used. No .env file is "
        "read unless named.",
    )
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
    p.add_argument("--allowed-hosts", help="comma-separated public host names HTTP clients use (e.g. mcp.example.com)")
    p.add_argument(
        "--env-file", metavar="PATH", help="read settings from this .env file (default: none; or SYSTEME_ENV_FILE)"
    )
    p.add_argument("--backend", choices=["auto", "gateway", "direct", "sandbox"], help="force a backend")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
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
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"systeme-mcp: invalid configuration: {problems}") from None


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
    logging.basicConfig(level=settings.log_level, stream=sys.stderr, format="%(name)s: %(message)s")
    quiet_http_logs()
    from .transport import run  # lazy: the server stack loads only when serving

    try:
        run(settings)
    except ValueError as exc:  # e.g. unknown toolset, unsafe bind
        raise SystemExit(f"systeme-mcp: {exc}") from None
    return 0


def tools(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="systeme-mcp tools", description="Print the tool table.")
    p.add_argument("--markdown", action="store_true", help="the README table (Markdown)")
    args = p.parse_args(argv)
    from .docs import tool_table  # lazy: the catalog loads only for this command

    print(tool_table(markdown=args.markdown))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "serve"
    if command == "sandbox":
        from .sandbox.serve import main as sandbox_main  # lazy: per subcommand

        return sandbox_main(argv)
    if command == "demo":
        from .demo import main as demo_main  # lazy: per subcommand

        return demo_main(argv)
    if command == "tools":
        return tools(argv)
    return serve(argv)


if __name__ == "__main__":
    raise SystemExit(main())
