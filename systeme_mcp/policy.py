"""The HTTP policy's numbers in one block, and the two pure rules built on them (backoff, Retry-After).

Everything about *when* to retry, wait or stop lives here; `client.py` applies it, `pacing.py` paces by it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

USER_AGENT = "systeme-mcp/0.1"

# Which failures are retried (idempotent requests only; see client.py for the rules by method).
RETRY_STATUSES = frozenset({429, 502, 503, 504})
WRITE_RETRY_STATUSES = RETRY_STATUSES | {500}  # idempotent writes: a 500 leaves the outcome unknown

# Exponential backoff with jitter between attempts.
BACKOFF_BASE = 0.25  # seconds before the second attempt (half of it jitter)
BACKOFF_CAP = 8.0  # seconds, longest wait between two attempts

# Waits the upstream asks for (Retry-After, X-RateLimit-Refill) are honoured up to this, never longer.
MAX_RETRY_AFTER = 60.0
PACER_PROBE_WAIT = 0.5  # budget spent and no refill time known: wait this long, then try again
EPOCH_THRESHOLD = 1_000_000_000  # an X-RateLimit-Refill above this is a Unix time, not seconds

CONNECT_TIMEOUT_CAP = 10.0  # seconds; the read timeout is the configured SYSTEME_TIMEOUT
ERROR_TEXT_CHARS = 500  # characters of a non-JSON error body kept (proxies answer with HTML pages)

PAGE_SIZE = 100  # items per page when the server pages on its own (the API's maximum)
READ_BACK_PAGES = 20  # a read-back after a lost write answer follows at most this many pages


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: Retry-After if given, else capped exponential + jitter."""
    if retry_after is not None:
        return min(MAX_RETRY_AFTER, max(0.0, retry_after))
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


@dataclass(frozen=True)
class RetryAfter:
    """A Retry-After header read: the wait we honour (`seconds`, capped) and what the upstream asked."""

    seconds: float
    asked: float

    @property
    def capped(self) -> bool:
        return self.asked > self.seconds


def parse_retry_after(value: str | None, now: datetime | None = None) -> RetryAfter | None:
    """Retry-After in either form RFC 9110 allows: delay-seconds or an HTTP-date; capped at MAX_RETRY_AFTER."""
    if not value:
        return None
    text = value.strip()
    try:
        asked = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        asked = (when - (now or datetime.now(UTC))).total_seconds()
    if asked != asked:  # NaN
        return None
    asked = max(0.0, asked)
    return RetryAfter(min(asked, MAX_RETRY_AFTER), asked)
