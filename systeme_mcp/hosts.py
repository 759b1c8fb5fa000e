"""Where each API is: the base URL a request goes to, and (for Maton's defaults) the legacy host to fall back on.

Maton's documentation moved every gateway and control-API example from `https://gateway.maton.ai/...` and
`https://ctrl.maton.ai/...` to `https://api.maton.ai/...` in April 2026 (maton-ai/api-gateway-skill, commit 6f90a34);
nothing says the old hosts were retired, nothing says they still work. So, unless the URL is set explicitly
(`MATON_GATEWAY_URL` / `MATON_CTRL_URL`: used as given, no fallback), a request goes to the host Maton documents
today, and when that fails at the connection level — DNS failure, connection refused: provably never sent — it is
tried once on the legacy host. The first host that answers (with any HTTP status) is kept for the rest of the
process, and the choice is logged once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import LEGACY_MATON_CTRL_URL, LEGACY_MATON_GATEWAY_URL, Backend, Settings

log = logging.getLogger("systeme_mcp.hosts")


@dataclass
class Route:
    """The base URLs of one API, tried in order until one answers; then only the one that answered."""

    name: str
    bases: tuple[str, ...]
    prefix: str = ""  # put before every path (the gateway's `/systeme`)
    chosen: str | None = None

    def candidates(self) -> tuple[str, ...]:
        return (self.chosen,) if self.chosen else self.bases

    def url(self, base: str, path: str) -> str:
        return base + self.prefix + path

    def answered(self, base: str) -> None:
        """`base` answered: keep it for the rest of the process (said once in the log when there was a choice)."""
        if self.chosen is not None or len(self.bases) < 2:
            return
        self.chosen = base
        if base == self.bases[0]:
            log.info("%s: %s answered; using it for the rest of this process", self.name, base)
        else:
            log.warning(
                "%s: %s could not be reached (DNS or connection refused); the legacy host %s answered, and is used "
                "for the rest of this process",
                self.name,
                self.bases[0],
                base,
            )


def _maton(settings: Settings, field: str, legacy: str) -> tuple[str, ...]:
    """The configured URL; with the default one (not set explicitly), the legacy host after it."""
    url: str = getattr(settings, field)
    return (url,) if field in settings.model_fields_set else (url, legacy)


def routes(settings: Settings, backend: Backend) -> dict[str, Route]:
    """One Route per API a request can name (`RequestPlan.api`): the Systeme.io API (direct or through the
    gateway) and Maton's control API."""
    ctrl = Route("Maton control API", _maton(settings, "maton_ctrl_url", LEGACY_MATON_CTRL_URL))
    if backend == "direct":
        return {"systeme": Route("Systeme.io API", (settings.systeme_api_url,)), "maton": ctrl}
    gateway = _maton(settings, "maton_gateway_url", LEGACY_MATON_GATEWAY_URL)
    return {"systeme": Route("Maton gateway", gateway, prefix="/systeme"), "maton": ctrl}
