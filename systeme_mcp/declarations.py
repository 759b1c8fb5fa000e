"""Declaration keys of an operation that reach beyond its one request (see `catalog.Operation`).

- `audience`: who a call reaches by tag — contacts with any of the tag ids in one argument, less those with
  any in another — counted with a list operation (`audience.py`) and named in its confirmation and dry run;
- `before`: declared writes run first, each with arguments taken from the call (`args`: its argument → the
  call's) and fixed ones (`fixed`); the operation's own request is sent only if every one of them applied.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Audience(_Strict):
    """Contacts with any tag in argument `include`, less those with any in `exclude`, counted with list operation
    `tool` filtered by its argument `by` (one tag at a time)."""

    tool: str
    by: str
    include: str
    exclude: str

    def arguments(self) -> tuple[str, str]:
        return self.include, self.exclude


class Step(_Strict):
    """A declared write run before the operation's own request."""

    tool: str
    args: dict[str, str] = {}  # argument of `tool` → argument of this call
    fixed: dict[str, Any] = {}  # argument of `tool` → value

    def arguments(self, call: dict[str, Any]) -> dict[str, Any]:
        """The step's arguments for this call's (validated) arguments."""
        return {name: call[source] for name, source in self.args.items() if source in call} | self.fixed
