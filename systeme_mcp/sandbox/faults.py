"""Seeded, reproducible fault injection for the reliability work.

Kinds:
- `500`, `502`, `503`: the answer is replaced by that error (502/503 come as the HTML an edge proxy sends;
  503 carries `Retry-After`). Nothing is applied.
- `429`: a rate-limit answer with `Retry-After` (use `burst` for a run of them). Nothing is applied.
- `reset_before`: the connection drops before the request is applied.
- `reset_after`: the request IS applied, then the connection drops (the client cannot tell it happened).
- `refused`: in-process, `httpx2.ConnectError` (provably never sent); over HTTP a reset before reading.
- `slow`: the answer comes `slow_seconds` late.
- `timeout` / `timeout_after`: no answer (before / after applying). In-process the transport raises
  `httpx2.ReadTimeout` at once; over HTTP the server stalls `timeout_seconds`, then drops the connection.

A plan applies to every API request (direct, gateway, control) or to `routes`: entries such as
`"POST /api/contacts"`, `"/api/contacts/*"` or `"DELETE *"` (fnmatch patterns; gateway paths also match
their `/api/...` form). Draws come from `random.Random(seed)` in request order, so a run is reproducible.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "500",
    "502",
    "503",
    "429",
    "reset_before",
    "reset_after",
    "refused",
    "slow",
    "timeout",
    "timeout_after",
)
APPLIED_FIRST = ("reset_after", "timeout_after")
ABORTS = ("reset_before", "reset_after", "refused", "timeout", "timeout_after")


class InjectedFault(Exception):
    """Raised by the app after a fault has started a response; the transport maps it to an httpx2 error."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"injected fault: {kind}")
        self.kind = kind


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, how often, where. `rate` is the probability per matching request."""

    rate: float = 1.0
    kinds: Sequence[str] = ("500",)
    seed: int = 0
    routes: Sequence[str] | None = None
    slow_seconds: float = 0.05
    timeout_seconds: float = 30.0
    retry_after: int = 1
    burst: int = 1
    max_faults: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        if self.routes is not None:
            object.__setattr__(self, "routes", tuple(self.routes))
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"unknown fault kind(s) {unknown}; known: {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0 or self.burst < 1 or self.retry_after < 0:
            raise ValueError("rate must be within 0..1, burst >= 1, retry_after >= 0")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        allowed = set(cls.__dataclass_fields__)
        extra = set(data) - allowed
        if extra:
            raise ValueError(f"unknown fault plan field(s): {sorted(extra)}")
        return cls(**data)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["kinds"], out["routes"] = list(self.kinds), None if self.routes is None else list(self.routes)
        return out

    def matches(self, method: str, path: str) -> bool:
        if self.routes is None:
            return True
        paths = {path, path.removeprefix("/systeme")}
        for entry in self.routes:
            want_method, _, pattern = entry.partition(" ") if " " in entry else ("*", "", entry)
            if not fnmatch.fnmatchcase(method, want_method.upper()):
                continue
            if any(fnmatch.fnmatchcase(p, pattern) for p in paths):
                return True
        return False


@dataclass
class Faults:
    """The fault controller of one sandbox: `set(plan)`, `clear()`; `fired` lists (method, path, kind)."""

    plan: FaultPlan | None = None
    fired: list[tuple[str, str, str]] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)
    _burst_left: int = 0
    _burst_kind: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed if plan else 0)
            self._burst_left, self.fired = 0, []

    def clear(self) -> None:
        self.set(None)

    def draw(self, method: str, path: str) -> str | None:
        """The fault for this request, if any (consumes the seeded generator only for matching requests)."""
        with self._lock:
            plan = self.plan
            if plan is None or not plan.matches(method, path):
                return None
            if plan.max_faults is not None and len(self.fired) >= plan.max_faults:
                return None
            if self._burst_left > 0:
                self._burst_left -= 1
                kind = self._burst_kind
            else:
                if self._rng.random() >= plan.rate:
                    return None
                kind = self._rng.choice(plan.kinds)
                self._burst_left, self._burst_kind = plan.burst - 1, kind
            self.fired.append((method, path, kind))
            return kind
