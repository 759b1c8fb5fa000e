"""`systeme-mcp sandbox`: serve the sandbox over HTTP on loopback (uvicorn), and a thread runner for tests.

systeme-mcp sandbox [--host 127.0.0.1] [--port 8787] [--seed N] [--rate-limit 100:2/s | 5/s | off]
                    [--fault-rate F] [--fault-kinds 500,reset_after,...] [--fault-seed N]
                    [--fault-routes "POST /api/contacts" ...] [--state FILE] [--deliver-webhooks]
                    [--no-payments] [--twilio] [--api-key K ...] [--maton-key K ...]
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from starlette.types import ASGIApp

from .core import Sandbox
from .faults import KINDS, FaultPlan, InjectedFault
from .ratelimit import RateLimit


class _DropInjected(logging.Filter):
    """Keep uvicorn quiet about the connections the sandbox drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedFault))


def _server(app: Any, *, log_level: str = "warning", access_log: bool = False) -> Any:
    import uvicorn  # lazy: in-process use of the sandbox never needs the HTTP server

    logging.getLogger("uvicorn.error").addFilter(_DropInjected())
    config = uvicorn.Config(
        app, log_level=log_level, access_log=access_log, lifespan="off", timeout_graceful_shutdown=1
    )
    return uvicorn.Server(config)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections (else small answers wait for
    # delayed ACKs: ~40 ms each)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextmanager
def running(target: Sandbox | ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve a sandbox (or any ASGI app) over real HTTP in a background thread; yields the base URL
    (port 0 = a free port). The server stops when the block ends."""
    sock = bind(host, port)
    server = _server(target.app if isinstance(target, Sandbox) else target)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox-http")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="systeme-mcp sandbox",
        description="Serve the fake Systeme.io API, Maton gateway and Maton connection API on loopback.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--seed", type=int, default=0, help="demo account seed (default 0)")
    p.add_argument("--rate-limit", default=None, help="'off', 'N/s', 'N/m' or 'CAPACITY:RATE/s' (default 100:2/s)")
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per API request")
    p.add_argument("--fault-kinds", default="500,502,503", help=f"comma-separated, from: {','.join(KINDS)}")
    p.add_argument("--fault-seed", type=int, default=1)
    p.add_argument("--fault-routes", nargs="*", default=None, help='e.g. "POST /api/contacts" "/api/tags/*"')
    p.add_argument("--slow-seconds", type=float, default=0.5)
    p.add_argument("--timeout-seconds", type=float, default=30.0)
    p.add_argument("--state", default=None, help="SQLite file keeping the state between runs (created if missing)")
    p.add_argument("--deliver-webhooks", action="store_true", help="really POST signed webhook events")
    p.add_argument("--no-payments", action="store_true", help="subscription routes answer 404")
    p.add_argument("--twilio", action="store_true", help="the Twilio integration is connected")
    p.add_argument("--api-key", action="append", default=None, help="accepted X-API-Key (repeatable; default: any)")
    p.add_argument("--maton-key", action="append", default=None, help="accepted Maton key (repeatable; default: any)")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--access-log", action="store_true")
    return p


def make_sandbox(args: argparse.Namespace) -> Sandbox:
    """The Sandbox the parsed CLI arguments describe (raises ValueError on bad values)."""
    limit: Any = Sandbox.DEFAULT_RATE_LIMIT if args.rate_limit is None else RateLimit.parse(args.rate_limit)
    sb = Sandbox(
        seed=args.seed,
        rate_limit=limit,
        api_keys=args.api_key,
        maton_keys=args.maton_key,
        payments_configured=not args.no_payments,
        twilio_connected=args.twilio,
        deliver_webhooks=args.deliver_webhooks,
        state_file=args.state,
    )
    if args.fault_rate > 0:
        kinds = tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip())
        sb.faults.set(
            FaultPlan(
                rate=args.fault_rate,
                kinds=kinds,
                seed=args.fault_seed,
                routes=args.fault_routes,
                slow_seconds=args.slow_seconds,
                timeout_seconds=args.timeout_seconds,
            )
        )
    return sb


def main(argv: list[str] | None = None) -> int:
    """Entry point of `systeme-mcp sandbox`; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        sb = make_sandbox(args)
        sock = bind(args.host, args.port)
    except (ValueError, KeyError, OSError) as exc:
        print(f"systeme-mcp sandbox: {exc}", file=sys.stderr)
        return 2
    base = f"http://{args.host}:{sock.getsockname()[1]}"
    limit = "off" if sb.rate_limit is None else f"{sb.rate_limit.capacity} burst, {sb.rate_limit.refill_per_second:g}/s"
    print(
        f"systeme-mcp sandbox on {base}  (direct {base}/api/..., gateway {base}/systeme/api/..., "
        f"ctrl {base}/connections, admin {base}/__sandbox; rate limit {limit}; seed {args.seed})",
        file=sys.stderr,
        flush=True,
    )
    server = _server(sb.app, log_level=args.log_level, access_log=args.access_log)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the SIGTERM it shut down on: as a KeyboardInterrupt, it lets the state file close
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    with suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    sb.close()  # folds the state file's -wal back in
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
