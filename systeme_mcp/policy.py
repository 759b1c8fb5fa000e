"""The HTTP policy's numbers in one block, and the pure rules built on them (backoff, Retry-After, the
X-RateLimit-* numbers).

Everything about *when* to retry, wait or stop lives here; `client.py` applies it, `pacing.py` paces by it.
Header values are untrusted: huge, negative, NaN, infinite or garbage values are clamped or ignored here, so
no header can make the client wait longer than MAX_RETRY_AFTER (and the call deadline bounds even that).
"""

from __future__ import annotations

import math
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
MAX_RATE_COUNT = 1_000_000.0  # an X-RateLimit-Remaining above this is clamped to it
HEADER_NUMBER_CHARS = 64  # a numeric header longer than this is garbage

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
    """Retry-After in either form RFC 9110 allows: delay-seconds or an HTTP-date; capped at MAX_RETRY_AFTER.
    Garbage and NaN are ignored (None); negative waits are 0; huge or infinite ones are capped."""
    if not value:
        return None
    text = value.strip()
    if len(text) > HEADER_NUMBER_CHARS:
        return None
    try:
        asked = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            asked = (when - (now or datetime.now(UTC))).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(asked):
        return None
    asked = max(0.0, asked)
    return RetryAfter(min(asked, MAX_RETRY_AFTER), asked)


def header_number(value: str | None) -> float | None:
    """A numeric header's value, or None when absent, garbage, NaN or infinite."""
    if value is None or len(value) > HEADER_NUMBER_CHARS:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def rate_remaining(value: str | None) -> float | None:
    """X-RateLimit-Remaining: requests left, clamped to [0, MAX_RATE_COUNT]; None when unusable."""
    number = header_number(value)
    return None if number is None else min(MAX_RATE_COUNT, max(0.0, number))


def refill_wait(value: str | None, now: float) -> float | None:
    """X-RateLimit-Refill as seconds to wait, clamped to [0, MAX_RETRY_AFTER]; a value above EPOCH_THRESHOLD is
    a Unix time (`now`: the current Unix time). None when unusable."""
    number = header_number(value)
    if number is None:
        return None
    if number > EPOCH_THRESHOLD:
        number -= now
    return min(MAX_RETRY_AFTER, max(0.0, number))
