"""Configuration cannot be hijacked and secrets are scrubbed without over-scrubbing: a `.env` planted in the
working directory is never read (only a file the user names, with `--env-file` or SYSTEME_ENV_FILE), flags
still win, the public host allow-list is checked, and the client redacts secrets in any letter case and
encoding while leaving a too-short "key" alone (start-up warns about it, once, without showing it)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from systeme_mcp.cli import _serve_parser, load_settings
from systeme_mcp.client import SANDBOX_KEY, SystemeClient
from systeme_mcp.config import Settings
from systeme_mcp.transport import announce

KEY = "sys_Planted-Key/with+odd=chars_9f8e7d"
SHORT_KEY = "Zq7"
HOSTILE_ENV = (
    "SYSTEME_API_URL=http://evil.example\n"
    "MATON_GATEWAY_URL=http://evil.example\n"
    "MATON_CTRL_URL=http://evil.example\n"
    "SYSTEME_API_KEY=sys_from_the_planted_file_123\n"
    "SYSTEME_CONFIRM_DESTRUCTIVE=0\n"
    "SYSTEME_READ_ONLY=0\n"
    "SYSTEME_HOST=0.0.0.0\n"
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("SYSTEME_", "MATON_")):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a hostile `.env` in it, as an MCP client might start the server in."""
    (tmp_path / ".env").write_text(HOSTILE_ENV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings_from(argv: list[str]) -> Any:
    return load_settings(vars(_serve_parser().parse_args(argv)))


def test_a_planted_dotenv_in_the_working_directory_has_no_effect(planted: Path) -> None:
    for settings in (settings_from([]), Settings()):
        assert settings.systeme_api_url == "https://api.systeme.io"
        assert settings.maton_gateway_url == "https://api.maton.ai"
        assert settings.maton_ctrl_url == "https://api.maton.ai"
        assert settings.systeme_api_key is None and settings.resolved_backend == "sandbox"
        assert settings.confirm_destructive is True and settings.host == "127.0.0.1"


def test_a_named_env_file_is_read(planted: Path, tmp_path: Path) -> None:
    named = tmp_path / "systeme.env"
    named.write_text("SYSTEME_API_URL=http://127.0.0.1:8787\nSYSTEME_API_KEY=sys_named_file_key_42\n")
    settings = settings_from(["--env-file", str(named)])
    assert settings.systeme_api_url == "http://127.0.0.1:8787" and settings.resolved_backend == "direct"
    assert settings.systeme_api_key.get_secret_value() == "sys_named_file_key_42"
    assert settings.confirm_destructive is True, "the planted .env next to it is still ignored"


def test_systeme_env_file_names_the_file_too(planted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEME_ENV_FILE", str(planted / ".env"))  # named, so read: the user chose it
    settings = settings_from([])
    assert settings.systeme_api_url == "http://evil.example" and settings.confirm_destructive is False


def test_flags_then_the_environment_win_over_the_named_file(planted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEME_API_URL", "http://127.0.0.1:9999")
    settings = settings_from(["--env-file", ".env", "--host", "127.0.0.1", "--read-only"])
    assert settings.host == "127.0.0.1" and settings.read_only is True
    assert settings.systeme_api_url == "http://127.0.0.1:9999"
    assert settings.confirm_destructive is False  # from the named file: nothing overrides it


@pytest.mark.parametrize("via", ["flag", "env"])
def test_a_missing_named_env_file_stops_start_up_naming_it(
    via: str, planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["--env-file", "missing.env"] if via == "flag" else []
    if via == "env":
        monkeypatch.setenv("SYSTEME_ENV_FILE", "missing.env")
    with pytest.raises(SystemExit, match=r"env file not found: missing\.env"):
        settings_from(argv)


def test_a_directory_is_not_an_env_file(planted: Path) -> None:
    with pytest.raises(SystemExit, match="env file not found"):
        settings_from(["--env-file", str(planted)])


def test_allowed_hosts_are_parsed_and_checked() -> None:
    settings = settings_from(["--allowed-hosts", " MCP.example.com, api.example.org:8443 ,[::1],mcp.example.com"])
    assert settings.allowed_hosts == ["mcp.example.com", "api.example.org:8443", "[::1]"]
    assert Settings().allowed_hosts == []
    for bad in ("https://mcp.example.com", "*", "*.example.com", "mcp.example.com/mcp", "a b"):
        with pytest.raises(SystemExit, match="is not a host name"):
            settings_from(["--allowed-hosts", bad])


def test_the_server_process_ignores_a_planted_dotenv_and_warns_once_about_a_short_key(planted: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEME_", "MATON_"))}
    env |= {"SYSTEME_API_KEY": SHORT_KEY, "SYSTEME_API_URL": "http://127.0.0.1:9"}
    run = subprocess.run(
        [sys.executable, "-m", "systeme_mcp.cli"],
        cwd=planted,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "direct backend at http://127.0.0.1:9" in run.stderr and "evil" not in run.stderr
    assert run.stderr.count("too short to be a real secret") == 1 and "SYSTEME_API_KEY" in run.stderr
    assert SHORT_KEY not in run.stderr + run.stdout


# ---------------------------------------------------------------------------------------------- scrubbing


@pytest.mark.anyio
async def test_scrub_removes_every_letter_case_and_encoding_of_a_secret() -> None:
    client = SystemeClient(Settings(backend="direct", systeme_api_key=KEY))
    try:
        for form in (
            KEY,
            KEY.upper(),
            KEY.lower(),
            quote(KEY),
            quote(KEY, safe=""),
            quote(KEY, safe="").lower(),  # %2f, %2b: the hex digits in either case
            quote_plus(KEY),
            KEY.swapcase(),
        ):
            scrubbed = client.scrub(f"upstream said: bad key {form}!")
            assert scrubbed == "upstream said: bad key [redacted]!", form
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_too_short_key_is_not_scrubbed_letter_by_letter() -> None:
    client = SystemeClient(Settings(backend="direct", systeme_api_key="x"))
    try:
        text = "example: the max_x index of box 7"
        assert client.scrub(text) == text
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_the_sandbox_key_is_still_scrubbed() -> None:
    client = SystemeClient(Settings(backend="sandbox"))
    try:
        assert client.scrub(f"Bearer {SANDBOX_KEY.upper()}") == "Bearer [redacted]"
    finally:
        await client.aclose()


def test_start_up_warns_once_about_each_short_secret_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(backend="direct", systeme_api_key=SHORT_KEY, auth_token="T0k", maton_api_key=KEY)
    assert settings.short_secrets() == ["SYSTEME_API_KEY", "SYSTEME_AUTH_TOKEN"]
    with caplog.at_level(logging.WARNING, logger="systeme_mcp"):
        announce(settings)
    warnings = [r.getMessage() for r in caplog.records if "too short" in r.getMessage()]
    assert len(warnings) == 2 and "SYSTEME_API_KEY" in warnings[0] and "SYSTEME_AUTH_TOKEN" in warnings[1]
    shown = "\n".join(r.getMessage() for r in caplog.records)
    assert SHORT_KEY not in shown and "T0k" not in shown and KEY not in shown


def test_no_warning_for_real_keys(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="systeme_mcp"):
        announce(Settings(backend="direct", systeme_api_key=KEY))
    assert not [r for r in caplog.records if "too short" in r.getMessage()]


def test_the_http_stack_never_logs_headers_even_at_debug() -> None:
    import logging

    from systeme_mcp.cli import quiet_http_logs

    root = logging.getLogger()
    level = root.level
    saved = {name: logging.getLogger(name).level for name in ("httpcore2", "httpx2")}
    try:
        root.setLevel(logging.DEBUG)
        quiet_http_logs()
        assert not logging.getLogger("httpcore2.http11").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("httpcore2.connection").isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpx2").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("systeme_mcp.client").isEnabledFor(logging.DEBUG)  # ours still logs
    finally:
        root.setLevel(level)
        for name, saved_level in saved.items():
            logging.getLogger(name).setLevel(saved_level)
