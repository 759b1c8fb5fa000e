"""Settings, from environment variables, a `.env` file the user names (`--env-file` / `SYSTEME_ENV_FILE`; none
is read otherwise) and CLI flags (flags win, then the environment, then the file), checked once at start."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Annotated, Literal
from urllib.parse import quote, quote_plus

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .jobstore import default_state_dir, parse_store_url

Backend = Literal["gateway", "direct", "sandbox"]
# Maton's hosts as its documentation gives them since April 2026, and the ones before (tried when the current host
# cannot be reached and the URL was not set explicitly: hosts.py)
MATON_GATEWAY_URL = "https://api.maton.ai"
MATON_CTRL_URL = "https://api.maton.ai"
LEGACY_MATON_GATEWAY_URL = "https://gateway.maton.ai"
LEGACY_MATON_CTRL_URL = "https://ctrl.maton.ai"
MIN_STATE_KEY_CHARS = 32  # each key of SYSTEME_STATE_SECRET: the SDK's AES-GCM codec wants 32 bytes of randomness
MAKE_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'  # how to make a key (said in refusals)
SHARED_STORES = ("redis://", "rediss://")  # stores a fleet of replicas shares: they must share the state key too
MIN_SECRET_CHARS = 8  # shorter "keys" (README's `SYSTEME_API_KEY=x` against a local sandbox) are not redacted
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:(?:{_LABEL}\.)*{_LABEL}|\[[0-9a-f:.]+\])(?::[0-9]{{1,5}})?")  # name, IPv4 or [IPv6], :port


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything configurable. Secrets are SecretStr: they never print, log or serialise."""

    # No `.env` by default: a file planted in the directory an MCP client starts the server in must not choose
    # the base URLs (where the key is sent), the keys or the safety switches. cli.load_settings passes
    # `_env_file=` only for a file the user named.
    # hide_input_in_errors: a ValidationError's text never repeats a value given (a key); cli.setting_problem
    # shows the values of settings that are not secret
    model_config = SettingsConfigDict(
        env_file=None, env_file_encoding="utf-8", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    maton_api_key: SecretStr | None = Field(None, validation_alias=_env("MATON_API_KEY", "maton_api_key"))
    systeme_api_key: SecretStr | None = Field(None, validation_alias=_env("SYSTEME_API_KEY", "systeme_api_key"))
    maton_connection: str | None = Field(None, validation_alias=_env("MATON_CONNECTION", "maton_connection"))
    backend: Literal["auto", "gateway", "direct", "sandbox"] = Field(
        "auto", validation_alias=_env("SYSTEME_BACKEND", "backend")
    )
    systeme_api_url: str = Field("https://api.systeme.io", validation_alias=_env("SYSTEME_API_URL", "systeme_api_url"))
    maton_gateway_url: str = Field(MATON_GATEWAY_URL, validation_alias=_env("MATON_GATEWAY_URL", "maton_gateway_url"))
    maton_ctrl_url: str = Field(MATON_CTRL_URL, validation_alias=_env("MATON_CTRL_URL", "maton_ctrl_url"))
    toolsets: Annotated[list[str] | None, NoDecode] = Field(None, validation_alias=_env("SYSTEME_TOOLSETS", "toolsets"))
    # full: every chosen tool is listed; discover: search_tools, describe_tool and call_tool reach them (discovery.py)
    profile: Literal["full", "discover"] = Field("full", validation_alias=_env("SYSTEME_PROFILE", "profile"))
    read_only: bool = Field(False, validation_alias=_env("SYSTEME_READ_ONLY", "read_only"))
    confirm_destructive: bool = Field(True, validation_alias=_env("SYSTEME_CONFIRM_DESTRUCTIVE", "confirm_destructive"))
    timeout: float = Field(30.0, gt=0, le=300, validation_alias=_env("SYSTEME_TIMEOUT", "timeout"))
    max_attempts: int = Field(4, ge=1, le=10, validation_alias=_env("SYSTEME_MAX_ATTEMPTS", "max_attempts"))
    retry_budget: float = Field(40.0, gt=0, le=600, validation_alias=_env("SYSTEME_RETRY_BUDGET", "retry_budget"))
    call_deadline: float = Field(
        45.0, gt=0, le=3600, validation_alias=_env("SYSTEME_CALL_DEADLINE", "call_deadline")
    )  # seconds one request may take in all: pacing, attempts, backoff, the body (unset: at least retry_budget)
    max_response_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=1024**3, validation_alias=_env("SYSTEME_MAX_RESPONSE_BYTES", "max_response_bytes")
    )  # largest answer body read, on the wire and decompressed; past it reading stops
    bulk_preview_above: int = Field(
        25, ge=0, validation_alias=_env("SYSTEME_BULK_PREVIEW_ABOVE", "bulk_preview_above")
    )  # bulk tools preview (dry run) by default when more contacts than this would change
    call_budget: float = Field(
        20.0, gt=0, le=3600, validation_alias=_env("SYSTEME_CALL_BUDGET", "call_budget")
    )  # seconds a tool call may run before it answers with a job that carries on (jobs.py)
    repeat_window: float = Field(
        120.0, ge=0, le=3600, validation_alias=_env("SYSTEME_REPEAT_WINDOW", "repeat_window")
    )  # seconds an identical write is answered from the first's result, not sent again (repeats.py); 0: off
    store: str | None = Field(None, validation_alias=_env("SYSTEME_STORE", "store"))
    # where jobs live: `memory`, `sqlite:///ABSOLUTE/PATH` or `redis://…` (jobstore.parse_store_url); unset: memory
    # with the embedded sandbox, else a file in this user's state directory (jobstore.default_state_dir)
    state_secret: SecretStr | None = Field(None, validation_alias=_env("SYSTEME_STATE_SECRET", "state_secret"))
    # the key ring that seals confirmations (2026-07-28 requestState), comma-separated: the first seals, every one
    # opens; unset: a key made fresh in each process. Environment or .env only, never a flag (process lists).
    tenant_secret: SecretStr | None = Field(None, validation_alias=_env("SYSTEME_TENANT_SECRET", "tenant_secret"))
    # per-request tenancy: the key of the tenant ids (tenancy.tenant_id); never rotated, as another key makes every
    # tenant new (its jobs no longer its own). Environment or .env only, never a flag.
    job_lease: float = Field(
        30.0, ge=1, le=3600, validation_alias=_env("SYSTEME_JOB_LEASE", "job_lease")
    )  # seconds a runner's claim on a job lasts unrenewed: a dead runner's jobs are resumed after it
    job_retention_days: float = Field(
        7.0, gt=0, le=3650, validation_alias=_env("SYSTEME_JOB_RETENTION_DAYS", "job_retention_days")
    )  # finished jobs (and exports) are deleted after this many days
    job_retention_count: int = Field(
        200, ge=1, le=100_000, validation_alias=_env("SYSTEME_JOB_RETENTION_COUNT", "job_retention_count")
    )  # and beyond the newest this many finished jobs
    transport: Literal["stdio", "http"] = Field("stdio", validation_alias=_env("SYSTEME_TRANSPORT", "transport"))
    tenancy: Literal["single", "per-request"] = Field("single", validation_alias=_env("SYSTEME_TENANCY", "tenancy"))
    # per-request: each HTTP request brings its tenant's upstream key (tenancy.py); single: the process's own key
    host: str = Field("127.0.0.1", validation_alias=_env("SYSTEME_HOST", "host"))
    port: int = Field(8000, ge=0, le=65535, validation_alias=_env("SYSTEME_PORT", "port"))
    auth_token: SecretStr | None = Field(None, validation_alias=_env("SYSTEME_AUTH_TOKEN", "auth_token"))
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("SYSTEME_ALLOWED_HOSTS", "allowed_hosts")
    )  # public host names HTTP clients use (Host / Origin allow-list), besides the loopback names
    sessions_per_client: int | None = Field(
        None, ge=1, le=100_000, validation_alias=_env("SYSTEME_SESSIONS_PER_CLIENT", "sessions_per_client")
    )  # 2025-11-25 HTTP sessions one client address may hold at once (unset: session_limits.PER_CLIENT_SESSIONS)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", validation_alias=_env("SYSTEME_LOG_LEVEL", "log_level")
    )

    @field_validator("toolsets", mode="before")
    @classmethod
    def _split_toolsets(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] or None
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        hosts = [host.strip().lower() for host in value]
        for host in hosts:
            if not _HOST.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name: give names like mcp.example.com (optionally :port), "
                    "no scheme, path or wildcard"
                )
        return list(dict.fromkeys(hosts))

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value:
            if not value.startswith(SHARED_STORES):  # a shared store is checked after its state secret (_consistent)
                parse_store_url(value)
            return value
        return None

    @field_validator("state_secret")
    @classmethod
    def _state_keys(cls, value: SecretStr | None) -> SecretStr | None:
        keys = state_keys(value) if value is not None else []
        if not keys:
            return None
        for n, key in enumerate(keys, 1):  # which key, never the key (nor its length)
            if len(key) < MIN_STATE_KEY_CHARS:
                raise ValueError(
                    f"SYSTEME_STATE_SECRET: key {n} of {len(keys)} is shorter than {MIN_STATE_KEY_CHARS} characters; "
                    f"make one with: {MAKE_KEY}"
                )
        if len(set(keys)) < len(keys):
            raise ValueError("SYSTEME_STATE_SECRET: a key is listed twice")
        return value

    @field_validator("tenant_secret")
    @classmethod
    def _tenant_key(cls, value: SecretStr | None) -> SecretStr | None:
        key = value.get_secret_value().strip() if value is not None else ""
        if not key:
            return None
        if len(key) < MIN_STATE_KEY_CHARS:  # never the key, nor its length
            raise ValueError(
                f"SYSTEME_TENANT_SECRET is shorter than {MIN_STATE_KEY_CHARS} characters; make one with: {MAKE_KEY}"
            )
        return SecretStr(key)

    @field_validator("maton_connection")
    @classmethod
    def _connection_is_uuid(cls, value: str | None) -> str | None:
        if value:
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise ValueError("MATON_CONNECTION must be a connection id (UUID); see list_connections") from None
        return None

    @field_validator("systeme_api_url", "maton_gateway_url", "maton_ctrl_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.tenancy == "per-request":
            per_request_problem(self)
        elif self.backend == "gateway" and not self.maton_api_key:
            raise ValueError("SYSTEME_BACKEND=gateway needs MATON_API_KEY")
        elif self.backend == "direct" and not self.systeme_api_key:
            raise ValueError("SYSTEME_BACKEND=direct needs SYSTEME_API_KEY")
        if self.tenant_secret is not None and self.tenant_secret.get_secret_value() in self.state_keys:
            raise ValueError("SYSTEME_TENANT_SECRET must differ from every key of SYSTEME_STATE_SECRET (a key, a use)")
        if self.maton_connection and self.resolved_backend == "direct":
            raise ValueError("MATON_CONNECTION only applies to the Maton gateway, not the direct API")
        if self.store and self.store.startswith(SHARED_STORES):
            if self.state_secret is None:  # every replica must open the confirmations any other one sealed
                raise ValueError(
                    "SYSTEME_STORE names a shared (Redis) store, which needs SYSTEME_STATE_SECRET: the same key "
                    "on every server, or a confirmation whose retry reaches another server is refused"
                )
            parse_store_url(self.store)
        return self

    @property
    def state_keys(self) -> list[str]:
        """SYSTEME_STATE_SECRET's keys, the sealing one first; [] when unset (each process makes its own)."""
        return state_keys(self.state_secret) if self.state_secret else []

    @property
    def store_url(self) -> str:
        """The job store in use: SYSTEME_STORE, else memory with the embedded sandbox, else a per-user file."""
        if self.store:
            return self.store
        if self.resolved_backend == "sandbox":
            return "memory"
        return f"sqlite://{(default_state_dir() / 'jobs.sqlite3').as_posix()}"

    @property
    def account(self) -> str:
        """Which account this server works on, as a short fingerprint (the backend, its base URL, the key, the Maton
        connection; never the key itself): jobs are kept per account, so one store can serve several, and a job is
        never resumed against another account."""
        backend = self.resolved_backend
        key = {"gateway": self.maton_api_key, "direct": self.systeme_api_key}.get(backend)
        url = {"gateway": self.maton_gateway_url, "direct": self.systeme_api_url}.get(backend, "")
        parts = [backend, url, key.get_secret_value() if key else "", self.maton_connection or ""]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

    @property
    def resolved_backend(self) -> Backend:
        """gateway if a Maton key is set, else direct if a Systeme key is set, else the embedded sandbox."""
        if self.backend != "auto":
            return self.backend
        if self.maton_api_key:
            return "gateway"
        if self.systeme_api_key:
            return "direct"
        return "sandbox"

    def _named_secrets(self) -> dict[str, str]:
        named = {"MATON_API_KEY": self.maton_api_key, "SYSTEME_API_KEY": self.systeme_api_key}
        named["SYSTEME_AUTH_TOKEN"] = self.auth_token
        named["SYSTEME_STATE_SECRET"] = self.state_secret
        named["SYSTEME_TENANT_SECRET"] = self.tenant_secret
        return {name: s.get_secret_value() for name, s in named.items() if s and s.get_secret_value()}

    def secrets(self) -> list[str]:
        """Every secret value, so the client can scrub them from anything shown (each state key on its own too)."""
        return list(dict.fromkeys([*self._named_secrets().values(), *self.state_keys]))

    def short_secrets(self) -> list[str]:
        """The names (never the values) of secrets too short to be real, hence not redacted (start-up warns)."""
        return [name for name, value in self._named_secrets().items() if len(value) < MIN_SECRET_CHARS]

    def secret_pattern(self, *extra: str) -> re.Pattern[str] | None:
        """One pattern for every secret (and `extra`) long enough to be one, in any letter case, plain, URL-encoded
        or JSON-escaped; None when there is nothing to redact. Shorter values are left alone: redacting a
        one-letter key would shred every message."""
        forms: set[str] = set()
        for secret in [*self.secrets(), *extra]:
            if len(secret) >= MIN_SECRET_CHARS:
                forms |= {secret, quote(secret), quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
        if not forms:
            return None
        return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)), re.IGNORECASE)


