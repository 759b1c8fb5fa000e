"""The `systeme-mcp` command as a person meets it: the usage line names the subcommands, --version answers, Ctrl-C
stops the stdio server (in a terminal, and with a client's pipe open) without a traceback, a reader that stops
early (`| head`) is no error, stderr notices carry one prefix, a busy port fails before any URL is printed,
configuration errors name the variable without pydantic's "Value error, ", and an unreachable upstream is named
with what to check. Subprocesses are bounded by deadlines; nothing sleeps for a fixed time."""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

import systeme_mcp
from systeme_mcp import cli, errors
from systeme_mcp.client import SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.wire import RequestPlan

from .helpers import text

SERVER = [sys.executable, "-m", "systeme_mcp"]
BANNER = "systeme-mcp: no MATON_API_KEY or SYSTEME_API_KEY set; using the embedded Systeme.io sandbox"
READING = "Parse error: the line is not valid JSON"  # the answer to a line that is not JSON-RPC
DEADLINE = 60.0  # seconds any one subprocess step may take, on a loaded machine


def _env(**extra: str) -> dict[str, str]:
    """This environment without credentials or settings of our own, plus `extra`."""
    ours = ("MATON_", "SYSTEME_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(ours)}, **extra}


def _wait(proc: subprocess.Popen[Any]) -> int:
    try:
        return proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the process did not end") from None


def _read_until(fd: int, wanted: str, seen: bytearray) -> str:
    """Read `fd` into `seen` until `wanted` appears (or end of file, or the deadline); the text so far."""
    end = time.monotonic() + DEADLINE
    while wanted not in seen.decode(errors="replace") and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], end - time.monotonic())
        try:
            chunk = os.read(fd, 4096) if ready else b""
        except OSError:  # a pty whose child has exited
            chunk = b""
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


# ---------------------------------------------------------------------------------------------------- usage


def test_the_usage_line_names_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    for command in ("systeme-mcp [serve]", "systeme-mcp sandbox", "systeme-mcp demo", "systeme-mcp tools"):
        assert command in usage, usage
    assert "--version" in usage


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"systeme-mcp {systeme_mcp.__version__}"


# ---------------------------------------------------------------------------------------------------- Ctrl-C


def _reap(pid: int) -> int | None:
    """The exit status of child `pid` once it has exited, or None if it is still running at the deadline."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        select.select([], [], [], 0.05)  # poll again shortly; the deadline bounds the whole wait
    return None


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX")
def test_ctrl_c_in_a_terminal_stops_the_stdio_server() -> None:
    """In a terminal stdin is the tty: Ctrl-C used to cancel the server and then wait for ever for a line."""
    import pty  # POSIX only (skipped elsewhere)

    pid, fd = pty.fork()
    if pid == 0:  # the child: the server, on the pty
        try:
            os.execve(SERVER[0], SERVER, _env())
        finally:
            os._exit(127)
    seen, status = bytearray(), None
    try:
        assert BANNER in _read_until(fd, BANNER, seen), seen.decode(errors="replace")
        os.write(fd, b"hello\n")  # typed by a person; answered, so the server is now blocked reading the next line
        assert READING in _read_until(fd, READING, seen), seen.decode(errors="replace")
        os.write(fd, b"\x03")  # the terminal turns it into SIGINT for its foreground process
        output = _read_until(fd, "\x00", seen)  # to the end: the pty closes when the child exits
        status = _reap(pid)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert status == 0, f"Ctrl-C did not stop the server cleanly ({status}): {output}"
    assert "stopped (Ctrl-C)" in output and "Traceback" not in output, output


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_sigint_stops_the_stdio_server_while_a_client_keeps_its_pipe_open() -> None:
    proc = subprocess.Popen(SERVER, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"hello\n")  # answered: the server is then blocked reading the next line
        proc.stdin.flush()
        assert READING in _read_until(proc.stdout.fileno(), READING, bytearray())
        proc.send_signal(signal.SIGINT)
        status = _wait(proc)
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = proc.stderr.read().decode(errors="replace")
    assert status == 0, rest
    assert "Traceback" not in rest and "stopped (Ctrl-C)" in rest, rest


def test_end_of_input_ends_the_stdio_server_quietly_with_one_prefix() -> None:
    done = subprocess.run(SERVER, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].startswith(BANNER), done.stderr
    assert "systeme_mcp: systeme-mcp" not in done.stderr and "Traceback" not in done.stderr


def test_notices_get_one_prefix_and_other_records_their_logger() -> None:
    formatter = cli.NoticeFormatter("%(message)s")

    def shown(name: str, message: str) -> str:
        return formatter.format(logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None))

    assert shown("systeme_mcp", "systeme-mcp: using the sandbox") == "systeme-mcp: using the sandbox"
    assert shown("systeme_mcp.client", "GET /api/tags: slow") == "systeme_mcp.client: GET /api/tags: slow"


# ---------------------------------------------------------------------------------------------------- pipes


@pytest.mark.parametrize("command", [["tools"], ["tools", "--markdown"], ["demo"]])
def test_a_reader_that_stops_early_is_no_error(command: list[str]) -> None:
    """`systeme-mcp tools | head`: the reader is gone before the first line (its end closed at once)."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([*SERVER, *command], env=_env(), stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)  # what `head` does once it has its lines
    status = _wait(proc)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode(errors="replace")
    assert status == 0, stderr
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr


