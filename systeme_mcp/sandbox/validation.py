"""Reading request bodies and query strings the way the API does, and cursor pagination.

One implementation for every route: typed body attributes (wrong JSON type → 400 in API Platform's words,
missing or invalid → 422 violations collected per field), query filters, and `{items, hasMore}` pages.
Parsed bodies pass through `valid_text`, so no stored string is invalid Unicode (a lone surrogate could be
neither answered nor saved).

Not modelled: JSON-LD/Hydra input, `application/x-www-form-urlencoded` bodies, array query syntax (`a[]=`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from . import errors
from .errors import Violation

T = TypeVar("T")

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
SURROGATES = re.compile("[\ud800-\udfff]")
DEFAULT_LIMIT = 10  # guess: the default is not published; clients assume 10
MIN_LIMIT, MAX_LIMIT = 10, 100


def valid_text(value: Any) -> Any:
    """Parsed JSON with every string (object keys too) made valid Unicode: each lone surrogate becomes U+FFFD.

    `json.loads` turns an escaped pair (`"\\ud83d\\ude00"`) into one character, so what is left is unpaired
    (`"\\ud800"`): UTF-8 cannot encode it, and an answer or a save that contains it would fail."""
    if isinstance(value, str):
        return SURROGATES.sub("\ufffd", value)
    if isinstance(value, list):
        return [valid_text(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    return value


class Body:
    """A JSON object body. Accessors type-check (400) and collect 422 violations until `done()`."""

    def __init__(self, data: Any, *, strict: bool = False) -> None:
        if not isinstance(data, dict):
            raise errors.bad_request("The input data is misformatted.")
        self.data: dict[str, Any] = data
        self.strict = strict
        self.violations: list[Violation] = []
        self._read: set[str] = set()

    def has(self, name: str) -> bool:
        self._read.add(name)
        return name in self.data

    def add(self, path: str, message: str, code: str = errors.NOT_VALID) -> None:
        self.violations.append(Violation(path, message, code))

    def _get(self, name: str, expected: str, kinds: tuple[type, ...], required: bool) -> Any:
        self._read.add(name)
        value = self.data.get(name)
        if value is None:
            if required:
                self.add(name, errors.BLANK, errors.NOT_BLANK)
            return None
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            raise errors.type_error(name, expected, value)
        return value

    def text(self, name: str, *, required: bool = False, max_len: int | None = None) -> str | None:
        value: str | None = self._get(name, "string", (str,), required)
        if value is not None and required and not value.strip():
            self.add(name, errors.BLANK, errors.NOT_BLANK)
        if value is not None and max_len is not None and len(value) > max_len:
            self.add(name, f"This value is too long. It should have {max_len} characters or less.", errors.TOO_LONG)
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value: int | None = self._get(name, "int", (int,), required)
        return value

    def boolean(self, name: str) -> bool | None:
        value: bool | None = self._get(name, "bool", (bool,), False)
        return value

    def array(self, name: str, *, required: bool = False) -> list[Any] | None:
        value: list[Any] | None = self._get(name, "array", (list,), required)
        return value

    def obj(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._get(name, "array", (dict,), required)
        return value

    def choice(self, name: str, allowed: Sequence[str], *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is not None and value not in allowed:
            self.add(name, errors.CHOICE, errors.NO_SUCH_CHOICE)
            return None
        return value

    def done(self) -> None:
        """Raise 400 for unknown attributes (strict mode only) or 422 for the collected violations."""
        if self.strict:
            extra = [k for k in self.data if k not in self._read]
            if extra:
                raise errors.bad_request(f'Extra attributes are not allowed ("{extra[0]}" is unknown).')
        if self.violations:
            raise errors.invalid(*self.violations)


def valid_email(email: str) -> bool:
    return len(email) <= 180 and EMAIL_RE.match(email) is not None


def domain_listed(email: str, domains: Iterable[str]) -> bool:
    """True if the email's domain, or one of its parent domains, is in `domains`."""
    host = email.rsplit("@", 1)[-1].lower().rstrip(".")
    listed = {d.lower().strip(".") for d in domains}
    parts = host.split(".")
    return any(".".join(parts[i:]) in listed for i in range(len(parts)))


def parse_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class PageParams:
    limit: int = DEFAULT_LIMIT
    starting_after: int | None = None
    order: str = "desc"


class Query:
    """Query parameters (the last of repeated names wins, as in PHP)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.values: dict[str, str] = dict(pairs)

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value not in (None, "") else None

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise errors.violation(name, "This value should be of type bool.")

    def integer(self, name: str, *, message: str = "This value should be of type int.") -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.isdigit() or len(value) > 18:
            raise errors.violation(name, message)
        return int(value)

    def datetime(self, name: str) -> datetime | None:
        value = self.text(name)
        if value is None:
            return None
        parsed = parse_datetime(value)
        if parsed is None:
            raise errors.violation(name, "This value is not a valid datetime.")
        return parsed

    def page(self) -> PageParams:
        limit = self._bounded("limit", DEFAULT_LIMIT, MIN_LIMIT, MAX_LIMIT)
        after = self.text("startingAfter")
        starting_after: int | None = None
        if after is not None:
            starting_after = self._bounded("startingAfter", 0, 1, 2**63 - 1)
        order = self.text("order") or "desc"
        if order not in ("asc", "desc"):
            raise errors.violation("pagination.order", "Wrong value of pagination order parameter")
        return PageParams(limit, starting_after, order)

    def _bounded(self, name: str, default: int, low: int, high: int) -> int:
        text = self.text(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise errors.violation(f"pagination.{name}", f"Wrong value of pagination {name} parameter")
        return value


def paginate(items: Iterable[T], params: PageParams, key: Callable[[T], int]) -> tuple[list[T], bool]:
    """One page of `items` by id: `order` decides the direction; `startingAfter` excludes the cursor id."""
    ordered = sorted(items, key=key, reverse=params.order == "desc")
    if params.starting_after is not None:
        cursor = params.starting_after
        if params.order == "desc":
            ordered = [i for i in ordered if key(i) < cursor]
        else:
            ordered = [i for i in ordered if key(i) > cursor]
    return ordered[: params.limit], len(ordered) > params.limit
