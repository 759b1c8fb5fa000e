"""Settings, from environment variables, a `.env` file and CLI flags (flags win), checked once at start."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Backend = Literal["gateway", "direct", "sandbox"]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything configurable. Secrets are SecretStr: they never print, log or serialise."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    maton_api_key: SecretStr | None = Field(None, validation_alias=_env("MATON_API_KEY", "maton_api_key"))
    systeme_api_key: SecretStr | None = Field(None, validation_alias=_env("SYSTEME_API_KEY", "systeme_api_key"))
    maton_connection: str | None = Field(None, validation_alias=_env("MATON_CONNECTION", "maton_connection"))
    backend: Literal["auto", "gateway", "direct", "sandbox"] = Field(
        "auto", validation_alias=_env("SYSTEME_BACKEND", "backend")
    )
    systeme_api_url: str = Field("https://api.systeme.io", validation_alias=_env("SYSTEME_API_URL", "systeme_api_url"))
    maton_gateway_url: str = Field(
        "https://gateway.maton.ai", validation_alias=_env("MATON_GATEWAY_URL", "maton_gateway_url")
    )
    maton_ctrl_url: str = Field("https://ctrl.maton.ai", validation_alias=_env("MATON_CTRL_URL", "maton_ctrl_url"))
    toolsets: Annotated[list[str] | None, NoDecode] = Field(None, validation_alias=_env("SYSTEME_TOOLSETS", "toolsets"))
    read_only: bool = Field(False, validation_alias=_env("SYSTEME_READ_ONLY", "read_only"))
    confirm_destructive: bool = Field(True, validation_alias=_env("SYSTEME_CONFIRM_DESTRUCTIVE", "confirm_destructive"))
    timeout: float = Field(30.0, gt=0, le=300, validation_alias=_env("SYSTEME_TIMEOUT", "timeout"))
    max_attempts: int = Field(4, ge=1, le=10, validation_alias=_env("SYSTEME_MAX_ATTEMPTS", "max_attempts"))
    retry_budget: float = Field(40.0, gt=0, le=600, validation_alias=_env("SYSTEME_RETRY_BUDGET", "retry_budget"))
    bulk_preview_above: int = Field(
        25, ge=0, validation_alias=_env("SYSTEME_BULK_PREVIEW_ABOVE", "bulk_preview_above")
    )  # bulk tools preview (dry run) by default when more contacts than this would change
    transport: Literal["stdio", "http"] = Field("stdio", validation_alias=_env("SYSTEME_TRANSPORT", "transport"))
    host: str = Field("127.0.0.1", validation_alias=_env("SYSTEME_HOST", "host"))
    port: int = Field(8000, ge=0, le=65535, validation_alias=_env("SYSTEME_PORT", "port"))
    auth_token: SecretStr | None = Field(None, validation_alias=_env("SYSTEME_AUTH_TOKEN", "auth_token"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", validation_alias=_env("SYSTEME_LOG_LEVEL", "log_level")
    )

    @field_validator("toolsets", mode="before")
    @classmethod
    def _split_toolsets(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] or None
        return value

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
        if self.backend == "gateway" and not self.maton_api_key:
            raise ValueError("SYSTEME_BACKEND=gateway needs MATON_API_KEY")
        if self.backend == "direct" and not self.systeme_api_key:
            raise ValueError("SYSTEME_BACKEND=direct needs SYSTEME_API_KEY")
        if self.maton_connection and self.resolved_backend == "direct":
            raise ValueError("MATON_CONNECTION only applies to the Maton gateway, not the direct API")
        return self

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

    def secrets(self) -> list[str]:
        """Every secret value, so the client can scrub them from anything shown."""
        found = [s.get_secret_value() for s in (self.maton_api_key, self.systeme_api_key, self.auth_token) if s]
        return [s for s in found if s]
