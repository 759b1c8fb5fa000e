"""The embedded Systeme.io sandbox: a faithful, stateful fake of the Systeme.io public API, the Maton
gateway and Maton's connection API, with rate limiting, seeded fault injection and webhook delivery.

    from systeme_mcp.sandbox import Sandbox, RateLimit, FaultPlan
    sb = Sandbox(seed=0, rate_limit=None)
    client = httpx2.AsyncClient(transport=sb.transport(), base_url=sb.base_url)

Written from the API reference (`docs/sandbox.md` lists what is taken from it and what is guessed), never from
the project's tool declarations. Not modelled overall: several accounts, real DNS/MX checks, automations,
emails actually sent, the ~25 official operations whose paths are unknown (booking, page editor, catalogue).
"""

from .core import Sandbox
from .faults import KINDS as FAULT_KINDS
from .faults import FaultPlan
from .ratelimit import RateLimit
from .statefile import StateFileError

__all__ = ["FAULT_KINDS", "FaultPlan", "RateLimit", "Sandbox", "StateFileError"]
