"""The environment variables the server reads, derived from the Settings model (never a hand-kept list)."""

from __future__ import annotations

from systeme_mcp.config import Settings


def setting_variables() -> set[str]:
    """Each setting's environment variable names: the upper-case aliases of every Settings field."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None) or [name.upper()]
        names |= {str(choice) for choice in choices if str(choice).isupper()}
    return names