def test_the_broken_pipe_check_sees_groups_too() -> None:
    assert cli.only(BrokenPipeError(), BrokenPipeError)
    assert cli.only(BaseExceptionGroup("g", [BrokenPipeError(), ExceptionGroup("h", [BrokenPipeError()])]), OSError)
    assert not cli.only(ExceptionGroup("g", [BrokenPipeError(), ValueError()]), BrokenPipeError)


# ---------------------------------------------------------------------------------------------------- HTTP


@contextmanager
def _busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as held:
        yield int(held.getsockname()[1])


def test_a_busy_port_fails_before_the_url_is_printed() -> None:
    with _busy_port() as port:
        command = [*SERVER, "--transport", "http", "--port", str(port)]
        done = subprocess.run(command, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Streamable HTTP on" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert f"cannot serve HTTP on 127.0.0.1:{port}: port {port} is already in use" in done.stderr, done.stderr
    assert "--port" in done.stderr and "SYSTEME_PORT" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_the_http_server_prints_its_real_url_serves_and_stops_on_ctrl_c() -> None:
    command = [*SERVER, "--transport", "http", "--port", "0"]
    proc = subprocess.Popen(command, env=_env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    try:
        seen = _read_until(proc.stderr.fileno(), "/mcp\n", bytearray())
        url = seen.split("Streamable HTTP on ")[1].split()[0]
        assert not url.endswith(":0/mcp"), url

        async def tools() -> int:
            async with Client(url) as client:
                return len((await client.list_tools()).tools)

        assert anyio.run(tools) >= 30
        proc.send_signal(signal.SIGINT)
        assert _wait(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read().decode(errors="replace")


# ---------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SYSTEME_BACKEND": "gateway"}, "invalid configuration: SYSTEME_BACKEND=gateway needs MATON_API_KEY"),
        (
            {"SYSTEME_PORT": "70000"},
            "SYSTEME_PORT: Input should be less than or equal to 65535 (given '70000'; flag --port)",
        ),
        ({"MATON_CONNECTION": "abc"}, "invalid configuration: MATON_CONNECTION must be a connection id (UUID)"),
        ({"SYSTEME_TIMEOUT": "0"}, "SYSTEME_TIMEOUT: Input should be greater than 0 (given '0')"),
        (
            {"SYSTEME_TRANSPORT": "http", "SYSTEME_TENANCY": "per-request", "SYSTEME_BACKEND": "direct"},
            "invalid configuration: SYSTEME_TENANCY=per-request needs SYSTEME_TENANT_SECRET",
        ),
        ({"SYSTEME_TENANT_SECRET": "tenant-key-too-short"}, "SYSTEME_TENANT_SECRET is shorter than 32 characters"),
    ],
)
def test_configuration_errors_name_the_variable(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("MATON_", "SYSTEME_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as done:
        cli.main([])
    message = str(done.value.code)
    assert message.startswith("systeme-mcp: ") and expected in message, message
    assert "Value error" not in message and "tenant-key-too-short" not in message


def test_a_secret_given_is_never_shown() -> None:
    error = {"loc": ("MATON_API_KEY",), "msg": "Value error, unusable", "input": "sk-live-123456789"}
    assert cli.setting_problem(Settings, error, {}) == "MATON_API_KEY: unusable"
    port = {"loc": ("port",), "msg": "Input should be a valid integer", "input": "abc"}
    assert cli.setting_problem(Settings, port, {"port": "--port"}) == (
        "SYSTEME_PORT: Input should be a valid integer (given 'abc'; flag --port)"
    )


def test_a_store_urls_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEME_STORE", "redis://:hunter2@redis.internal/db")
    monkeypatch.setenv("SYSTEME_STATE_SECRET", "k" * 40)  # so the URL itself is what is refused
    with pytest.raises(SystemExit) as done:
        cli.main([])
    message = str(done.value.code)
    assert message.startswith("systeme-mcp: invalid configuration: SYSTEME_STORE") and "redis://" in message
    assert "hunter2" not in message and ":***@redis.internal" in message


# ---------------------------------------------------------------------------------------------------- unreachable


@pytest.mark.parametrize(
    ("settings", "plan", "named"),
    [
        ({"maton_api_key": "garbage-key-123"}, RequestPlan("GET", "/api/tags"), "the Maton gateway (api.maton.ai)"),
        ({"systeme_api_key": "garbage-key-123"}, RequestPlan("GET", "/api/tags"), "Systeme.io (api.systeme.io)"),
        (
            {"maton_api_key": "garbage-key-123"},
            RequestPlan("GET", "/connections", api="maton"),
            "Maton's connection API (api.maton.ai)",
        ),
    ],
)
@pytest.mark.anyio
async def test_an_unreachable_host_is_named_with_what_to_check(
    settings: dict[str, Any], plan: RequestPlan, named: str
) -> None:
    def no_network(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)

    client = SystemeClient(Settings(max_attempts=1, **settings), transport=httpx2.MockTransport(no_network))
    try:
        with pytest.raises(errors.TransportError) as failure:
            await client.send(plan)
    finally:
        await client.aclose()
    message = failure.value.message()
    variable = {"the": "MATON_GATEWAY_URL", "Sys": "SYSTEME_API_URL", "Mat": "MATON_CTRL_URL"}[named[:3]]
    key = "SYSTEME_API_KEY" if named.startswith("Systeme") else "MATON_API_KEY"
    assert message.startswith(f"No answer from {named} for {plan.describe()}: could not connect"), message
    assert f"reach {named.split('(')[1][:-1]}" in message and variable in message, message
    assert f"{key} was not checked" in message and "garbage" not in message


@pytest.mark.anyio
async def test_a_tool_call_through_the_cli_names_the_gateway_it_could_not_reach() -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening: refused at once
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = _env(MATON_API_KEY="garbage-key-123", MATON_GATEWAY_URL=f"http://127.0.0.1:{port}", SYSTEME_MAX_ATTEMPTS="1")
    with anyio.fail_after(DEADLINE):
        async with Client(StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env)) as client:
            result = await client.call_tool("list_tags", {"limit": 10})
    assert result.is_error
    answer = text(result)
    assert f"No answer from the Maton gateway (127.0.0.1:{port})" in answer, answer
    assert "MATON_GATEWAY_URL" in answer and "MATON_API_KEY was not checked" in answer, answer


# ---------------------------------------------------------------------------------------------------- stdin


def test_stdin_lines_split_as_the_sdk_reads_them() -> None:
    from systeme_mcp.stdin_lines import READ_CHUNK, lines  # the reader under test

    long = "x" * (3 * READ_CHUNK + 5)
    sent = f'{{"a": 1}}\n\n{long}\nnot utf-8: '.encode() + b"\xff\xfe" + b"\nlast, no newline"
    read_end, write_end = os.pipe()
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
        stdout=write_end,
    )
    os.close(write_end)
    assert writer.stdin is not None
    writer.stdin.write(sent)
    writer.stdin.close()
    got = list(lines(read_end))
    os.close(read_end)
    assert _wait(writer) == 0
    assert got == ['{"a": 1}\n', "\n", long + "\n", "not utf-8: \ufffd\ufffd\n", "last, no newline"]
