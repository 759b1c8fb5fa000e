"""A write's identity and the records it touches (what `repeats.py` claims and forgets results by).

The identity is a keyed hash (HMAC-SHA256) of the account, the tool and its arguments, so nothing in the shared
store reveals an argument (a webhook secret, an email) or the account it belongs to. The records a write touches
are the values of its id arguments and the id of what it made, untyped on purpose: a tag and a contact with the
same number share one counter, so a remembered result is at worst forgotten early, never kept too long.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog, Operation
from .projection import pick


@dataclass(frozen=True)
class Write:
    """One write's identity (`key`) and the records it names (`ids`), in one account's scope (`scope`)."""

    key: str
    scope: str
    ids: tuple[str, ...]


def claimed(op: Operation) -> bool:
    """Whether `op`'s writes are claimed: a POST (not idempotent) and a DELETE (whose repeat would fail as not
    found). PUT and PATCH are not: repeating them is harmless, and an identical one after another write must apply."""
    return not op.read_only and (not op.is_idempotent or op.method == "DELETE")


def record_ids(args: dict[str, Any], made: Any = None) -> list[str]:
    """The records a write names or made: its id arguments' values and `made`, the id of what it made (see the
    module doc)."""
    found: set[str] = set()
    for name, value in args.items():
        if name == "id" or name.endswith(("_id", "_ids")):
            found.update(str(v) for v in (value if isinstance(value, list) else [value]) if v is not None)
    if made is not None and not isinstance(made, (dict, list)):
        found.add(str(made))
    return sorted(found)


def made_id(catalog: Catalog, op: Operation, data: Any) -> Any:
    """The id of the record a write's answer `data` shows (its result shape's key), if any."""
    shape = catalog.shape(op)
    if shape is None or shape.key not in shape.fields or data is None:
        return None
    obj = pick(data, op.result_path) if op.result_path else data
    return pick(obj, shape.fields[shape.key].path)


def touched_ids(catalog: Catalog, op: Operation, args: dict[str, Any], data: Any) -> list[str]:
    """The records a write of `op` with `args` touched, its answer being `data`."""
    return record_ids(args, made_id(catalog, op, data))


@functools.lru_cache(maxsize=1024)  # one per account (tenant): computed once, not on every write
def scope(secret: bytes, account: str) -> str:
    """The account's name in the shared store (keyed: it does not reveal the account)."""
    return hmac.new(secret, b"scope\x00" + account.encode(), hashlib.sha256).hexdigest()[:24]


def identity(secret: bytes, account: str, op: Operation, args: dict[str, Any]) -> Write:
    """The identity of a call of `op` with `args`; the server's own (local) arguments, such as confirm, left out."""
    sent = {k: v for k, v in args.items() if k not in op.params or op.params[k].location != "local"}
    canonical = json.dumps([account, op.name, sent], sort_keys=True, separators=(",", ":"), default=str)
    key = hmac.new(secret, b"write\x00" + canonical.encode(), hashlib.sha256).hexdigest()[:40]
    return Write(key, scope(secret, account), tuple(record_ids(args)))