def per_request_problem(settings: Settings) -> None:
    """Raise what makes `settings` unusable with SYSTEME_TENANCY=per-request (each request brings its key)."""
    where = "SYSTEME_TENANCY=per-request"
    if settings.transport != "http":
        raise ValueError(f"{where} needs the HTTP transport (SYSTEME_TRANSPORT=http / --transport http)")
    if settings.backend not in ("gateway", "direct"):
        raise ValueError(f"{where} needs SYSTEME_BACKEND=gateway or direct: which upstream the tenants' keys are for")
    if settings.maton_api_key or settings.systeme_api_key:
        raise ValueError(f"{where}: each request brings its tenant's key; unset MATON_API_KEY and SYSTEME_API_KEY")
    if settings.maton_connection:
        raise ValueError(f"{where}: a tenant names its connection in a Maton-Connection header; unset MATON_CONNECTION")
    if settings.auth_token:  # both would be `Authorization: Bearer`: the tenant's key is the authentication
        raise ValueError(f"{where}: the tenant's key authenticates each request; unset SYSTEME_AUTH_TOKEN")
    if settings.tenant_secret is None:
        raise ValueError(
            f"{where} needs SYSTEME_TENANT_SECRET, the key of the tenant ids (a keyed hash of each credential): "
            f"at least {MIN_STATE_KEY_CHARS} characters, the same on every server, never changed; make one with: "
            + MAKE_KEY
        )


def state_keys(secret: SecretStr) -> list[str]:
    """The keys of a SYSTEME_STATE_SECRET value: comma-separated, blanks around each ignored."""
    return [key.strip() for key in secret.get_secret_value().split(",") if key.strip()]
